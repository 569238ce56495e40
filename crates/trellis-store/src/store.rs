//! The `Store` trait and the values it takes and returns.

use serde::{Deserialize, Serialize};
use trellis_crdt::{Digest, Op, Record, ReplicaId, Timestamp};

use crate::index::{Bucket, Fingerprint, IndexEntry, KeyRange};
use crate::{Pending, StoreError};

/// A local change to one record.
#[derive(Clone, Debug, PartialEq)]
pub enum Mutation {
    /// Replace the record with this JSON object (see
    /// [`Record::put_json`]).
    Put(serde_json::Value),
    /// Apply field operations in order.
    Patch(Vec<Op>),
    /// Delete the record (observed-remove: concurrent updates elsewhere
    /// survive).
    Delete,
}

/// The outcome of a local mutation, once durable.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The delta to replicate to peers.
    pub delta: Record,
    /// The record after the change.
    pub record: Record,
    /// The digest of the record after the change.
    pub digest: Digest,
    /// The change-feed sequence number of this change.
    pub seq: u64,
    /// The hybrid-clock time of the change.
    pub time: Timestamp,
}

/// Where a remote change came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The replica that made the change (or sent the state).
    pub replica: ReplicaId,
    /// Its hybrid-clock time for the change. Refused if further ahead of
    /// local time than the configured maximum clock skew.
    pub time: Timestamp,
    /// Whether the record shipped is the sender's full state (as
    /// anti-entropy sends) rather than a delta. Only a full state releases
    /// a quarantined record for local writes again.
    pub full_state: bool,
}

/// The outcome of merging a remote delta or state, once durable.
#[derive(Clone, Debug, PartialEq)]
pub struct Merged {
    /// Whether the local state grew. Merging something already held
    /// changes nothing and reports `false`.
    pub grew: bool,
    /// The digest of the record after the merge.
    pub digest: Digest,
    /// The change-feed sequence number, if the state grew.
    pub seq: Option<u64>,
}

/// One entry of the change feed: a change applied here, local or remote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Local sequence number, increasing by one per change.
    pub seq: u64,
    /// Collection of the changed record.
    pub collection: String,
    /// Key of the changed record.
    pub key: String,
    /// The record's digest after the change.
    pub digest: Digest,
    /// The replica the change came from.
    pub origin: ReplicaId,
    /// The hybrid-clock time of the change at its origin.
    pub origin_time: Timestamp,
}

/// Which keys a scan returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Only keys starting with this.
    pub prefix: String,
    /// Only keys after this one (the `next` of the previous page).
    pub after: Option<String>,
    /// At most this many records (0 means the default of 100).
    pub limit: usize,
}

/// A page of scan results.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// Live records, in key order.
    pub records: Vec<(String, Record)>,
    /// Pass as [`Scan::after`] for the next page; `None` at the end.
    pub next: Option<String>,
}

/// A collection and how many records it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionInfo {
    /// The name.
    pub name: String,
    /// Records that exist (not deleted).
    pub live: u64,
    /// Keys tracked, deleted records included (their causal history is
    /// kept so that deletes replicate).
    pub keys: u64,
}

/// Counters an operator watches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreStats {
    /// Records found corrupt since the store opened.
    pub corrupt_records: u64,
    /// Records currently quarantined, awaiting repair from a peer.
    pub quarantined: u64,
    /// Write batches committed since the store opened.
    pub batches: u64,
    /// Writes committed since the store opened.
    pub writes: u64,
    /// Collections where opening found index entries that did not match
    /// their records (damaged on disk) and rebuilt them from the records.
    pub index_rebuilds: u64,
}

/// Durable storage of records, with the indexes replication needs.
///
/// Writes return a [`Pending`] that resolves once the write is durable;
/// reads answer from committed state.
pub trait Store: Send + Sync + 'static {
    /// This node's replica id, kept across restarts.
    fn replica_id(&self) -> ReplicaId;

    /// The hybrid-clock high-water mark: no timestamp issued or accepted
    /// so far is greater. It survives restarts.
    fn clock_high_water(&self) -> Timestamp;

    /// Applies a local mutation to `collection/key`.
    fn apply(&self, collection: &str, key: &str, mutation: Mutation) -> Pending<Applied>;

    /// Deletes `collection/key` (observed-remove).
    fn delete(&self, collection: &str, key: &str) -> Pending<Applied> {
        self.apply(collection, key, Mutation::Delete)
    }

    /// Merges a remote delta or full state into `collection/key`.
    fn merge(&self, collection: &str, key: &str, state: Record, origin: Origin) -> Pending<Merged>;

    /// The record at `collection/key`, deleted or not (`None` if never
    /// written).
    fn get(&self, collection: &str, key: &str) -> Result<Option<Record>, StoreError>;

    /// Live records of `collection` in key order.
    fn scan(&self, collection: &str, scan: &Scan) -> Result<Page, StoreError>;

    /// Every collection, with counts.
    fn collections(&self) -> Result<Vec<CollectionInfo>, StoreError>;

    /// Changes with a sequence number greater than `after`, oldest first,
    /// at most `limit`.
    fn changes_since(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError>;

    /// The sequence number of the latest committed change (0 before any).
    fn last_seq(&self) -> u64;

    /// Follows [`last_seq`](Store::last_seq): the receiver sees each
    /// committed batch's latest sequence number.
    fn watch_seq(&self) -> tokio::sync::watch::Receiver<u64>;

    /// The fingerprint of `range` in `collection`'s reconciliation index.
    fn fingerprint(&self, collection: &str, range: &KeyRange) -> Fingerprint;

    /// `range` split into `k` buckets of equal count, with fingerprints.
    fn split(&self, collection: &str, range: &KeyRange, k: usize) -> Vec<Bucket>;

    /// Index entries in `range`, in key order, at most `limit`.
    fn index_entries(
        &self,
        collection: &str,
        range: &KeyRange,
        limit: usize,
    ) -> Vec<(String, IndexEntry)>;

    /// Operator counters.
    fn stats(&self) -> StoreStats;
}
