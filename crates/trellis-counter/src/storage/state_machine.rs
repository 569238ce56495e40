//! [`StateMachineStore`]: the counters, the idempotency table and the
//! current snapshot in redb, with an in-memory copy for reads.

use std::io::Cursor;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, Snapshot, StorageError,
    StorageIOError, StoredMembership,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTable};

use super::tables::{
    CLOCK, COUNTERS, KEYS, LAST_APPLIED, MAX_ROW_BYTES, MAX_SNAPSHOT_BYTES, MEMBERSHIP, SNAPSHOT,
    SNAPSHOT_DATA, SNAPSHOT_META, STATE_META,
};
use super::{any, decode, encode, off_runtime, read_error, read_row, write_error};
use crate::command::Applied;
use crate::state::{Changes, CounterState, DedupeRetention, StateImage};
use crate::types::{CounterLogId, CounterMembership, CounterRaft, CounterSnapshotMeta, LogEntry};

/// The applied state, shared between the state machine (which writes it)
/// and the service (which reads it after a read-index check).
#[derive(Debug)]
pub struct SharedState {
    state: RwLock<CounterState>,
}

impl SharedState {
    /// Reads the state.
    pub fn read(&self) -> RwLockReadGuard<'_, CounterState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, CounterState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The state machine of the counter group.
///
/// `apply` changes the in-memory state and writes the touched rows, the
/// last applied log id and the membership in one fsynced transaction
/// before returning, so after a restart the state machine resumes exactly
/// where it stopped.
#[derive(Debug)]
pub struct StateMachineStore {
    db: Arc<Database>,
    shared: Arc<SharedState>,
    last_applied: Option<CounterLogId>,
    membership: CounterMembership,
    retention: DedupeRetention,
}

/// Builds a snapshot from a copy of the state taken when it was created,
/// so applying can go on meanwhile.
#[derive(Debug)]
pub struct SnapshotBuilder {
    db: Arc<Database>,
    image: StateImage,
    last_applied: Option<CounterLogId>,
    membership: CounterMembership,
}

impl StateMachineStore {
    pub(crate) fn open(
        db: Arc<Database>,
        retention: DedupeRetention,
    ) -> Result<StateMachineStore, StorageError<u64>> {
        let last_applied: Option<CounterLogId> =
            read_row::<Option<CounterLogId>>(&db, STATE_META, LAST_APPLIED)?.flatten();
        let membership = read_row(&db, STATE_META, MEMBERSHIP)?.unwrap_or_default();
        let clock_ms = read_row(&db, STATE_META, CLOCK)?.unwrap_or(0);
        let mut image = StateImage {
            clock_ms,
            ..StateImage::default()
        };
        {
            let txn = db.begin_read().map_err(|e| read_error(any(e)))?;
            let counters = txn.open_table(COUNTERS).map_err(|e| read_error(any(e)))?;
            for row in counters.iter().map_err(|e| read_error(any(e)))? {
                let (name, bytes) = row.map_err(|e| read_error(any(e)))?;
                let counter =
                    decode(bytes.value(), MAX_ROW_BYTES, "counter").map_err(read_error)?;
                image.counters.push((name.value().to_owned(), counter));
            }
            let keys = txn.open_table(KEYS).map_err(|e| read_error(any(e)))?;
            for row in keys.iter().map_err(|e| read_error(any(e)))? {
                let (key, bytes) = row.map_err(|e| read_error(any(e)))?;
                let record = decode(bytes.value(), MAX_ROW_BYTES, "idempotency record")
                    .map_err(read_error)?;
                image.keys.push((key.value().to_owned(), record));
            }
        }
        Ok(StateMachineStore {
            db,
            shared: Arc::new(SharedState {
                state: RwLock::new(CounterState::from_image(image, retention)),
            }),
            last_applied,
            membership,
            retention,
        })
    }

    /// The applied state, for reads.
    pub fn shared(&self) -> Arc<SharedState> {
        self.shared.clone()
    }

    fn durable_write(&self) -> Result<redb::WriteTransaction, StorageError<u64>> {
        let mut txn = self.db.begin_write().map_err(|e| write_error(any(e)))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| write_error(any(e)))?;
        Ok(txn)
    }

    /// Applies `entries` to the in-memory state and returns the replies
    /// and the rows to persist.
    fn apply_in_memory(
        &mut self,
        entries: impl IntoIterator<Item = LogEntry>,
    ) -> (Vec<Applied>, StateWrite) {
        let mut changes = Changes::default();
        let mut replies = Vec::new();
        let mut state = self.shared.write();
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            let reply = match entry.payload {
                EntryPayload::Blank => Applied::Internal,
                EntryPayload::Normal(proposal) => {
                    state.apply(entry.log_id.index, &proposal, &mut changes)
                }
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Applied::Internal
                }
            };
            replies.push(reply);
        }
        let write = StateWrite {
            counters: changes
                .counters
                .iter()
                .filter_map(|name| Some((name.clone(), encode(&state.counter(name)?))))
                .collect(),
            keys_forgotten: changes.keys_forgotten,
            keys_recorded: changes
                .keys_recorded
                .iter()
                .filter_map(|key| Some((key.clone(), encode(state.record(key)?))))
                .collect(),
            meta: [
                (LAST_APPLIED, encode(&self.last_applied)),
                (MEMBERSHIP, encode(&self.membership)),
                (CLOCK, encode(&state.clock_ms())),
            ],
        };
        (replies, write)
    }

    /// Replaces the whole state with a snapshot's, durably.
    fn install_now(
        &mut self,
        meta: &CounterSnapshotMeta,
        data: Vec<u8>,
    ) -> Result<(), StorageError<u64>> {
        let signature = Some(meta.signature());
        let image: StateImage = decode(&data, MAX_SNAPSHOT_BYTES, "snapshot")
            .map_err(|e| StorageError::from(StorageIOError::read_snapshot(signature.clone(), e)))?;
        let write_snapshot =
            |e: AnyError| StorageError::from(StorageIOError::write_snapshot(signature.clone(), e));
        let txn = self.durable_write()?;
        txn.delete_table(COUNTERS)
            .map_err(|e| write_snapshot(any(e)))?;
        txn.delete_table(KEYS).map_err(|e| write_snapshot(any(e)))?;
        {
            let mut counters = txn
                .open_table(COUNTERS)
                .map_err(|e| write_snapshot(any(e)))?;
            for (name, counter) in &image.counters {
                counters
                    .insert(name.as_str(), encode(counter).as_slice())
                    .map_err(|e| write_snapshot(any(e)))?;
            }
            let mut keys = txn.open_table(KEYS).map_err(|e| write_snapshot(any(e)))?;
            for (key, record) in &image.keys {
                keys.insert(key.as_str(), encode(record).as_slice())
                    .map_err(|e| write_snapshot(any(e)))?;
            }
            let mut state_meta = txn
                .open_table(STATE_META)
                .map_err(|e| write_snapshot(any(e)))?;
            state_meta
                .insert(LAST_APPLIED, encode(&meta.last_log_id).as_slice())
                .map_err(|e| write_snapshot(any(e)))?;
            state_meta
                .insert(MEMBERSHIP, encode(&meta.last_membership).as_slice())
                .map_err(|e| write_snapshot(any(e)))?;
            state_meta
                .insert(CLOCK, encode(&image.clock_ms).as_slice())
                .map_err(|e| write_snapshot(any(e)))?;
            let mut snapshot = txn
                .open_table(SNAPSHOT)
                .map_err(|e| write_snapshot(any(e)))?;
            snapshot
                .insert(SNAPSHOT_META, encode(meta).as_slice())
                .map_err(|e| write_snapshot(any(e)))?;
            snapshot
                .insert(SNAPSHOT_DATA, data.as_slice())
                .map_err(|e| write_snapshot(any(e)))?;
        }
        txn.commit().map_err(|e| write_snapshot(any(e)))?;
        *self.shared.write() = CounterState::from_image(image, self.retention);
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        Ok(())
    }
}

/// The rows one `apply` changed, written in one fsynced transaction.
struct StateWrite {
    counters: Vec<(String, Vec<u8>)>,
    keys_forgotten: Vec<String>,
    keys_recorded: Vec<(String, Vec<u8>)>,
    meta: [(&'static str, Vec<u8>); 3],
}

impl StateWrite {
    fn commit(self, db: &Database) -> Result<(), StorageError<u64>> {
        let mut txn = db.begin_write().map_err(|e| write_error(any(e)))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| write_error(any(e)))?;
        {
            let mut counters = txn.open_table(COUNTERS).map_err(|e| write_error(any(e)))?;
            for (name, bytes) in &self.counters {
                counters
                    .insert(name.as_str(), bytes.as_slice())
                    .map_err(|e| write_error(any(e)))?;
            }
            let mut keys = txn.open_table(KEYS).map_err(|e| write_error(any(e)))?;
            for key in &self.keys_forgotten {
                keys.remove(key.as_str()).map_err(|e| write_error(any(e)))?;
            }
            for (key, bytes) in &self.keys_recorded {
                keys.insert(key.as_str(), bytes.as_slice())
                    .map_err(|e| write_error(any(e)))?;
            }
            let mut meta = txn
                .open_table(STATE_META)
                .map_err(|e| write_error(any(e)))?;
            for (row, bytes) in &self.meta {
                meta.insert(*row, bytes.as_slice())
                    .map_err(|e| write_error(any(e)))?;
            }
        }
        txn.commit().map_err(|e| write_error(any(e)))
    }
}

/// Reads the stored snapshot, if any.
fn stored_snapshot(
    db: &Database,
) -> Result<Option<(CounterSnapshotMeta, Vec<u8>)>, StorageError<u64>> {
    let txn = db.begin_read().map_err(|e| read_error(any(e)))?;
    let table = txn.open_table(SNAPSHOT).map_err(|e| read_error(any(e)))?;
    let meta = table.get(SNAPSHOT_META).map_err(|e| read_error(any(e)))?;
    let data = table.get(SNAPSHOT_DATA).map_err(|e| read_error(any(e)))?;
    match (meta, data) {
        (Some(meta), Some(data)) => {
            let meta =
                decode(meta.value(), MAX_ROW_BYTES, "snapshot metadata").map_err(read_error)?;
            Ok(Some((meta, data.value().to_vec())))
        }
        _ => Ok(None),
    }
}

impl RaftSnapshotBuilder<CounterRaft> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<CounterRaft>, StorageError<u64>> {
        let data = encode(&self.image);
        let snapshot_id = match &self.last_applied {
            Some(log_id) => format!("{}-{}-{}", log_id.leader_id, log_id.index, data.len()),
            None => format!("empty-{}", data.len()),
        };
        let meta = CounterSnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let signature = Some(meta.signature());
        let write_snapshot =
            |e: AnyError| StorageError::from(StorageIOError::write_snapshot(signature.clone(), e));
        let mut txn = self.db.begin_write().map_err(|e| write_snapshot(any(e)))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| write_snapshot(any(e)))?;
        {
            let mut table = txn
                .open_table(SNAPSHOT)
                .map_err(|e| write_snapshot(any(e)))?;
            let newer_stored = match table
                .get(SNAPSHOT_META)
                .map_err(|e| write_snapshot(any(e)))?
            {
                Some(stored) => {
                    let stored: CounterSnapshotMeta =
                        decode(stored.value(), MAX_ROW_BYTES, "snapshot metadata")
                            .map_err(write_snapshot)?;
                    stored.last_log_id > meta.last_log_id
                }
                None => false,
            };
            // A snapshot installed from the leader meanwhile is newer: keep it.
            if !newer_stored {
                table
                    .insert(SNAPSHOT_META, encode(&meta).as_slice())
                    .map_err(|e| write_snapshot(any(e)))?;
                table
                    .insert(SNAPSHOT_DATA, data.as_slice())
                    .map_err(|e| write_snapshot(any(e)))?;
            }
        }
        txn.commit().map_err(|e| write_snapshot(any(e)))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<CounterRaft> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<CounterLogId>, CounterMembership), StorageError<u64>> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<u64>>
    where
        I: IntoIterator<Item = LogEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let (replies, write) = self.apply_in_memory(entries);
        let db = self.db.clone();
        off_runtime(move || write.commit(&db)).await?;
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            image: self.shared.read().image(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &CounterSnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        self.install_now(meta, snapshot.into_inner())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<CounterRaft>>, StorageError<u64>> {
        Ok(stored_snapshot(&self.db)?.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
