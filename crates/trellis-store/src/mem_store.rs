//! `MemStore`: the store in memory, for tests, simulations and embedding.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use trellis_crdt::{wall_clock_millis, HybridClock, Record, ReplicaId, Timestamp};

use crate::index::{Bucket, Fingerprint, IndexEntry, KeyRange};
use crate::indexes::Indexes;
use crate::mem_tables::MemTables;
use crate::reader;
use crate::request::Request;
use crate::stats::Counters;
use crate::tables::ReadTables;
use crate::writer::{Effects, Writer};
use crate::{
    Applied, Change, CollectionInfo, Merged, Mutation, Origin, Page, Pending, Scan, Store,
    StoreConfig, StoreError, StoreStats,
};

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
    indexes: Indexes,
    counters: Counters,
    replica: ReplicaId,
    seq: watch::Sender<u64>,
    wall: WallClock,
}

struct MemState {
    tables: MemTables,
    writer: Writer,
}

impl MemStore {
    /// An empty store for `replica`, reading the system clock.
    pub fn new(replica: ReplicaId, config: StoreConfig) -> Self {
        Self::with_wall_clock(replica, config, Arc::new(wall_clock_millis))
    }

    /// An empty store whose hybrid clock reads wall time from `wall`.
    pub fn with_wall_clock(replica: ReplicaId, config: StoreConfig, wall: WallClock) -> Self {
        let tables = MemTables::default();
        let clock = HybridClock::new(config.max_clock_skew);
        let writer = Writer::new(replica, clock, 0, 0, &config);
        MemStore {
            state: Mutex::new(MemState { tables, writer }),
            indexes: Indexes::default(),
            counters: Counters::default(),
            replica,
            seq: watch::Sender::new(0),
            wall,
        }
    }

    fn lock(&self) -> MutexGuard<'_, MemState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs one request as a batch of its own.
    fn run(&self, request: Request) {
        let mut state = self.lock();
        let MemState { tables, writer } = &mut *state;
        let mut effects = Effects::default();
        let outcome = request.run(writer, tables, (self.wall)(), &mut effects);
        let finished = writer.finish(tables);
        self.counters.batch(effects.writes, effects.corrupt);
        self.indexes.apply(effects.index);
        self.seq.send_replace(writer.last_seq);
        drop(state);
        outcome.deliver(finished.err().as_ref());
    }

    fn report_corrupt(&self, err: &StoreError) {
        if let StoreError::Corrupt {
            collection, key, ..
        } = err
        {
            self.run(Request::Recheck {
                collection: collection.clone(),
                key: key.clone(),
            });
        }
    }

    /// Overwrites a record's stored bytes, for tests of corruption handling.
    #[cfg(test)]
    pub(crate) fn corrupt_record(&self, collection: &str, key: &str, bytes: Vec<u8>) {
        self.lock().tables.corrupt_record(collection, key, bytes);
    }
}

impl Store for MemStore {
    fn replica_id(&self) -> ReplicaId {
        self.replica
    }

    fn clock_high_water(&self) -> Timestamp {
        self.lock().writer.clock.last()
    }

    fn apply(&self, collection: &str, key: &str, mutation: Mutation) -> Pending<Applied> {
        let (done, pending) = Pending::channel();
        self.run(Request::Apply {
            collection: collection.to_owned(),
            key: key.to_owned(),
            mutation,
            done,
        });
        pending
    }

    fn merge(&self, collection: &str, key: &str, state: Record, origin: Origin) -> Pending<Merged> {
        let (done, pending) = Pending::channel();
        self.run(Request::Merge {
            collection: collection.to_owned(),
            key: key.to_owned(),
            state,
            origin,
            done,
        });
        pending
    }

    fn get(&self, collection: &str, key: &str) -> Result<Option<Record>, StoreError> {
        let found = reader::get(&self.lock().tables, collection, key);
        found.inspect_err(|err| self.report_corrupt(err))
    }

    fn scan(&self, collection: &str, scan: &Scan) -> Result<Page, StoreError> {
        let mut corrupt = Vec::new();
        let page = reader::scan(&self.lock().tables, collection, scan, |err| {
            corrupt.push(err)
        });
        corrupt.iter().for_each(|err| self.report_corrupt(err));
        page
    }

    fn collections(&self) -> Result<Vec<CollectionInfo>, StoreError> {
        reader::collections(&self.lock().tables, &self.indexes)
    }

    fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        reader::changes_since(&self.lock().tables, after, limit)
    }

    fn last_seq(&self) -> u64 {
        *self.seq.borrow()
    }

    fn watch_seq(&self) -> watch::Receiver<u64> {
        self.seq.subscribe()
    }

    fn fingerprint(&self, collection: &str, range: &KeyRange) -> Fingerprint {
        self.indexes.fingerprint(collection, range)
    }

    fn split(&self, collection: &str, range: &KeyRange, k: usize) -> Vec<Bucket> {
        self.indexes.split(collection, range, k)
    }

    fn index_entries(
        &self,
        collection: &str,
        range: &KeyRange,
        limit: usize,
    ) -> Vec<(String, IndexEntry)> {
        self.indexes.entries(collection, range, limit)
    }

    fn stats(&self) -> StoreStats {
        let quarantined = self.lock().tables.quarantined_count().unwrap_or(0);
        self.counters.snapshot(quarantined)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undecodable_bytes_are_quarantined_not_fatal() {
        let store = MemStore::new(ReplicaId(1), StoreConfig::default());
        store
            .apply("leads", "l1", Mutation::Put(serde_json::json!({"a": 1})))
            .wait()
            .unwrap();
        store.corrupt_record("leads", "l1", vec![1, 0xff, 0xff]);
        let err = store.get("leads", "l1").unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert_eq!(store.stats().quarantined, 1);
        assert_eq!(store.stats().corrupt_records, 1);
        assert!(store.get("leads", "l1").unwrap().is_none());
        assert_eq!(store.collections().unwrap()[0].keys, 0);
    }
}
