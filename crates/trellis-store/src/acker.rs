//! Answering the writes of a committed batch.
//!
//! Waking a writer costs a system call and, on a busy machine, usually a
//! context switch. For a large batch those wake-ups would keep the commit
//! thread from starting the next batch, so the commit thread hands such a
//! batch's answers to a thread of its own, `trellis-ack`, and carries on.
//! Small batches are answered at once: there a second thread would only
//! add a handoff to each write's latency.
//!
//! Answers are handed over only after the batch has committed (durably,
//! under the default durability), so a write is still acknowledged only
//! once it is durable.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::request::Outcome;
use crate::StoreError;

/// Batches with more answers than this go to the ack thread.
const INLINE_LIMIT: usize = 16;

/// Batches handed over and not yet answered, at most. The commit thread
/// waits for the ack thread beyond this (backpressure).
const QUEUED_BATCHES: usize = 4;

/// A committed batch's answers, and the error that failed it, if any.
type Answers = (Vec<Outcome>, Option<StoreError>);

/// The ack thread, from the commit thread's side.
pub(crate) struct Acker {
    queue: Option<SyncSender<Answers>>,
    thread: Option<JoinHandle<()>>,
}

impl Acker {
    /// Starts the ack thread. If it cannot start, every batch is answered
    /// on the commit thread.
    pub fn start() -> Acker {
        let (queue, answers) = mpsc::sync_channel(QUEUED_BATCHES);
        let spawned = std::thread::Builder::new()
            .name("trellis-ack".into())
            .spawn(move || answer_all(answers));
        match spawned {
            Ok(thread) => Acker {
                queue: Some(queue),
                thread: Some(thread),
            },
            Err(err) => {
                tracing::warn!(%err, "cannot start the ack thread; the commit thread answers writes itself");
                Acker {
                    queue: None,
                    thread: None,
                }
            }
        }
    }

    /// Answers a batch's writes: each with its own result, or with
    /// `batch_error` if the batch failed to commit.
    pub fn answer(&self, outcomes: Vec<Outcome>, batch_error: Option<StoreError>) {
        let answers = (outcomes, batch_error);
        let answers = match &self.queue {
            Some(queue) if answers.0.len() > INLINE_LIMIT => match queue.send(answers) {
                Ok(()) => return,
                // The ack thread is gone (it panicked): answer here.
                Err(mpsc::SendError(answers)) => answers,
            },
            _ => answers,
        };
        deliver(answers);
    }
}

impl Drop for Acker {
    /// Waits until every batch handed over has been answered.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer_all(answers: Receiver<Answers>) {
    for batch in answers {
        deliver(batch);
    }
}

fn deliver((outcomes, batch_error): Answers) {
    for outcome in outcomes {
        outcome.deliver(batch_error.as_ref());
    }
}
