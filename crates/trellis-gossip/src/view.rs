//! `IndexView`: what reconciliation reads from one collection's index.

use trellis_crdt::Digest;
use trellis_store::index::{Bucket, Fingerprint, KeyRange, RangeIndex};
use trellis_store::Store;

/// Read access to one collection's reconciliation index.
pub trait IndexView {
    /// The fingerprint of `range`.
    fn fingerprint(&self, range: &KeyRange) -> Fingerprint;

    /// `range` split into `k` buckets of (nearly) equal count, tiling it.
    fn split(&self, range: &KeyRange, k: usize) -> Vec<Bucket>;

    /// Every entry in `range`, in key order.
    fn entries(&self, range: &KeyRange) -> Vec<(String, Digest)>;
}

impl IndexView for RangeIndex {
    fn fingerprint(&self, range: &KeyRange) -> Fingerprint {
        RangeIndex::fingerprint(self, range)
    }

    fn split(&self, range: &KeyRange, k: usize) -> Vec<Bucket> {
        RangeIndex::split(self, range, k)
    }

    fn entries(&self, range: &KeyRange) -> Vec<(String, Digest)> {
        self.range(range)
            .map(|(key, entry)| (key.to_owned(), entry.digest))
            .collect()
    }
}

/// One collection of a [`Store`], seen as an index.
pub struct StoreCollection<'a, S: ?Sized> {
    store: &'a S,
    collection: &'a str,
}

impl<'a, S: Store + ?Sized> StoreCollection<'a, S> {
    /// The index of `collection` in `store`.
    pub fn new(store: &'a S, collection: &'a str) -> Self {
        StoreCollection { store, collection }
    }
}

impl<S: Store + ?Sized> IndexView for StoreCollection<'_, S> {
    fn fingerprint(&self, range: &KeyRange) -> Fingerprint {
        self.store.fingerprint(self.collection, range)
    }

    fn split(&self, range: &KeyRange, k: usize) -> Vec<Bucket> {
        self.store.split(self.collection, range, k)
    }

    fn entries(&self, range: &KeyRange) -> Vec<(String, Digest)> {
        self.store
            .index_entries(self.collection, range, usize::MAX)
            .into_iter()
            .map(|(key, entry)| (key, entry.digest))
            .collect()
    }
}
