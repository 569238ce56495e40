//! The table operations the store's logic needs, whatever holds the
//! tables: redb transactions ([`crate::redb_tables`]) or plain maps
//! ([`crate::mem_tables`]). Both stores run the same write and read logic
//! over these traits.

use crate::StoreError;

/// Reads from one consistent view of the tables.
pub(crate) trait ReadTables {
    /// The row at `collection/key`: its index entry, then the encoded
    /// record (see [`crate::row`]).
    fn row(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` rows of `collection` whose keys start with `prefix`
    /// and sort after `after`, in key order.
    fn rows_after(
        &self,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Whether `collection/key` is quarantined.
    fn is_quarantined(&self, collection: &str, key: &str) -> Result<bool, StoreError>;

    /// How many records are quarantined.
    fn quarantined_count(&self) -> Result<u64, StoreError>;

    /// Visits the change-feed batch rows (see [`crate::feed`]) whose last
    /// sequence number is above `after`, in order, with that number, until
    /// `visit` returns `false`.
    fn change_batches_after(
        &self,
        after: u64,
        visit: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), StoreError>;

    /// The last change-feed batch row and its last sequence number.
    fn last_change_batch(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError>;

    /// Names of the collections that have a records table.
    fn collections(&self) -> Result<Vec<String>, StoreError>;

    /// A metadata value.
    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Writes, within one batch (one transaction).
pub(crate) trait WriteTables: ReadTables {
    /// Stores a row (see [`crate::row`]).
    fn put_row(&mut self, collection: &str, key: &str, row: &[u8]) -> Result<(), StoreError>;

    /// Stores a row and returns the row it replaced: one lookup where
    /// reading the row first and then storing would take two.
    fn replace_row(
        &mut self,
        collection: &str,
        key: &str,
        row: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// Removes a row.
    fn remove_row(&mut self, collection: &str, key: &str) -> Result<(), StoreError>;

    /// Moves raw bytes into quarantine.
    fn quarantine(&mut self, collection: &str, key: &str, bytes: &[u8]) -> Result<(), StoreError>;

    /// Releases `collection/key` from quarantine.
    fn release(&mut self, collection: &str, key: &str) -> Result<(), StoreError>;

    /// Appends a change-feed batch row whose last sequence number is
    /// `last_seq`.
    fn append_change_batch(&mut self, last_seq: u64, row: &[u8]) -> Result<(), StoreError>;

    /// Drops the change-feed batches whose last sequence number is at most
    /// `through`; returns the highest such number dropped, if any.
    fn trim_change_batches(&mut self, through: u64) -> Result<Option<u64>, StoreError>;

    /// Sets a metadata value.
    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError>;
}

/// Metadata names.
pub(crate) mod meta {
    /// Format of the data file.
    pub const FORMAT: &str = "format";
    /// The replica id, u64 little-endian.
    pub const REPLICA_ID: &str = "replica_id";
    /// Change-feed entries up to this sequence number have been trimmed.
    pub const FEED_FLOOR: &str = "feed_floor";
}

/// The store's data format. Bump on incompatible layout changes.
///
/// - 1: the first layout.
/// - 2: records in the codec's format 3 (a packing byte, sets with a
///   replica table); format-1 record bytes no longer decode, so a format-1
///   file is refused as a whole instead of every record being quarantined.
/// - 3: each record's index entry stored in front of its bytes (no index
///   tables), and the change feed stored a batch per row (no clock, last
///   sequence, checksum or live count in `meta`).
pub(crate) const FORMAT_VERSION: u64 = 3;

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
