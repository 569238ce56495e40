//! A stored row: a record's reconciliation-index entry in front of its
//! codec bytes, so that a write is one table insert.
//!
//! | bytes | what |
//! |---|---|
//! | 0..32 | the digest of the record bytes ([`Digest::of_encoding`]) |
//! | 32..40 | the hybrid-clock time of the record's last change, little-endian |
//! | 40 | 1 if the record is live, 0 if it is deleted |
//! | 41.. | the record, codec-encoded |
//!
//! The digest doubles as the row's checksum: on open every row's record
//! bytes are hashed and compared with it (see [`crate::indexes`]).

use trellis_crdt::codec::{self, DecodeError};
use trellis_crdt::{Digest, Record, Timestamp};

use crate::index::IndexEntry;

/// The length of a row's header.
pub(crate) const HEADER_LEN: usize = 41;

/// The header of a row: the record's index entry, and whether the record
/// is live. The flag lets a record whose bytes no longer decode leave the
/// live count only if it was counted in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StoredEntry {
    /// The reconciliation index's entry.
    pub entry: IndexEntry,
    /// Whether the record exists (is not deleted).
    pub live: bool,
}

/// A row holding `record` (codec bytes) under `stored`.
pub(crate) fn encode_row(stored: &StoredEntry, record: &[u8]) -> Vec<u8> {
    let mut row = Vec::with_capacity(HEADER_LEN + record.len());
    row.extend_from_slice(stored.entry.digest.as_bytes());
    row.extend_from_slice(&stored.entry.hlc.0.to_le_bytes());
    row.push(u8::from(stored.live));
    row.extend_from_slice(record);
    row
}

/// The header at the start of `bytes`; `None` if it is cut short or its
/// live flag is neither 0 nor 1.
pub(crate) fn decode_header(bytes: &[u8]) -> Option<StoredEntry> {
    let header: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
    let digest: [u8; 32] = header[..32].try_into().ok()?;
    let time: [u8; 8] = header[32..40].try_into().ok()?;
    let live = match header[40] {
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

/// A row's header and record bytes; `None` if the header is unreadable.
pub(crate) fn split_row(row: &[u8]) -> Option<(StoredEntry, &[u8])> {
    Some((decode_header(row)?, &row[HEADER_LEN..]))
}

/// A row's header and record bytes if the header is readable and its
/// digest is that of the record bytes.
pub(crate) fn checked_row(row: &[u8]) -> Option<(StoredEntry, &[u8])> {
    split_row(row).filter(|(stored, record)| stored.entry.digest == Digest::of_encoding(record))
}

/// A row's header and decoded record.
pub(crate) fn decode_row(row: &[u8]) -> Result<(StoredEntry, Record), DecodeError> {
    let (stored, record) = split_row(row).ok_or_else(|| {
        DecodeError::Malformed("the index entry in front of the record is damaged".into())
    })?;
    Ok((stored, codec::decode(record)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(record: &[u8], live: bool) -> StoredEntry {
        StoredEntry {
            entry: IndexEntry {
                digest: Digest::of_encoding(record),
                hlc: Timestamp(42),
            },
            live,
        }
    }

    #[test]
    fn rows_round_trip_with_their_live_flag() {
        for live in [false, true] {
            let row = encode_row(&stored(b"record", live), b"record");
            assert_eq!(row.len(), HEADER_LEN + 6);
            assert_eq!(
                checked_row(&row),
                Some((stored(b"record", live), &b"record"[..]))
            );
        }
    }

    #[test]
    fn a_damaged_row_does_not_check_out() {
        let row = encode_row(&stored(b"record", true), b"record");
        // Cut inside the header.
        assert_eq!(split_row(&row[..40]), None);
        // A live flag that is neither 0 nor 1.
        let mut flag = row.clone();
        flag[40] = 2;
        assert_eq!(split_row(&flag), None);
        // Record bytes that no longer match the digest.
        let mut body = row.clone();
        body[HEADER_LEN] ^= 1;
        assert!(split_row(&body).is_some());
        assert_eq!(checked_row(&body), None);
        // A digest that no longer matches the record bytes.
        let mut digest = row;
        digest[0] ^= 1;
        assert_eq!(checked_row(&digest), None);
    }
}
