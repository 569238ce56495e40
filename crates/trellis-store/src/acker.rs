//! Publishing and answering the writes of a committed batch.
//!
//! Once a batch has committed, its index changes are applied in memory,
//! its sequence number published, and each writer woken with its answer.
//! Waking a writer costs a system call and, on a busy machine, usually a
//! context switch, and updating the index costs a tree insert per write.
//! For a large batch this would keep the commit thread from starting the
//! next batch, so the commit thread hands such a batch to a thread of its
//! own, `trellis-ack`, and carries on. Small batches are handled at once:
//! there a second thread would only add a handoff to each write's latency.
//!
//! Batches are handed over only after they have committed (durably, under
//! the default durability), so a write is still acknowledged only once it
//! is durable; they are published in commit order, each before its
//! answers go out.

use std::sync::mpsc::{self, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::redb_store::Shared;
use crate::request::Outcome;
use crate::writer::Effects;
use crate::StoreError;

/// Batches with more answers than this go to the ack thread.
const INLINE_LIMIT: usize = 16;

/// Batches handed over and not yet answered, at most. The commit thread
/// waits for the ack thread beyond this (backpressure).
const QUEUED_BATCHES: usize = 4;

/// A finished batch: its answers, and either what it changed and its last
/// sequence number (it committed) or the error that failed it.
pub(crate) struct Finished {
    /// Each write's outcome.
    pub outcomes: Vec<Outcome>,
    /// What the batch did, and the sequence number it ended at.
    pub result: Result<(Effects, u64), StoreError>,
}

/// The ack thread, from the commit thread's side.
pub(crate) struct Acker {
    shared: Arc<Shared>,
    queue: Option<SyncSender<Finished>>,
    thread: Option<JoinHandle<()>>,
}

impl Acker {
    /// Starts the ack thread. If it cannot start, every batch is handled
    /// on the commit thread.
    pub fn start(shared: Arc<Shared>) -> Acker {
        let (queue, batches) = mpsc::sync_channel(QUEUED_BATCHES);
        let spawned = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("trellis-ack".into())
                .spawn(move || {
                    for batch in batches {
                        complete(&shared, batch);
                    }
                })
        };
        match spawned {
            Ok(thread) => Acker {
                shared,
                queue: Some(queue),
                thread: Some(thread),
            },
            Err(err) => {
                tracing::warn!(%err, "cannot start the ack thread; the commit thread answers writes itself");
                Acker {
                    shared,
                    queue: None,
                    thread: None,
                }
            }
        }
    }

    /// Publishes a committed batch and answers its writes: each with its
    /// own result, or with the batch's error if it failed to commit.
    pub fn finish(&self, batch: Finished) {
        let batch = match &self.queue {
            Some(queue) if batch.outcomes.len() > INLINE_LIMIT => match queue.send(batch) {
                Ok(()) => return,
                // The ack thread is gone (it panicked): answer here.
                Err(mpsc::SendError(batch)) => batch,
            },
            _ => batch,
        };
        complete(&self.shared, batch);
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

/// Publishes a committed batch, then answers its writes.
fn complete(shared: &Shared, Finished { outcomes, result }: Finished) {
    let batch_error = match result {
        Ok((effects, last_seq)) => {
            shared.common.publish(effects, last_seq);
            None
        }
        Err(err) => Some(err),
    };
    for outcome in outcomes {
        outcome.deliver(batch_error.as_ref());
    }
}
