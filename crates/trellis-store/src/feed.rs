//! The change feed as stored: one row per committed batch, keyed by the
//! batch's last sequence number, so that a batch adds one table insert
//! however many changes it holds.
//!
//! | bytes | what |
//! |---|---|
//! | 0..8 | the hybrid clock's high-water mark when the batch committed, little-endian |
//! | 8..12 | the number of changes, little-endian |
//! | then, per change | its length (u32, little-endian), then the codec-encoded [`Change`] |
//!
//! The changes of a batch have consecutive sequence numbers ending at the
//! row's key. The last row also gives the store's last sequence number and
//! clock high-water mark on open, so no metadata is written per batch.

use serde::Serialize;
use trellis_crdt::{codec, Digest, ReplicaId, Timestamp};

use crate::{Change, StoreError};

/// The length of a batch row's header.
const HEADER_LEN: usize = 12;

/// A batch row built one change at a time, as the writer applies them.
/// Kept from batch to batch, so that its buffer is reused.
#[derive(Clone, Debug, Default)]
pub(crate) struct BatchRow {
    /// The header (filled in by [`finish`](BatchRow::finish)), then each
    /// change pushed so far.
    row: Vec<u8>,
    /// Changes pushed so far.
    count: u32,
}

impl BatchRow {
    /// Adds a change; its sequence number must follow the last one's.
    pub fn push(&mut self, change: &ChangeRef<'_>) {
        if self.row.is_empty() {
            self.row.resize(HEADER_LEN, 0);
        }
        let at = self.row.len();
        self.row.extend_from_slice(&[0; 4]);
        codec::encode_to(change, &mut self.row);
        let len = (self.row.len() - at - 4) as u32;
        self.row[at..at + 4].copy_from_slice(&len.to_le_bytes());
        self.count += 1;
    }

    /// Whether no change has been pushed since the last
    /// [`clear`](BatchRow::clear).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The row of the changes pushed, committed when the clock stood at
    /// `clock`.
    pub fn finish(&mut self, clock: Timestamp) -> &[u8] {
        if self.row.is_empty() {
            self.row.resize(HEADER_LEN, 0);
        }
        self.row[..8].copy_from_slice(&clock.0.to_le_bytes());
        self.row[8..HEADER_LEN].copy_from_slice(&self.count.to_le_bytes());
        &self.row
    }

    /// Empties the row, keeping its buffer.
    pub fn clear(&mut self) {
        self.row.clear();
        self.count = 0;
    }
}

/// A [`Change`] borrowing its names. It encodes to the same bytes as the
/// `Change` it mirrors (the codec writes a `&str` as it writes a
/// `String`), so the writer can add a change to the feed without copying
/// the collection and key into one.
#[derive(Debug, Serialize)]
pub(crate) struct ChangeRef<'a> {
    pub seq: u64,
    pub collection: &'a str,
    pub key: &'a str,
    pub digest: Digest,
    pub origin: ReplicaId,
    pub origin_time: Timestamp,
}

impl<'a> From<&'a Change> for ChangeRef<'a> {
    fn from(change: &'a Change) -> Self {
        ChangeRef {
            seq: change.seq,
            collection: &change.collection,
            key: &change.key,
            digest: change.digest,
            origin: change.origin,
            origin_time: change.origin_time,
        }
    }
}

/// The row of a batch of changes, committed when the clock stood at
/// `clock`.
pub(crate) fn encode_batch(clock: Timestamp, changes: &[Change]) -> Vec<u8> {
    let mut row = BatchRow::default();
    for change in changes {
        row.push(&change.into());
    }
    row.finish(clock).to_vec()
}

/// How many changes a batch row holds, from its header alone (0 if the
/// header is cut short).
pub(crate) fn batch_len(row: &[u8]) -> u64 {
    row.get(8..HEADER_LEN)
        .and_then(|count| <[u8; 4]>::try_from(count).ok())
        .map_or(0, |count| u64::from(u32::from_le_bytes(count)))
}

/// The clock high-water mark and the changes of the batch row stored under
/// `last_seq`.
pub(crate) fn decode_batch(
    last_seq: u64,
    row: &[u8],
) -> Result<(Timestamp, Vec<Change>), StoreError> {
    let unreadable =
        |why: String| StoreError::Engine(format!("unreadable change-feed batch {last_seq}: {why}"));
    let (header, mut rest) = row
        .split_first_chunk::<HEADER_LEN>()
        .ok_or_else(|| unreadable("its header is cut short".into()))?;
    let clock = u64::from_le_bytes(header[..8].try_into().unwrap_or_default());
    let count = batch_len(header);
    let first = last_seq
        .checked_add(1)
        .and_then(|end| end.checked_sub(count))
        .filter(|first| *first >= 1 && count > 0)
        .ok_or_else(|| unreadable(format!("it claims {count} changes")))?;
    let mut changes = Vec::new();
    for seq in first..=last_seq {
        let len = rest
            .get(..4)
            .and_then(|len| <[u8; 4]>::try_from(len).ok())
            .map(|len| u32::from_le_bytes(len) as usize)
            .ok_or_else(|| unreadable(format!("change {seq} is missing")))?;
        let bytes = rest
            .get(4..4 + len)
            .ok_or_else(|| unreadable(format!("change {seq} is cut short")))?;
        let change: Change = codec::decode(bytes).map_err(|err| unreadable(err.to_string()))?;
        if change.seq != seq {
            return Err(unreadable(format!(
                "change {seq} says it is change {}",
                change.seq
            )));
        }
        changes.push(change);
        rest = &rest[4 + len..];
    }
    if !rest.is_empty() {
        return Err(unreadable(format!(
            "{} bytes after its changes",
            rest.len()
        )));
    }
    Ok((Timestamp(clock), changes))
}

#[cfg(test)]
mod tests {
    use trellis_crdt::{Digest, ReplicaId};

    use super::*;

    fn change(seq: u64) -> Change {
        Change {
            seq,
            collection: "leads".into(),
            key: format!("l{seq}"),
            digest: Digest([seq as u8; 32]),
            origin: ReplicaId(3),
            origin_time: Timestamp(seq * 10),
        }
    }

    #[test]
    fn a_borrowed_change_encodes_as_the_change() {
        let change = change(7);
        assert_eq!(
            codec::encode(&ChangeRef::from(&change)),
            codec::encode(&change)
        );
    }

    #[test]
    fn a_row_builder_is_reusable() {
        let mut row = BatchRow::default();
        assert!(row.is_empty());
        row.push(&(&change(1)).into());
        row.clear();
        assert!(row.is_empty());
        let changes: Vec<Change> = (2..=3).map(change).collect();
        changes.iter().for_each(|change| row.push(&change.into()));
        let expected = (Timestamp(5), changes);
        assert_eq!(decode_batch(3, row.finish(Timestamp(5))).unwrap(), expected);
    }

    #[test]
    fn batches_round_trip() {
        let changes: Vec<Change> = (5..=9).map(change).collect();
        let row = encode_batch(Timestamp(77), &changes);
        assert_eq!(batch_len(&row), 5);
        assert_eq!(decode_batch(9, &row).unwrap(), (Timestamp(77), changes));
    }

    #[test]
    fn damaged_batches_are_errors_not_panics() {
        let row = encode_batch(Timestamp(77), &[change(1), change(2)]);
        // Under the wrong key: the sequence numbers disagree.
        assert!(decode_batch(3, &row).is_err());
        // A count that reaches below sequence 1.
        assert!(decode_batch(1, &row).is_err());
        for cut in 0..row.len() {
            assert!(decode_batch(2, &row[..cut]).is_err(), "cut at {cut}");
        }
        let mut padded = row.clone();
        padded.push(0);
        assert!(decode_batch(2, &padded).is_err());
        let mut huge = row;
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_batch(2, &huge).is_err());
        assert!(decode_batch(u64::MAX, &huge).is_err());
    }
}
