//! Durable storage of the counter group in one redb file: the Raft log and
//! vote ([`LogStore`]) and the state machine with its snapshot
//! ([`StateMachineStore`]).
//!
//! Nothing is reported written to openraft before an fsynced commit
//! (`Durability::Immediate`) covers it, so nothing is acknowledged that a
//! crash could lose. Log appends commit without fsync and are made
//! durable in groups by one background thread (`flusher.rs`); votes,
//! truncations, purges, applies and snapshots commit with fsync directly. Every row is read back through
//! [`trellis_crdt::codec::decode_with_limit`]; bad bytes become a storage
//! error, never a panic.

// openraft's storage traits return its `StorageError` (over 200 bytes);
// the helpers here return it too instead of boxing and unboxing it.
#![allow(clippy::result_large_err)]

mod flusher;
mod log;
mod state_machine;
mod tables;

use std::path::Path;
use std::sync::Arc;

use openraft::{AnyError, StorageError, StorageIOError};
use redb::{Database, ReadableDatabase};
use serde::de::DeserializeOwned;
use serde::Serialize;
use trellis_crdt::codec;

pub use log::LogStore;
pub use state_machine::{SharedState, SnapshotBuilder, StateMachineStore};
pub use tables::MAX_SNAPSHOT_BYTES;

use crate::error::CounterError;
use crate::state::DedupeRetention;

/// The file name of the counter store inside the data directory.
pub const STORE_FILE: &str = "counters.redb";

/// Opens (or creates) the counter store at `path` and returns its two
/// halves, as openraft wants them.
pub fn open_store(
    path: &Path,
    retention: DedupeRetention,
) -> Result<(LogStore, StateMachineStore), CounterError> {
    let storage =
        |err: &dyn std::fmt::Display| CounterError::Storage(format!("{}: {err}", path.display()));
    let db = Database::create(path).map_err(|err| storage(&err))?;
    create_tables(&db).map_err(|err| storage(&err))?;
    let db = Arc::new(db);
    let log = LogStore::new(db.clone()).map_err(|err| storage(&err))?;
    let state_machine = StateMachineStore::open(db, retention).map_err(|err| storage(&err))?;
    Ok((log, state_machine))
}

/// Creates every table, so read transactions never meet a missing one.
fn create_tables(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(tables::LOG)?;
    txn.open_table(tables::RAFT_META)?;
    txn.open_table(tables::COUNTERS)?;
    txn.open_table(tables::KEYS)?;
    txn.open_table(tables::STATE_META)?;
    txn.open_table(tables::SNAPSHOT)?;
    txn.commit()?;
    Ok(())
}

/// Encodes a row.
fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    codec::encode(value)
}

/// Decodes a row, refusing more than `limit` bytes.
fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize, what: &str) -> Result<T, AnyError> {
    codec::decode_with_limit(bytes, limit)
        .map_err(|err| AnyError::error(format!("corrupt {what} in the counter store: {err}")))
}

/// Wraps any error as openraft's `AnyError`.
fn any(err: impl std::fmt::Display) -> AnyError {
    AnyError::error(err.to_string())
}

/// A storage error while reading.
fn read_error(err: impl Into<AnyError>) -> StorageError<u64> {
    StorageIOError::read(err).into()
}

/// A storage error while writing.
fn write_error(err: impl Into<AnyError>) -> StorageError<u64> {
    StorageIOError::write(err).into()
}

/// Reads one row of a `&str → bytes` table.
fn read_row<T: DeserializeOwned>(
    db: &Database,
    table: redb::TableDefinition<'_, &str, &[u8]>,
    key: &str,
) -> Result<Option<T>, StorageError<u64>> {
    let txn = db.begin_read().map_err(|e| read_error(any(e)))?;
    let table = txn.open_table(table).map_err(|e| read_error(any(e)))?;
    let row = table.get(key).map_err(|e| read_error(any(e)))?;
    match row {
        None => Ok(None),
        Some(bytes) => decode(bytes.value(), tables::MAX_ROW_BYTES, key)
            .map(Some)
            .map_err(read_error),
    }
}
