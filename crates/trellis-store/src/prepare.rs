//! Computing a local write: the new record, its delta, its bytes and
//! digest, checked against the limits.
//!
//! This is the CPU-heavy part of a write and needs no table, only the
//! record it starts from. The commit thread runs it for a write it applies
//! itself; `RedbStore` also runs it on the writer's own thread before the
//! write is queued, against the record as last committed, so that the
//! commit thread only has to check that the record is still the same and
//! store the result (see `Writer::apply_prepared`).

use trellis_crdt::{codec, Digest, Record, ReplicaId, Timestamp};

use crate::index::IndexEntry;
use crate::row::{encode_row, StoredEntry};
use crate::{Limits, Mutation, StoreError};

/// A record as found in the tables.
pub(crate) enum Stored {
    /// No record under the key.
    Missing,
    /// A record that decoded, and its row's index entry.
    Present { record: Record, entry: StoredEntry },
}

impl Stored {
    /// The stored bytes' digest and whether the record was live, if there
    /// is a record.
    pub fn previous(&self) -> Option<(Digest, bool)> {
        match self {
            Stored::Missing => None,
            Stored::Present { entry, .. } => Some((entry.entry.digest, entry.live)),
        }
    }
}

/// A record ready to store: its row (see [`crate::row`]) and digest,
/// within the limits.
pub(crate) struct Encoded {
    /// The row: the index entry, then the codec encoding.
    pub row: Vec<u8>,
    /// The digest of the codec encoding.
    pub digest: Digest,
}

/// A local write computed against the record it starts from.
pub(crate) struct Prepared {
    /// The stored record it was computed from: its digest and whether it
    /// was live (`None`: there was no record).
    pub previous: Option<(Digest, bool)>,
    /// The write's hybrid-clock time.
    pub time: Timestamp,
    /// The delta to replicate.
    pub delta: Record,
    /// The record after the write.
    pub record: Record,
    /// The record's bytes and digest.
    pub encoded: Encoded,
}

/// Computes `mutation` on `before`, by `replica` at `time`.
pub(crate) fn prepare(
    limits: &Limits,
    replica: ReplicaId,
    collection: &str,
    key: &str,
    before: &Stored,
    mutation: &Mutation,
    time: Timestamp,
) -> Result<Prepared, StoreError> {
    let mut record = match before {
        Stored::Missing => Record::default(),
        Stored::Present { record, .. } => record.clone(),
    };
    let delta = match mutation {
        Mutation::Put(doc) => record.put_json(doc, replica, time)?,
        Mutation::Patch(ops) => record.apply_all(ops, replica, time)?,
        Mutation::Delete => record.delete(),
    };
    let encoded = encode(limits, collection, key, &record, time)?;
    Ok(Prepared {
        previous: before.previous(),
        time,
        delta,
        record,
        encoded,
    })
}

/// Encodes `record` into its row, as last changed at `time`, refusing it
/// if it has too many fields or is too large.
pub(crate) fn encode(
    limits: &Limits,
    collection: &str,
    key: &str,
    record: &Record,
    time: Timestamp,
) -> Result<Encoded, StoreError> {
    let fields = record.fields().count();
    if fields > limits.max_fields {
        return Err(StoreError::TooManyFields {
            collection: collection.to_owned(),
            key: key.to_owned(),
            fields,
            limit: limits.max_fields,
        });
    }
    let bytes = codec::encode(record);
    if bytes.len() > limits.max_record_bytes {
        return Err(StoreError::RecordTooLarge {
            collection: collection.to_owned(),
            key: key.to_owned(),
            size: bytes.len(),
            limit: limits.max_record_bytes,
        });
    }
    let digest = Digest::of_encoding(&bytes);
    let stored = StoredEntry {
        entry: IndexEntry { digest, hlc: time },
        live: record.exists(),
    };
    Ok(Encoded {
        row: encode_row(&stored, &bytes),
        digest,
    })
}
