//! [`LogStore`]: the Raft log and vote in redb.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogId, RaftLogReader, StorageError};
use redb::{Database, Durability, ReadableDatabase, ReadableTable};

use super::flusher::Flusher;
use super::tables::{LAST_PURGED, LOG, MAX_ROW_BYTES, RAFT_META, VOTE};
use super::{any, decode, encode, read_error, read_row, write_error};
use crate::types::{CounterLogId, CounterRaft, CounterVote, LogEntry};

/// The Raft log and the vote, in the counter store's redb file.
///
/// Cheap to clone: clones share the database and serve as openraft's log
/// readers. Votes, truncations and purges commit with fsync before they
/// return; appends are reported to openraft once a group fsync covers
/// them.
#[derive(Debug, Clone)]
pub struct LogStore {
    db: Arc<Database>,
    flusher: Arc<Flusher>,
}

impl LogStore {
    pub(crate) fn new(db: Arc<Database>) -> std::io::Result<LogStore> {
        let flusher = Arc::new(Flusher::start(db.clone())?);
        Ok(LogStore { db, flusher })
    }

    fn durable_write(&self) -> Result<redb::WriteTransaction, StorageError<u64>> {
        let mut txn = self.db.begin_write().map_err(|e| write_error(any(e)))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| write_error(any(e)))?;
        Ok(txn)
    }

    /// Every entry whose index is in `range`, in order.
    fn entries(&self, range: (Bound<u64>, Bound<u64>)) -> Result<Vec<LogEntry>, StorageError<u64>> {
        let txn = self.db.begin_read().map_err(|e| read_error(any(e)))?;
        let table = txn.open_table(LOG).map_err(|e| read_error(any(e)))?;
        let mut entries = Vec::new();
        for row in table.range(range).map_err(|e| read_error(any(e)))? {
            let (_, bytes) = row.map_err(|e| read_error(any(e)))?;
            entries.push(decode(bytes.value(), MAX_ROW_BYTES, "log entry").map_err(read_error)?);
        }
        Ok(entries)
    }

    /// Removes the entries with index in `range`, and records `purged`
    /// as the last purged log id if given, in one durable transaction.
    fn remove(
        &self,
        range: (Bound<u64>, Bound<u64>),
        purged: Option<&CounterLogId>,
    ) -> Result<(), StorageError<u64>> {
        let txn = self.durable_write()?;
        {
            let mut table = txn.open_table(LOG).map_err(|e| write_error(any(e)))?;
            let doomed = table
                .range(range)
                .map_err(|e| write_error(any(e)))?
                .map(|row| row.map(|(index, _)| index.value()))
                .collect::<Result<Vec<u64>, _>>()
                .map_err(|e| write_error(any(e)))?;
            for index in doomed {
                table.remove(index).map_err(|e| write_error(any(e)))?;
            }
            if let Some(purged) = purged {
                let mut meta = txn.open_table(RAFT_META).map_err(|e| write_error(any(e)))?;
                meta.insert(LAST_PURGED, encode(purged).as_slice())
                    .map_err(|e| write_error(any(e)))?;
            }
        }
        txn.commit().map_err(|e| write_error(any(e)))
    }

    fn append_now(
        &self,
        entries: impl IntoIterator<Item = LogEntry>,
    ) -> Result<(), StorageError<u64>> {
        let txn = self.durable_write()?;
        {
            let mut table = txn.open_table(LOG).map_err(|e| write_error(any(e)))?;
            for entry in entries {
                table
                    .insert(entry.get_log_id().index, encode(&entry).as_slice())
                    .map_err(|e| write_error(any(e)))?;
            }
        }
        txn.commit().map_err(|e| write_error(any(e)))
    }

    fn last_entry_id(&self) -> Result<Option<CounterLogId>, StorageError<u64>> {
        let txn = self.db.begin_read().map_err(|e| read_error(any(e)))?;
        let table = txn.open_table(LOG).map_err(|e| read_error(any(e)))?;
        let last = table.last().map_err(|e| read_error(any(e)))?;
        match last {
            None => Ok(None),
            Some((_, bytes)) => {
                let entry: LogEntry =
                    decode(bytes.value(), MAX_ROW_BYTES, "log entry").map_err(read_error)?;
                Ok(Some(*entry.get_log_id()))
            }
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
        let last_purged_log_id: Option<CounterLogId> = read_row(&self.db, RAFT_META, LAST_PURGED)?;
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
        let txn = self.durable_write()?;
        {
            let mut meta = txn.open_table(RAFT_META).map_err(|e| write_error(any(e)))?;
            meta.insert(VOTE, encode(vote).as_slice())
                .map_err(|e| write_error(any(e)))?;
        }
        txn.commit().map_err(|e| write_error(any(e)))
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
        match self.append_now(entries) {
            Ok(()) => {
                self.flusher.after_flush(callback);
                Ok(())
            }
            Err(err) => {
                callback.log_io_completed(Err(std::io::Error::other(err.to_string())));
                Err(err)
            }
        }
    }

    async fn truncate(&mut self, log_id: CounterLogId) -> Result<(), StorageError<u64>> {
        self.remove((Bound::Included(log_id.index), Bound::Unbounded), None)
    }

    async fn purge(&mut self, log_id: CounterLogId) -> Result<(), StorageError<u64>> {
        self.remove(
            (Bound::Unbounded, Bound::Included(log_id.index)),
            Some(&log_id),
        )
    }
}
