//! Group commit for the Raft log: appends commit to redb without fsync
//! (visible at once, durable not yet), and one background thread makes
//! them durable with a single fsynced commit per batch, then tells
//! openraft. Concurrent appends share one fsync instead of queueing for
//! one each.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use openraft::storage::LogFlushed;
use redb::{Database, Durability};

use super::tables::{FLUSHED, RAFT_META};
use crate::types::CounterRaft;

/// Hands append callbacks to the flushing thread.
#[derive(Debug)]
pub(crate) struct Flusher {
    queue: Mutex<Option<Sender<LogFlushed<CounterRaft>>>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts the flushing thread for `db`. Dropping the [`Flusher`]
    /// flushes what is pending and waits for the thread to end, so the
    /// database is closed once the log store is gone.
    pub(crate) fn start(db: Arc<Database>) -> std::io::Result<Flusher> {
        let (queue, pending) = channel();
        let thread = std::thread::Builder::new()
            .name("counter-log-flush".into())
            .spawn(move || flush_loop(&db, &pending))?;
        Ok(Flusher {
            queue: Mutex::new(Some(queue)),
            thread: Some(thread),
        })
    }

    /// Reports `callback` once everything committed so far is on disk.
    pub(crate) fn after_flush(&self, callback: LogFlushed<CounterRaft>) {
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let unsent = match queue.as_ref() {
            Some(queue) => match queue.send(callback) {
                Ok(()) => return,
                Err(unsent) => unsent.0,
            },
            None => callback,
        };
        unsent.log_io_completed(Err(std::io::Error::other(
            "the counter log flusher has stopped; restart the node",
        )));
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the counter log flusher thread panicked");
            }
        }
    }
}

fn flush_loop(db: &Database, pending: &Receiver<LogFlushed<CounterRaft>>) {
    while let Ok(first) = pending.recv() {
        let mut batch = vec![first];
        batch.extend(pending.try_iter());
        let result = flush(db);
        if let Err(err) = &result {
            tracing::error!(error = %err, "could not make the counter log durable");
        }
        for callback in batch {
            callback.log_io_completed(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|err| std::io::Error::other(err.to_string())),
            );
        }
    }
}

/// One fsynced commit: it makes every earlier non-durable commit durable.
fn flush(db: &Database) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    {
        let mut meta = txn.open_table(RAFT_META)?;
        meta.insert(FLUSHED, [].as_slice())?;
    }
    txn.commit()?;
    Ok(())
}
