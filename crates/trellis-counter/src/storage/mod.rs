//! Durable storage of the counter group in two redb files in the data
//! directory: the Raft log and vote ([`LogStore`], [`LOG_FILE`]) and the
//! state machine with its snapshot ([`StateMachineStore`],
//! [`STATE_FILE`]). Two files, so log appends never wait for the state
//! machine's writes or the other way round.
//!
//! Nothing is reported written to openraft before an fsynced commit
//! (`Durability::Immediate`) covers it, so nothing is acknowledged that a
//! crash could lose. The log is written by one thread (`flusher.rs`) that
//! puts consecutive appends in one fsynced transaction (group commit);
//! the state machine's commits run on tokio's blocking threads. Every row is read
//! back through [`trellis_crdt::codec::decode_with_limit`]; bad bytes
//! become a storage error, never a panic.

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

/// The file of the Raft log and vote inside the data directory.
pub const LOG_FILE: &str = "raft-log.redb";

/// The file of the state machine and snapshot inside the data directory.
pub const STATE_FILE: &str = "state.redb";

/// Opens (or creates) the counter store in the directory `dir` (which
/// must exist) and returns its two halves, as openraft wants them.
pub fn open_store(
    dir: &Path,
    retention: DedupeRetention,
) -> Result<(LogStore, StateMachineStore), CounterError> {
    let log_db = open_db(&dir.join(LOG_FILE), &[tables::LOG], &[tables::RAFT_META])?;
    let state_path = dir.join(STATE_FILE);
    let state_db = open_db(
        &state_path,
        &[],
        &[
            tables::COUNTERS,
            tables::KEYS,
            tables::STATE_META,
            tables::SNAPSHOT,
        ],
    )?;
    let log_path = dir.join(LOG_FILE);
    let log = LogStore::new(log_db)
        .map_err(|err| CounterError::Storage(format!("{}: {err}", log_path.display())))?;
    let state_machine = StateMachineStore::open(state_db, retention)
        .map_err(|err| CounterError::Storage(format!("{}: {err}", state_path.display())))?;
    Ok((log, state_machine))
}

/// Opens one database and creates its tables, so read transactions never
/// meet a missing one.
fn open_db(
    path: &Path,
    indexed: &[redb::TableDefinition<'_, u64, &[u8]>],
    named: &[redb::TableDefinition<'_, &str, &[u8]>],
) -> Result<Arc<Database>, CounterError> {
    let create = || -> Result<Database, redb::Error> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        for table in indexed {
            txn.open_table(*table)?;
        }
        for table in named {
            txn.open_table(*table)?;
        }
        txn.commit()?;
        Ok(db)
    };
    create()
        .map(Arc::new)
        .map_err(|err| CounterError::Storage(format!("{}: {err}", path.display())))
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

/// Runs blocking redb work (an fsync, or a wait for the single writer) on
/// tokio's blocking threads, so the runtime's own threads keep serving.
async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError<u64>> + Send + 'static,
) -> Result<T, StorageError<u64>> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| write_error(any(err)))?
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
