//! The log's writer thread: every write to the log database goes through
//! it, in order. Consecutive appends are written in one fsynced
//! transaction (group commit), so concurrent client writes share an fsync
//! instead of queueing for one each; votes, truncations and purges are
//! fsynced one by one. openraft hears of an append only once its fsync is
//! done.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use openraft::storage::LogFlushed;
use redb::{Database, Durability, ReadableTable};
use tokio::sync::oneshot;

use super::tables::{LAST_PURGED, LOG, RAFT_META, VOTE};
use crate::types::{CounterLogId, CounterRaft, LogEntry};

/// Entries appended but not yet on disk, by index: readers see them here.
pub(crate) type Unflushed = Arc<Mutex<BTreeMap<u64, LogEntry>>>;

/// Locks the unflushed entries.
pub(crate) fn lock(unflushed: &Unflushed) -> std::sync::MutexGuard<'_, BTreeMap<u64, LogEntry>> {
    unflushed.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Encoded entries with their log ids.
type Rows = Vec<(CounterLogId, Vec<u8>)>;

/// One write to the log database.
pub(crate) enum LogWrite {
    /// Encoded entries; `callback` is told once they are on disk.
    Append {
        rows: Rows,
        callback: LogFlushed<CounterRaft>,
    },
    /// The encoded vote.
    Vote {
        bytes: Vec<u8>,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// Removes the entries in `range`, recording the encoded last purged
    /// log id if given.
    Remove {
        range: (Bound<u64>, Bound<u64>),
        purged: Option<Vec<u8>>,
        done: oneshot::Sender<Result<(), String>>,
    },
}

/// Hands writes to the writer thread.
#[derive(Debug)]
pub(crate) struct Flusher {
    queue: Mutex<Option<Sender<LogWrite>>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LogWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogWrite::Append { rows, .. } => write!(f, "Append({} entries)", rows.len()),
            LogWrite::Vote { .. } => f.write_str("Vote"),
            LogWrite::Remove { range, .. } => write!(f, "Remove({range:?})"),
        }
    }
}

impl Flusher {
    /// Starts the writer thread for `db`. Dropping the [`Flusher`] lets it
    /// finish the queued writes and waits for it, so the database is
    /// closed once the log store is gone.
    pub(crate) fn start(db: Arc<Database>, unflushed: Unflushed) -> std::io::Result<Flusher> {
        let (queue, pending) = channel();
        let thread = std::thread::Builder::new()
            .name("counter-log-writer".into())
            .spawn(move || write_loop(&db, &pending, &unflushed))?;
        Ok(Flusher {
            queue: Mutex::new(Some(queue)),
            thread: Some(thread),
        })
    }

    /// Queues a write; gives it back if the thread has stopped.
    pub(crate) fn submit(&self, write: LogWrite) -> Result<(), LogWrite> {
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        match queue.as_ref() {
            Some(queue) => queue.send(write).map_err(|unsent| unsent.0),
            None => Err(write),
        }
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
                tracing::error!("the counter log writer thread panicked");
            }
        }
    }
}

fn write_loop(db: &Database, queue: &Receiver<LogWrite>, unflushed: &Unflushed) {
    while let Ok(first) = queue.recv() {
        let mut pending: VecDeque<LogWrite> = VecDeque::from([first]);
        pending.extend(queue.try_iter());
        while let Some(write) = pending.pop_front() {
            match write {
                LogWrite::Append { rows, callback } => {
                    let mut batch = vec![(rows, callback)];
                    while let Some(LogWrite::Append { .. }) = pending.front() {
                        if let Some(LogWrite::Append { rows, callback }) = pending.pop_front() {
                            batch.push((rows, callback));
                        }
                    }
                    append(db, batch, unflushed);
                }
                LogWrite::Vote { bytes, done } => {
                    let _ = done.send(commit(db, |txn| {
                        txn.open_table(RAFT_META)?.insert(VOTE, bytes.as_slice())?;
                        Ok(())
                    }));
                }
                LogWrite::Remove {
                    range,
                    purged,
                    done,
                } => {
                    let _ = done.send(commit(db, |txn| {
                        let mut table = txn.open_table(LOG)?;
                        let doomed = table
                            .range(range)?
                            .map(|row| row.map(|(index, _)| index.value()))
                            .collect::<Result<Vec<u64>, _>>()?;
                        for index in doomed {
                            table.remove(index)?;
                        }
                        if let Some(purged) = &purged {
                            txn.open_table(RAFT_META)?
                                .insert(LAST_PURGED, purged.as_slice())?;
                        }
                        Ok(())
                    }));
                }
            }
        }
    }
}

/// Writes a batch of appends in one fsynced transaction, then drops the
/// written entries from the unflushed set and tells openraft.
fn append(db: &Database, batch: Vec<(Rows, LogFlushed<CounterRaft>)>, unflushed: &Unflushed) {
    let result = commit(db, |txn| {
        let mut table = txn.open_table(LOG)?;
        for (rows, _) in &batch {
            for (log_id, bytes) in rows {
                table.insert(log_id.index, bytes.as_slice())?;
            }
        }
        Ok(())
    });
    if let Err(err) = &result {
        tracing::error!(error = %err, "could not write the counter log");
    } else {
        let mut unflushed = lock(unflushed);
        for (rows, _) in &batch {
            for (log_id, _) in rows {
                // A later append may have replaced the entry meanwhile.
                if unflushed.get(&log_id.index).map(|entry| entry.log_id) == Some(*log_id) {
                    unflushed.remove(&log_id.index);
                }
            }
        }
    }
    for (_, callback) in batch {
        callback.log_io_completed(result.clone().map_err(std::io::Error::other));
    }
}

/// Runs `write` in one fsynced transaction.
fn commit(
    db: &Database,
    write: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
) -> Result<(), String> {
    let run = || -> Result<(), redb::Error> {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        write(&txn)?;
        txn.commit()?;
        Ok(())
    };
    run().map_err(|err| format!("counter log write failed: {err}"))
}
