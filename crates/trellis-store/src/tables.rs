//! The table operations the store's logic needs, whatever holds the
//! tables: redb transactions ([`crate::redb_tables`]) or plain maps
//! ([`crate::mem_tables`]). Both stores run the same write and read logic
//! over these traits.

use trellis_crdt::{Digest, Timestamp};

use crate::index::IndexEntry;
use crate::StoreError;

/// Reads from one consistent view of the tables.
pub(crate) trait ReadTables {
    /// The encoded record at `collection/key`.
    fn record(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` records of `collection` whose keys start with
    /// `prefix` and sort after `after`, in key order.
    fn records_after(
        &self,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Every key and encoded record of `collection`, in key order.
    fn all_records(&self, collection: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// How many records `collection` holds, deleted ones included.
    fn record_count(&self, collection: &str) -> Result<u64, StoreError>;

    /// The stored index entry of `collection/key`, if readable.
    fn index_entry(&self, collection: &str, key: &str) -> Result<Option<IndexEntry>, StoreError>;

    /// Every stored index entry of `collection`, in key order; `None` if
    /// any entry is unreadable.
    fn all_index_entries(
        &self,
        collection: &str,
    ) -> Result<Option<Vec<(String, IndexEntry)>>, StoreError>;

    /// Whether `collection/key` is quarantined.
    fn is_quarantined(&self, collection: &str, key: &str) -> Result<bool, StoreError>;

    /// How many records are quarantined.
    fn quarantined_count(&self) -> Result<u64, StoreError>;

    /// Encoded change-feed entries with sequence numbers above `after`.
    fn changes_after(&self, after: u64, limit: usize) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Names of the collections that have a records table.
    fn collections(&self) -> Result<Vec<String>, StoreError>;

    /// A metadata value.
    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Writes, within one batch (one transaction).
pub(crate) trait WriteTables: ReadTables {
    /// Stores the encoded record.
    fn put_record(&mut self, collection: &str, key: &str, bytes: &[u8]) -> Result<(), StoreError>;

    /// Removes the record.
    fn remove_record(&mut self, collection: &str, key: &str) -> Result<(), StoreError>;

    /// Stores an index entry.
    fn put_index_entry(
        &mut self,
        collection: &str,
        key: &str,
        entry: &IndexEntry,
    ) -> Result<(), StoreError>;

    /// Removes an index entry.
    fn remove_index_entry(&mut self, collection: &str, key: &str) -> Result<(), StoreError>;

    /// Replaces every index entry of `collection`.
    fn replace_index(
        &mut self,
        collection: &str,
        entries: &[(String, IndexEntry)],
    ) -> Result<(), StoreError>;

    /// Moves raw bytes into quarantine.
    fn quarantine(&mut self, collection: &str, key: &str, bytes: &[u8]) -> Result<(), StoreError>;

    /// Releases `collection/key` from quarantine.
    fn release(&mut self, collection: &str, key: &str) -> Result<(), StoreError>;

    /// Appends an encoded change-feed entry.
    fn append_change(&mut self, seq: u64, bytes: &[u8]) -> Result<(), StoreError>;

    /// Drops change-feed entries with sequence numbers up to `through`.
    fn trim_changes(&mut self, through: u64) -> Result<(), StoreError>;

    /// Sets a metadata value.
    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError>;
}

/// Stored index entries are 40 bytes: the digest, then the timestamp
/// (little-endian).
pub(crate) fn encode_index_entry(entry: &IndexEntry) -> [u8; 40] {
    let mut bytes = [0u8; 40];
    bytes[..32].copy_from_slice(entry.digest.as_bytes());
    bytes[32..].copy_from_slice(&entry.hlc.0.to_le_bytes());
    bytes
}

/// The inverse of [`encode_index_entry`]; `None` for anything but 40 bytes.
pub(crate) fn decode_index_entry(bytes: &[u8]) -> Option<IndexEntry> {
    let digest: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
    let time: [u8; 8] = bytes.get(32..)?.try_into().ok()?;
    Some(IndexEntry {
        digest: Digest(digest),
        hlc: Timestamp(u64::from_le_bytes(time)),
    })
}

/// Metadata names.
pub(crate) mod meta {
    /// Format of the data file.
    pub const FORMAT: &str = "format";
    /// The replica id, u64 little-endian.
    pub const REPLICA_ID: &str = "replica_id";
    /// The clock high-water mark, u64 little-endian.
    pub const CLOCK: &str = "clock";
    /// The latest change sequence number.
    pub const LAST_SEQ: &str = "last_seq";
    /// Change-feed entries up to this sequence number have been trimmed.
    pub const FEED_FLOOR: &str = "feed_floor";

    /// The stored index checksum of a collection.
    pub fn checksum(collection: &str) -> String {
        format!("checksum/{collection}")
    }

    /// The live-record count of a collection.
    pub fn live(collection: &str) -> String {
        format!("live/{collection}")
    }
}

/// The store's data format. Bump on incompatible layout changes.
pub(crate) const FORMAT_VERSION: u64 = 1;

/// A u64 metadata value.
pub(crate) fn meta_u64(
    tables: &(impl ReadTables + ?Sized),
    name: &str,
) -> Result<Option<u64>, StoreError> {
    Ok(tables
        .meta(name)?
        .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
        .map(u64::from_le_bytes))
}
