//! What can go wrong in the store, with messages that name the fix.

use trellis_crdt::{ClockSkewError, DecodeError, RecordError};

/// A store operation that failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A collection name does not follow the naming rule.
    #[error(
        "invalid collection name {name:?}: use 1 to 64 characters from a-z, 0-9, '_' and '-', \
         starting with a letter (or '_' and such a name for a system collection)"
    )]
    InvalidCollection {
        /// The refused name.
        name: String,
    },
    /// A key is empty or too long.
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// What is wrong with it.
        reason: String,
    },
    /// The change would make the record larger than allowed.
    #[error(
        "record {collection}/{key} would be {size} bytes encoded, over the limit of {limit}; \
         split it into several records or raise limits.max_record_bytes"
    )]
    RecordTooLarge {
        /// Collection.
        collection: String,
        /// Key.
        key: String,
        /// Encoded size after the change.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The change would give the record more fields than allowed.
    #[error(
        "record {collection}/{key} would have {fields} fields, over the limit of {limit}; \
         raise limits.max_fields or restructure the record"
    )]
    TooManyFields {
        /// Collection.
        collection: String,
        /// Key.
        key: String,
        /// Field count after the change.
        fields: usize,
        /// The limit.
        limit: usize,
    },
    /// The mutation itself was refused by the record (bad path, bad JSON).
    #[error("invalid change: {0}")]
    InvalidChange(#[from] RecordError),
    /// A remote change carried a timestamp too far in the future.
    #[error(transparent)]
    ClockSkew(#[from] ClockSkewError),
    /// The stored bytes of a record could not be decoded. The record was
    /// quarantined; anti-entropy restores it from a peer.
    #[error(
        "record {collection}/{key} is corrupt on disk ({cause}); it has been quarantined and will \
         be restored from a peer by anti-entropy"
    )]
    Corrupt {
        /// Collection.
        collection: String,
        /// Key.
        key: String,
        /// The decoding error.
        cause: DecodeError,
    },
    /// A local write to a quarantined record, whose history is unknown
    /// until a peer restores it.
    #[error(
        "record {collection}/{key} is quarantined after on-disk corruption; local writes are \
         refused until anti-entropy restores it from a peer"
    )]
    Quarantined {
        /// Collection.
        collection: String,
        /// Key.
        key: String,
    },
    /// A change-feed cursor older than what the feed retains.
    #[error(
        "change feed cursor {requested} has fallen off the retained feed (oldest available is \
         {oldest}); rescan the collections, then resume from the current sequence"
    )]
    ChangesTruncated {
        /// The sequence asked for.
        requested: u64,
        /// The oldest sequence still retained.
        oldest: u64,
    },
    /// The on-disk data is from an incompatible version or otherwise
    /// unusable as a whole.
    #[error("store at {path} is unusable: {reason}")]
    Unusable {
        /// The data file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The storage engine failed (I/O, disk full, corruption of its own
    /// structures).
    #[error("storage engine error: {0}")]
    Engine(String),
    /// The store has shut down.
    #[error("the store is closed")]
    Closed,
}

macro_rules! engine_error {
    ($($source:ty),* $(,)?) => {
        $(impl From<$source> for StoreError {
            fn from(err: $source) -> Self {
                StoreError::Engine(err.to_string())
            }
        })*
    };
}

engine_error!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::DatabaseError,
    redb::SetDurabilityError,
);
