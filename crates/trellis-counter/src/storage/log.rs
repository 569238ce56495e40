//! [`LogStore`]: the Raft log and vote in redb.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, PoisonError};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader, StorageError};
use redb::{Database, ReadableDatabase, ReadableTable};
use tokio::sync::oneshot;

use super::flusher::{lock, Flusher, LogWrite, Unflushed};
use super::tables::{LAST_PURGED, LOG, MAX_ROW_BYTES, RAFT_META, VOTE};
use super::{any, decode, encode, read_error, read_row, write_error};
use crate::types::{CounterLogId, CounterRaft, CounterVote, LogEntry};

/// The Raft log and the vote, in the log's redb file.
///
/// Cheap to clone: clones share the database and serve as openraft's log
/// readers. Every write goes, in order, through one writer thread
/// (`flusher.rs`). Appended entries are readable at once from memory and
/// reported to openraft once a group fsync has put them on disk; votes,
/// truncations and purges return once fsynced.
#[derive(Debug, Clone)]
pub struct LogStore {
    db: Arc<Database>,
    writer: Arc<Flusher>,
    unflushed: Unflushed,
    last_purged: Arc<Mutex<Option<CounterLogId>>>,
}

impl LogStore {
    pub(crate) fn new(db: Arc<Database>) -> Result<LogStore, StorageError<u64>> {
        let last_purged: Option<CounterLogId> = read_row(&db, RAFT_META, LAST_PURGED)?;
        let unflushed = Unflushed::default();
        let writer = Flusher::start(db.clone(), unflushed.clone())
            .map_err(|err| write_error(any(format!("could not start the log writer: {err}"))))?;
        Ok(LogStore {
            db,
            writer: Arc::new(writer),
            unflushed,
            last_purged: Arc::new(Mutex::new(last_purged)),
        })
    }

    /// Every entry whose index is in `range`, in order: those still in
    /// memory win over those on disk.
    fn entries(&self, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<LogEntry>, StorageError<u64>> {
        // Memory first: an entry flushed meanwhile is then found on disk.
        let in_memory: Vec<(u64, LogEntry)> = lock(&self.unflushed)
            .iter()
            .filter(|(index, _)| range.contains(*index))
            .map(|(index, entry)| (*index, entry.clone()))
            .collect();
        let mut entries = BTreeMap::new();
        let txn = self.db.begin_read().map_err(|e| read_error(any(e)))?;
        let table = txn.open_table(LOG).map_err(|e| read_error(any(e)))?;
        for row in table.range(range).map_err(|e| read_error(any(e)))? {
            let (index, bytes) = row.map_err(|e| read_error(any(e)))?;
            let entry: LogEntry =
                decode(bytes.value(), MAX_ROW_BYTES, "log entry").map_err(read_error)?;
            entries.insert(index.value(), entry);
        }
        entries.extend(in_memory);
        Ok(entries.into_values().collect())
    }

    fn last_entry_id(&self) -> Result<Option<CounterLogId>, StorageError<u64>> {
        let in_memory = lock(&self.unflushed)
            .last_key_value()
            .map(|(_, entry)| entry.log_id);
        let txn = self.db.begin_read().map_err(|e| read_error(any(e)))?;
        let table = txn.open_table(LOG).map_err(|e| read_error(any(e)))?;
        let on_disk = match table.last().map_err(|e| read_error(any(e)))? {
            None => None,
            Some((_, bytes)) => {
                let entry: LogEntry =
                    decode(bytes.value(), MAX_ROW_BYTES, "log entry").map_err(read_error)?;
                Some(entry.log_id)
            }
        };
        Ok(in_memory.max(on_disk))
    }

    /// Queues a vote or removal and waits until it is fsynced.
    async fn write_and_wait(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), String>>) -> LogWrite,
    ) -> Result<(), StorageError<u64>> {
        let (done, written) = oneshot::channel();
        if self.writer.submit(make(done)).is_err() {
            return Err(write_error(any("the counter log writer has stopped")));
        }
        match written.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(write_error(any(err))),
            Err(_) => Err(write_error(any("the counter log writer has stopped"))),
        }
    }
}

impl RaftLogReader<CounterRaft> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<LogEntry>, StorageError<u64>> {
        self.entries((range.start_bound().cloned(), range.end_bound().cloned()))
    }
}

impl RaftLogStorage<CounterRaft> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<CounterRaft>, StorageError<u64>> {
        let last_purged_log_id = *self
            .last_purged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &CounterVote) -> Result<(), StorageError<u64>> {
        let bytes = encode(vote);
        self.write_and_wait(|done| LogWrite::Vote { bytes, done })
            .await
    }

    async fn read_vote(&mut self) -> Result<Option<CounterVote>, StorageError<u64>> {
        read_row(&self.db, RAFT_META, VOTE)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<CounterRaft>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = LogEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut rows = Vec::new();
        {
            let mut unflushed = lock(&self.unflushed);
            for entry in entries {
                rows.push((entry.log_id, encode(&entry)));
                unflushed.insert(entry.log_id.index, entry);
            }
        }
        match self.writer.submit(LogWrite::Append { rows, callback }) {
            Ok(()) => Ok(()),
            Err(unsent) => {
                let message = "the counter log writer has stopped; restart the node";
                if let LogWrite::Append { callback, .. } = unsent {
                    callback.log_io_completed(Err(std::io::Error::other(message)));
                }
                Err(write_error(any(message)))
            }
        }
    }

    async fn truncate(&mut self, log_id: CounterLogId) -> Result<(), StorageError<u64>> {
        let range = (Bound::Included(log_id.index), Bound::Unbounded);
        lock(&self.unflushed).retain(|index, _| !range.contains(index));
        self.write_and_wait(|done| LogWrite::Remove {
            range,
            purged: None,
            done,
        })
        .await
    }

    async fn purge(&mut self, log_id: CounterLogId) -> Result<(), StorageError<u64>> {
        let range = (Bound::Unbounded, Bound::Included(log_id.index));
        *self
            .last_purged
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(log_id);
        lock(&self.unflushed).retain(|index, _| !range.contains(index));
        let purged = Some(encode(&log_id));
        self.write_and_wait(|done| LogWrite::Remove {
            range,
            purged,
            done,
        })
        .await
    }
}
