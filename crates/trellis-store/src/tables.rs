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

    /// How many records `collection` holds, deleted ones included.
    fn record_count(&self, collection: &str) -> Result<u64, StoreError>;

    /// The stored index entry of `collection/key`, if readable.
    fn index_entry(&self, collection: &str, key: &str) -> Result<Option<StoredEntry>, StoreError>;

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
        entry: &StoredEntry,
    ) -> Result<(), StoreError>;

    /// Removes an index entry.
    fn remove_index_entry(&mut self, collection: &str, key: &str) -> Result<(), StoreError>;

    /// Removes every index entry of `collection` whose key `keep` refuses.
    fn retain_index(
        &mut self,
        collection: &str,
        keep: &mut dyn FnMut(&str) -> bool,
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

/// An index entry as stored: the entry, and whether the record is live.
/// The flag lets a record whose bytes no longer decode leave the live
/// count only if it was counted in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StoredEntry {
    /// The reconciliation index's entry.
    pub entry: IndexEntry,
    /// Whether the record exists (is not deleted).
    pub live: bool,
}

/// Stored index entries are 41 bytes: the digest, the timestamp
/// (little-endian), then 1 if the record is live, else 0.
pub(crate) fn encode_index_entry(stored: &StoredEntry) -> [u8; 41] {
    let mut bytes = [0u8; 41];
    bytes[..32].copy_from_slice(stored.entry.digest.as_bytes());
    bytes[32..40].copy_from_slice(&stored.entry.hlc.0.to_le_bytes());
    bytes[40] = u8::from(stored.live);
    bytes
}

/// The inverse of [`encode_index_entry`]; `None` for anything else,
/// including the 40-byte entries of earlier builds (which had no liveness
/// flag: the index is then rebuilt from the records on open).
pub(crate) fn decode_index_entry(bytes: &[u8]) -> Option<StoredEntry> {
    let bytes: &[u8; 41] = bytes.try_into().ok()?;
    let digest: [u8; 32] = bytes[..32].try_into().ok()?;
    let time: [u8; 8] = bytes[32..40].try_into().ok()?;
    let live = match bytes[40] {
        0 => false,
        1 => true,
        _ => return None,
    };
    Some(StoredEntry {
        entry: IndexEntry {
            digest: Digest(digest),
            hlc: Timestamp(u64::from_le_bytes(time)),
        },
        live,
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
///
/// - 1: the first layout.
/// - 2: records in the codec's format 3 (a packing byte, sets with a
///   replica table); format-1 record bytes no longer decode, so a format-1
///   file is refused as a whole instead of every record being quarantined.
pub(crate) const FORMAT_VERSION: u64 = 2;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_entries_round_trip_with_their_live_flag() {
        for live in [false, true] {
            let stored = StoredEntry {
                entry: IndexEntry {
                    digest: Digest([7; 32]),
                    hlc: Timestamp(42),
                },
                live,
            };
            assert_eq!(
                decode_index_entry(&encode_index_entry(&stored)),
                Some(stored)
            );
        }
    }

    #[test]
    fn entries_without_a_valid_live_flag_are_unreadable() {
        let mut bytes = encode_index_entry(&StoredEntry {
            entry: IndexEntry {
                digest: Digest([7; 32]),
                hlc: Timestamp(42),
            },
            live: true,
        });
        // An entry of an earlier build: digest and time, no flag.
        assert_eq!(decode_index_entry(&bytes[..40]), None);
        bytes[40] = 2;
        assert_eq!(decode_index_entry(&bytes), None);
    }
}
