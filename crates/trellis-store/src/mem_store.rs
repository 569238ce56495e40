//! `MemStore`: the store in memory, for tests, simulations and embedding.

use std::sync::{Arc, Mutex, MutexGuard};

use trellis_crdt::{wall_clock_millis, HybridClock, ReplicaId, Timestamp};

use crate::clock::SharedClock;
use crate::engine::{sealed::Engine, Common};
use crate::indexes::Indexes;
use crate::mem_tables::MemTables;
use crate::request::Request;
use crate::tables::ReadTables;
use crate::writer::{Effects, Writer};
use crate::{StoreConfig, StoreError};

/// A source of wall-clock milliseconds.
pub type WallClock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The store kept in memory: the same write and read logic as
/// [`RedbStore`](crate::RedbStore) over plain maps, with no thread and no
/// file. Each write completes before `apply` or `merge` returns, so runs
/// are deterministic; with [`MemStore::with_wall_clock`] the clock is too.
/// Nothing survives the process.
///
/// ```
/// use trellis_crdt::ReplicaId;
/// use trellis_store::{MemStore, Mutation, Store, StoreConfig};
///
/// let store = MemStore::new(ReplicaId(1), StoreConfig::default());
/// store.apply("leads", "l1", Mutation::Put(serde_json::json!({"stage": "new"}))).wait()?;
/// assert_eq!(store.collections()?[0].live, 1);
/// # Ok::<(), trellis_store::StoreError>(())
/// ```
pub struct MemStore {
    state: Mutex<MemState>,
    common: Common,
    wall: WallClock,
}

struct MemState {
    tables: MemTables,
    writer: Writer,
}

impl MemStore {
    /// An empty store for `replica`, reading the system clock (shifted by
    /// [`StoreConfig::clock_offset_ms`]).
    pub fn new(replica: ReplicaId, config: StoreConfig) -> Self {
        let offset = config.clock_offset_ms;
        let wall: WallClock =
            Arc::new(move || crate::config::offset_clock(wall_clock_millis(), offset));
        Self::with_wall_clock(replica, config, wall)
    }

    /// An empty store whose hybrid clock reads wall time from `wall`.
    pub fn with_wall_clock(replica: ReplicaId, config: StoreConfig, wall: WallClock) -> Self {
        let clock = SharedClock::new(HybridClock::new(config.max_clock_skew));
        let writer = Writer::new(replica, clock, 0, 0, &config);
        MemStore {
            state: Mutex::new(MemState {
                tables: MemTables::default(),
                writer,
            }),
            common: Common::new(replica, Indexes::default(), 0),
            wall,
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Overwrites a record's stored bytes, for tests of corruption handling.
    #[cfg(test)]
    pub(crate) fn corrupt_record(&self, collection: &str, key: &str, bytes: Vec<u8>) {
        self.lock().tables.corrupt_record(collection, key, bytes);
    }
}

// Crate-internal signatures of a sealed trait; see `engine::sealed`.
#[allow(private_interfaces, private_bounds)]
impl Engine for MemStore {
    fn common(&self) -> &Common {
        &self.common
    }

    /// Runs the request at once, as a batch of its own.
    fn submit(&self, request: Request) {
        let mut state = self.lock();
        let MemState { tables, writer } = &mut *state;
        let mut effects = Effects::default();
        let outcome = request.run(writer, tables, (self.wall)(), &mut effects);
        let finished = writer.finish(tables, &mut effects);
        self.common.publish(effects, writer.last_seq);
        drop(state);
        outcome.deliver(finished.err().as_ref());
    }

    fn read<T>(
        &self,
        read: impl FnOnce(&dyn ReadTables) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        read(&self.lock().tables)
    }

    fn clock_high_water(&self) -> Timestamp {
        self.lock().writer.clock.last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Mutation, Store};

    /// A store whose record `leads/l1` no longer decodes.
    fn store_with_corrupt_record() -> MemStore {
        let store = MemStore::new(ReplicaId(1), StoreConfig::default());
        store
            .apply("leads", "l1", Mutation::Put(serde_json::json!({"a": 1})))
            .wait()
            .unwrap();
        store.corrupt_record("leads", "l1", vec![1, 0xff, 0xff]);
        store
    }

    #[test]
    fn undecodable_bytes_are_quarantined_not_fatal() {
        let store = store_with_corrupt_record();
        let err = store.get("leads", "l1").unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert_eq!(store.stats().quarantined, 1);
        assert_eq!(store.stats().corrupt_records, 1);
        assert!(store.get("leads", "l1").unwrap().is_none());
        assert_eq!(store.collections().unwrap()[0].keys, 0);
    }

    #[test]
    fn a_deleted_record_found_corrupt_leaves_the_live_count_alone() {
        let store = MemStore::new(ReplicaId(1), StoreConfig::default());
        for key in ["l1", "l2"] {
            store
                .apply("leads", key, Mutation::Put(serde_json::json!({"a": 1})))
                .wait()
                .unwrap();
        }
        store.delete("leads", "l2").wait().unwrap();
        assert_eq!(store.collections().unwrap()[0].live, 1);
        store.corrupt_record("leads", "l2", vec![1, 0xff, 0xff]);
        assert!(store.get("leads", "l2").is_err());
        assert_eq!(store.stats().quarantined, 1);
        // l1 is still live; the corrupt record was a deleted one.
        assert_eq!(store.collections().unwrap()[0].live, 1);
        // A live record found corrupt does leave the count.
        store.corrupt_record("leads", "l1", vec![1, 0xff, 0xff]);
        assert!(store.get("leads", "l1").is_err());
        assert_eq!(store.collections().unwrap()[0].live, 0);
    }

    #[test]
    fn a_write_to_a_record_found_corrupt_is_refused() {
        let store = store_with_corrupt_record();
        // No read noticed the corruption first: the write itself finds it.
        let err = store
            .apply("leads", "l1", Mutation::Put(serde_json::json!({"a": 2})))
            .wait()
            .unwrap_err();
        assert!(matches!(err, StoreError::Quarantined { .. }), "{err}");
        assert_eq!(store.stats().quarantined, 1);
        assert!(store.get("leads", "l1").unwrap().is_none());
    }
}
