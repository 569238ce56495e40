//! [`LogStore`]: the Raft log and vote in redb.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogId, RaftLogReader, StorageError};
use redb::{Database, Durability, ReadableDatabase, ReadableTable};

use super::flusher::Flusher;
use super::tables::{LAST_PURGED, LOG, MAX_ROW_BYTES, RAFT_META, VOTE};
use super::{any, decode, encode, off_runtime, read_error, read_row, write_error};
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

/// Removes the entries with index in `range`, and records `purged` as the
/// last purged log id if given, in one fsynced transaction.
fn remove(
    db: &Database,
    range: (Bound<u64>, Bound<u64>),
    purged: Option<CounterLogId>,
) -> Result<(), StorageError<u64>> {
    let txn = begin(db, Durability::Immediate)?;
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
            meta.insert(LAST_PURGED, encode(&purged).as_slice())
                .map_err(|e| write_error(any(e)))?;
        }
    }
    txn.commit().map_err(|e| write_error(any(e)))
}

/// Commits encoded entries without fsync: readable at once, durable after
/// the next flush.
fn append_rows(db: &Database, rows: Vec<(u64, Vec<u8>)>) -> Result<(), StorageError<u64>> {
    let txn = begin(db, Durability::None)?;
    {
        let mut table = txn.open_table(LOG).map_err(|e| write_error(any(e)))?;
        for (index, bytes) in rows {
            table
                .insert(index, bytes.as_slice())
                .map_err(|e| write_error(any(e)))?;
        }
    }
    txn.commit().map_err(|e| write_error(any(e)))
}

/// Writes the vote with fsync.
fn write_vote(db: &Database, vote: Vec<u8>) -> Result<(), StorageError<u64>> {
    let txn = begin(db, Durability::Immediate)?;
    {
        let mut meta = txn.open_table(RAFT_META).map_err(|e| write_error(any(e)))?;
        meta.insert(VOTE, vote.as_slice())
            .map_err(|e| write_error(any(e)))?;
    }
    txn.commit().map_err(|e| write_error(any(e)))
}

fn begin(
    db: &Database,
    durability: Durability,
) -> Result<redb::WriteTransaction, StorageError<u64>> {
    let mut txn = db.begin_write().map_err(|e| write_error(any(e)))?;
    txn.set_durability(durability)
        .map_err(|e| write_error(any(e)))?;
    Ok(txn)
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
        let (db, vote) = (self.db.clone(), encode(vote));
        off_runtime(move || write_vote(&db, vote)).await
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
        let rows: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|entry| (entry.get_log_id().index, encode(&entry)))
            .collect();
        let db = self.db.clone();
        match off_runtime(move || append_rows(&db, rows)).await {
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
        let db = self.db.clone();
        let range = (Bound::Included(log_id.index), Bound::Unbounded);
        off_runtime(move || remove(&db, range, None)).await
    }

    async fn purge(&mut self, log_id: CounterLogId) -> Result<(), StorageError<u64>> {
        let db = self.db.clone();
        let range = (Bound::Unbounded, Bound::Included(log_id.index));
        off_runtime(move || remove(&db, range, Some(log_id))).await
    }
}
