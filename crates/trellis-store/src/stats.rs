//! Operator counters, updated lock-free.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::StoreStats;

/// The counters behind [`StoreStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    corrupt_records: AtomicU64,
    batches: AtomicU64,
    writes: AtomicU64,
    index_rebuilds: AtomicU64,
}

impl Counters {
    /// Counts a committed batch.
    pub fn batch(&self, writes: u64, corrupt: u64) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes, Ordering::Relaxed);
        self.corrupt(corrupt);
    }

    /// Counts corrupt records found.
    pub fn corrupt(&self, found: u64) {
        self.corrupt_records.fetch_add(found, Ordering::Relaxed);
    }

    /// Counts collections whose index entries were rebuilt on open.
    pub fn rebuilt(&self, count: u64) {
        self.index_rebuilds.fetch_add(count, Ordering::Relaxed);
    }

    /// A snapshot, with the current quarantine size.
    pub fn snapshot(&self, quarantined: u64) -> StoreStats {
        StoreStats {
            corrupt_records: self.corrupt_records.load(Ordering::Relaxed),
            quarantined,
            batches: self.batches.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            index_rebuilds: self.index_rebuilds.load(Ordering::Relaxed),
        }
    }
}
