//! What a store implementation provides, and the [`Store`] implementation
//! written once on top of it.
//!
//! A store is an [`Engine`]: somewhere to send write requests and a way to
//! read a consistent view of its tables. `RedbStore` sends requests to its
//! commit thread and reads through redb transactions; `MemStore` runs
//! requests at once and reads its maps under a lock. Everything else is
//! here.

use tokio::sync::watch;
use trellis_crdt::{Record, ReplicaId, Timestamp};

use crate::index::{Bucket, Fingerprint, IndexEntry, KeyRange};
use crate::indexes::Indexes;
use crate::reader;
use crate::request::Request;
use crate::stats::Counters;
use crate::tables::ReadTables;
use crate::writer::Effects;
use crate::{
    Applied, Change, CollectionInfo, Merged, Mutation, Origin, Page, Pending, Scan, Store,
    StoreError, StoreStats,
};

/// The parts every engine keeps the same way.
pub(crate) struct Common {
    /// This replica.
    pub replica: ReplicaId,
    /// The in-memory reconciliation indexes.
    pub indexes: Indexes,
    /// Operator counters.
    pub counters: Counters,
    /// The latest committed change sequence number.
    pub seq: watch::Sender<u64>,
}

impl Common {
    pub fn new(replica: ReplicaId, indexes: Indexes, last_seq: u64) -> Self {
        Common {
            replica,
            indexes,
            counters: Counters::default(),
            seq: watch::Sender::new(last_seq),
        }
    }

    /// Makes a committed batch visible: counts it, applies its index
    /// changes and live counts, and publishes its last sequence number.
    /// Runs before the batch's writes are answered, so that a writer that
    /// has its answer finds its write in the index.
    pub fn publish(&self, effects: Effects, last_seq: u64) {
        self.counters.batch(effects.writes, effects.corrupt);
        self.indexes.apply(effects.index, effects.live);
        self.seq.send_replace(last_seq);
    }
}

/// Sealed: only this crate's stores are engines. The trait must be `pub`
/// to bound the public `Store` implementation, but nothing outside the
/// crate can name it, so its crate-internal signatures are intended.
#[allow(private_interfaces, private_bounds)]
pub(crate) mod sealed {
    use super::*;

    /// A store implementation's own parts.
    pub trait Engine: Send + Sync + 'static {
        /// The shared parts.
        fn common(&self) -> &Common;

        /// Queues (or runs) a write request; it answers through the
        /// completion it carries.
        fn submit(&self, request: Request);

        /// Runs `read` against one consistent view of the tables.
        fn read<T>(
            &self,
            read: impl FnOnce(&dyn ReadTables) -> Result<T, StoreError>,
        ) -> Result<T, StoreError>;

        /// The clock's high-water mark.
        fn clock_high_water(&self) -> Timestamp;
    }
}

use sealed::Engine;

/// Asks the engine to quarantine a record a reader found corrupt.
fn report_corrupt(engine: &impl Engine, err: &StoreError) {
    if let StoreError::Corrupt {
        collection, key, ..
    } = err
    {
        engine.submit(Request::Recheck {
            collection: collection.clone(),
            key: key.clone(),
        });
    }
}

impl<E: Engine> Store for E {
    fn replica_id(&self) -> ReplicaId {
        self.common().replica
    }

    fn clock_high_water(&self) -> Timestamp {
        Engine::clock_high_water(self)
    }

    fn apply(&self, collection: &str, key: &str, mutation: Mutation) -> Pending<Applied> {
        let (done, pending) = Pending::channel();
        self.submit(Request::Apply {
            collection: collection.to_owned(),
            key: key.to_owned(),
            mutation,
            prepared: None,
            done,
        });
        pending
    }

    fn merge(&self, collection: &str, key: &str, state: Record, origin: Origin) -> Pending<Merged> {
        let (done, pending) = Pending::channel();
        self.submit(Request::Merge {
            collection: collection.to_owned(),
            key: key.to_owned(),
            state,
            origin,
            done,
        });
        pending
    }

    fn get(&self, collection: &str, key: &str) -> Result<Option<Record>, StoreError> {
        self.read(|tables| reader::get(tables, collection, key))
            .inspect_err(|err| report_corrupt(self, err))
    }

    fn scan(&self, collection: &str, scan: &Scan) -> Result<Page, StoreError> {
        let mut corrupt = Vec::new();
        let page =
            self.read(|tables| reader::scan(tables, collection, scan, |err| corrupt.push(err)));
        corrupt.iter().for_each(|err| report_corrupt(self, err));
        page
    }

    fn collections(&self) -> Result<Vec<CollectionInfo>, StoreError> {
        self.read(|tables| reader::collections(tables, &self.common().indexes))
    }

    fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError> {
        self.read(|tables| reader::changes_since(tables, after, limit))
    }

    fn last_seq(&self) -> u64 {
        *self.common().seq.borrow()
    }

    fn watch_seq(&self) -> watch::Receiver<u64> {
        self.common().seq.subscribe()
    }

    fn fingerprint(&self, collection: &str, range: &KeyRange) -> Fingerprint {
        self.common().indexes.fingerprint(collection, range)
    }

    fn split(&self, collection: &str, range: &KeyRange, k: usize) -> Vec<Bucket> {
        self.common().indexes.split(collection, range, k)
    }

    fn index_entries(
        &self,
        collection: &str,
        range: &KeyRange,
        limit: usize,
    ) -> Vec<(String, IndexEntry)> {
        self.common().indexes.entries(collection, range, limit)
    }

    fn stats(&self) -> StoreStats {
        let quarantined = self.read(|tables| tables.quarantined_count()).unwrap_or(0);
        self.common().counters.snapshot(quarantined)
    }
}
