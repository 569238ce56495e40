//! The write logic both stores share: applying mutations and merges to
//! the tables, keeping the reconciliation index, the change feed, the
//! clock and the counts in step, all within one batch.

use std::collections::{BTreeMap, BTreeSet};

use trellis_crdt::{Digest, Lattice, Record, ReplicaId, Timestamp};

use crate::clock::SharedClock;
use crate::feed::{BatchRow, ChangeRef};
use crate::index::IndexEntry;
use crate::prepare::{encode, prepare, Prepared, Stored};
use crate::row::{decode_header, decode_row};
use crate::tables::{meta, WriteTables};
use crate::{Applied, Limits, Merged, Mutation, Origin, StoreConfig, StoreError};

/// A change to the in-memory reconciliation index, applied once the batch
/// that made it is committed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum IndexUpdate {
    /// Insert or replace an entry.
    Put {
        /// Collection.
        collection: String,
        /// Key.
        key: String,
        /// The entry.
        entry: IndexEntry,
    },
    /// Remove an entry.
    Remove {
        /// Collection.
        collection: String,
        /// Key.
        key: String,
    },
}

/// What a batch did besides its writes, published after it commits.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Index changes to apply in memory.
    pub index: Vec<IndexUpdate>,
    /// Corrupt records found.
    pub corrupt: u64,
    /// Writes that changed state.
    pub writes: u64,
    /// The live-record counts of the collections the batch touched.
    pub live: Vec<(String, u64)>,
}

/// The writer's state: everything a write changes besides the tables.
/// Cloned at the start of a batch and restored if the batch fails (except
/// the clock, which clones share and which never goes back).
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    pub replica: ReplicaId,
    pub clock: SharedClock,
    pub last_seq: u64,
    pub feed_floor: u64,
    pub limits: Limits,
    pub retention: u64,
    /// Each collection's live-record count.
    pub live: BTreeMap<String, u64>,
    /// Collections whose live count the current batch changed.
    touched: BTreeSet<String>,
    /// The current batch's changes, stored as one row when it finishes.
    feed: BatchRow,
    /// At least as many as the records in quarantine: while it is 0, no
    /// write needs to look in the quarantine table.
    pub quarantined: u64,
}

impl Writer {
    /// A writer continuing from persisted state.
    pub fn new(
        replica: ReplicaId,
        clock: SharedClock,
        last_seq: u64,
        feed_floor: u64,
        config: &StoreConfig,
    ) -> Self {
        Writer {
            replica,
            clock,
            last_seq,
            feed_floor,
            limits: config.limits.clone(),
            retention: config.change_retention.max(1),
            live: BTreeMap::new(),
            touched: BTreeSet::new(),
            feed: BatchRow::default(),
            quarantined: 0,
        }
    }

    /// Applies a local mutation.
    pub fn apply(
        &mut self,
        tables: &mut impl WriteTables,
        collection: &str,
        key: &str,
        mutation: &Mutation,
        wall_ms: u64,
        effects: &mut Effects,
    ) -> Result<Applied, StoreError> {
        self.check_names(collection, key)?;
        let row = tables.row(collection, key)?;
        self.apply_to(tables, collection, key, row, mutation, wall_ms, effects)
    }

    /// Stores a local mutation computed ahead of the batch (see
    /// [`crate::prepare`]) if the record is still the one it was computed
    /// from and not quarantined; otherwise applies `mutation` afresh, as
    /// [`apply`](Writer::apply) does.
    ///
    /// The prepared row is stored first, and the row it replaced checked
    /// after: the record has almost always not changed, and this way the
    /// write costs one lookup rather than two. If it had changed, the
    /// mutation is applied afresh to the row it replaced, and that result
    /// overwrites the prepared one.
    #[allow(clippy::too_many_arguments)]
    pub fn apply_prepared(
        &mut self,
        tables: &mut impl WriteTables,
        collection: &str,
        key: &str,
        mutation: &Mutation,
        prepared: Prepared,
        wall_ms: u64,
        effects: &mut Effects,
    ) -> Result<Applied, StoreError> {
        if self.is_quarantined(tables, collection, key)? {
            return Err(quarantined(collection, key));
        }
        let replaced = tables.replace_row(collection, key, &prepared.encoded.row)?;
        // Only the replaced row's header is read: its digest says whether
        // the record was still the one the write was computed from.
        let unchanged = match (&replaced, prepared.previous) {
            (None, None) => true,
            (Some(row), Some((digest, _))) => {
                decode_header(row).is_some_and(|stored| stored.entry.digest == digest)
            }
            _ => false,
        };
        if unchanged {
            Ok(self.stored_prepared(collection, key, prepared, effects))
        } else {
            self.apply_to(
                tables, collection, key, replaced, mutation, wall_ms, effects,
            )
        }
    }

    /// Applies a local mutation to `row`, the row stored under the key.
    #[allow(clippy::too_many_arguments)]
    fn apply_to(
        &mut self,
        tables: &mut impl WriteTables,
        collection: &str,
        key: &str,
        row: Option<Vec<u8>>,
        mutation: &Mutation,
        wall_ms: u64,
        effects: &mut Effects,
    ) -> Result<Applied, StoreError> {
        // Decoding first quarantines a record found corrupt just now, so
        // that the check below refuses the write in that case too.
        let before = self.decode(tables, collection, key, row, effects)?;
        if self.is_quarantined(tables, collection, key)? {
            return Err(quarantined(collection, key));
        }
        let time = self.clock.tick(wall_ms);
        let prepared = prepare(
            &self.limits,
            self.replica,
            collection,
            key,
            &before,
            mutation,
            time,
        )?;
        tables.put_row(collection, key, &prepared.encoded.row)?;
        Ok(self.stored_prepared(collection, key, prepared, effects))
    }

    /// Records a local mutation whose row has been stored.
    fn stored_prepared(
        &mut self,
        collection: &str,
        key: &str,
        prepared: Prepared,
        effects: &mut Effects,
    ) -> Applied {
        let Prepared {
            previous,
            time,
            delta,
            record,
            encoded,
        } = prepared;
        let origin = Origin {
            replica: self.replica,
            time,
            full_state: false,
        };
        let digest = encoded.digest;
        let seq = self.stored(
            collection,
            key,
            previous,
            digest,
            record.exists(),
            time,
            origin,
            effects,
        );
        Applied {
            delta,
            record,
            digest,
            seq,
            time,
        }
    }

    /// Merges a remote delta or state.
    #[allow(clippy::too_many_arguments)]
    pub fn merge(
        &mut self,
        tables: &mut impl WriteTables,
        collection: &str,
        key: &str,
        state: Record,
        origin: Origin,
        wall_ms: u64,
        effects: &mut Effects,
    ) -> Result<Merged, StoreError> {
        self.check_names(collection, key)?;
        self.clock.observe(origin.time, wall_ms)?;
        let row = tables.row(collection, key)?;
        let before = self.decode(tables, collection, key, row, effects)?;
        let quarantined = self.is_quarantined(tables, collection, key)?;
        let (mut record, previous_time) = match &before {
            Stored::Missing => (Record::default(), Timestamp::default()),
            Stored::Present { record, entry } => (record.clone(), entry.entry.hlc),
        };
        let unchanged = record.clone();
        record.merge(state);
        if quarantined && origin.full_state {
            tables.release(collection, key)?;
            self.quarantined = self.quarantined.saturating_sub(1);
        }
        if record == unchanged {
            let digest = match before {
                Stored::Present { entry, .. } => entry.entry.digest,
                Stored::Missing => Digest::of(&record),
            };
            return Ok(Merged {
                grew: false,
                digest,
                seq: None,
            });
        }
        let time = previous_time.max(origin.time);
        let encoded = encode(&self.limits, collection, key, &record, time)?;
        tables.put_row(collection, key, &encoded.row)?;
        let seq = self.stored(
            collection,
            key,
            before.previous(),
            encoded.digest,
            record.exists(),
            time,
            origin,
            effects,
        );
        Ok(Merged {
            grew: true,
            digest: encoded.digest,
            seq: Some(seq),
        })
    }

    /// Re-reads `collection/key` and quarantines it if its bytes do not
    /// decode (a reader found it corrupt).
    pub fn recheck(
        &mut self,
        tables: &mut impl WriteTables,
        collection: &str,
        key: &str,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        let row = tables.row(collection, key)?;
        self.decode(tables, collection, key, row, effects).map(drop)
    }

    /// Ends the batch: stores its changes as one change-feed row (which
    /// also records the clock), trims the feed past its retention, and
    /// reports the live counts of the collections it touched.
    pub fn finish(
        &mut self,
        tables: &mut impl WriteTables,
        effects: &mut Effects,
    ) -> Result<(), StoreError> {
        if !self.feed.is_empty() {
            let row = self.feed.finish(self.clock.last());
            tables.append_change_batch(self.last_seq, row)?;
            self.feed.clear();
        }
        // Whole batches are trimmed, and only once a sixteenth of the
        // retention has gone past, so that most batches leave the oldest
        // rows alone.
        let floor = self.last_seq.saturating_sub(self.retention);
        let step = (self.retention / 16).max(1);
        if floor >= self.feed_floor.saturating_add(step) {
            if let Some(trimmed) = tables.trim_change_batches(floor)? {
                self.feed_floor = trimmed;
                tables.put_meta(meta::FEED_FLOOR, &trimmed.to_le_bytes())?;
            }
        }
        for collection in std::mem::take(&mut self.touched) {
            let live = self.live.get(&collection).copied().unwrap_or(0);
            effects.live.push((collection, live));
        }
        Ok(())
    }

    /// Whether `collection/key` is quarantined, without a lookup while
    /// nothing is.
    fn is_quarantined(
        &self,
        tables: &impl WriteTables,
        collection: &str,
        key: &str,
    ) -> Result<bool, StoreError> {
        if self.quarantined == 0 {
            return Ok(false);
        }
        tables.is_quarantined(collection, key)
    }

    fn check_names(&self, collection: &str, key: &str) -> Result<(), StoreError> {
        self.limits.check_collection(collection)?;
        self.limits.check_key(key)
    }

    /// Decodes `row`, the row stored under `collection/key`. A row that
    /// does not decode is moved to quarantine, and the record is treated as
    /// missing.
    fn decode(
        &mut self,
        tables: &mut impl WriteTables,
        collection: &str,
        key: &str,
        row: Option<Vec<u8>>,
        effects: &mut Effects,
    ) -> Result<Stored, StoreError> {
        let Some(row) = row else {
            return Ok(Stored::Missing);
        };
        match decode_row(&row) {
            Ok((entry, record)) => Ok(Stored::Present { record, entry }),
            Err(cause) => {
                tracing::error!(%collection, %key, %cause, "corrupt record quarantined");
                effects.corrupt += 1;
                // The record bytes cannot tell whether the record was
                // live; the row's header can, if it is readable.
                let was_live = decode_header(&row).is_some_and(|stored| stored.live);
                tables.quarantine(collection, key, &row)?;
                self.quarantined += 1;
                tables.remove_row(collection, key)?;
                self.forget(collection, was_live);
                effects.index.push(IndexUpdate::Remove {
                    collection: collection.to_owned(),
                    key: key.to_owned(),
                });
                Ok(Stored::Missing)
            }
        }
    }

    /// Records a stored row (replacing `previous`: its digest and whether
    /// it was live): the live count, the change-feed entry and the index
    /// update; returns the change's sequence number.
    #[allow(clippy::too_many_arguments)]
    fn stored(
        &mut self,
        collection: &str,
        key: &str,
        previous: Option<(Digest, bool)>,
        digest: Digest,
        live: bool,
        time: Timestamp,
        origin: Origin,
        effects: &mut Effects,
    ) -> u64 {
        let entry = IndexEntry { digest, hlc: time };
        if let Some((_, was_live)) = previous {
            self.forget(collection, was_live);
        }
        if live {
            self.adjust_live(collection, |count| count + 1);
        }

        self.last_seq += 1;
        self.feed.push(&ChangeRef {
            seq: self.last_seq,
            collection,
            key,
            digest,
            origin: origin.replica,
            origin_time: origin.time,
        });
        effects.index.push(IndexUpdate::Put {
            collection: collection.to_owned(),
            key: key.to_owned(),
            entry,
        });
        effects.writes += 1;
        self.last_seq
    }

    /// Takes a stored record out of the collection's live count.
    fn forget(&mut self, collection: &str, was_live: bool) {
        if was_live {
            self.adjust_live(collection, |count| count.saturating_sub(1));
        }
    }

    /// Changes a collection's live count, and marks it for publishing at
    /// the end of the batch (without copying its name after the first
    /// time).
    fn adjust_live(&mut self, collection: &str, adjust: impl FnOnce(u64) -> u64) {
        match self.live.get_mut(collection) {
            Some(count) => *count = adjust(*count),
            None => {
                self.live.insert(collection.to_owned(), adjust(0));
            }
        }
        if !self.touched.contains(collection) {
            self.touched.insert(collection.to_owned());
        }
    }
}

/// The error for a write to a quarantined record.
fn quarantined(collection: &str, key: &str) -> StoreError {
    StoreError::Quarantined {
        collection: collection.to_owned(),
        key: key.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use trellis_crdt::{FieldPath, HybridClock, Op};

    use super::*;
    use crate::mem_tables::MemTables;
    use crate::tables::ReadTables;

    fn writer() -> Writer {
        let clock = SharedClock::new(HybridClock::new(Duration::from_secs(60)));
        Writer::new(ReplicaId(1), clock, 0, 0, &StoreConfig::default())
    }

    fn increment(by: i64) -> Mutation {
        Mutation::Patch(vec![Op::Increment {
            path: FieldPath::top("n").unwrap(),
            by,
        }])
    }

    fn prepared_on_nothing(writer: &Writer, mutation: &Mutation) -> Prepared {
        let time = writer.clock.tick(1);
        prepare(
            &writer.limits,
            writer.replica,
            "c",
            "k",
            &Stored::Missing,
            mutation,
            time,
        )
        .unwrap()
    }

    #[test]
    fn a_write_prepared_on_an_outdated_record_is_applied_afresh() {
        let (mut writer, mut tables) = (writer(), MemTables::default());
        let mut effects = Effects::default();
        let (first, second) = (increment(1), increment(10));
        // Both computed against the missing record, as two threads would.
        let early = prepared_on_nothing(&writer, &first);
        let late = prepared_on_nothing(&writer, &second);
        writer
            .apply_prepared(&mut tables, "c", "k", &first, early, 1, &mut effects)
            .unwrap();
        let applied = writer
            .apply_prepared(&mut tables, "c", "k", &second, late, 1, &mut effects)
            .unwrap();
        // The second was recomputed on top of the first, not stored as
        // prepared (which would have lost the first increment).
        assert_eq!(applied.record.to_json()["n"], 11);
        let (_, stored) = decode_row(&tables.row("c", "k").unwrap().unwrap()).unwrap();
        assert_eq!(stored.to_json()["n"], 11);
        assert_eq!((writer.last_seq, effects.writes), (2, 2));
        assert_eq!(writer.live.get("c"), Some(&1));
    }

    #[test]
    fn a_write_prepared_on_the_current_record_is_stored_as_prepared() {
        let (mut writer, mut tables) = (writer(), MemTables::default());
        let mutation = increment(5);
        let prepared = prepared_on_nothing(&writer, &mutation);
        let expected = (prepared.encoded.digest, prepared.time);
        let applied = writer
            .apply_prepared(
                &mut tables,
                "c",
                "k",
                &mutation,
                prepared,
                1,
                &mut Effects::default(),
            )
            .unwrap();
        assert_eq!((applied.digest, applied.time), expected);
    }

    #[test]
    fn a_write_prepared_before_its_record_was_corrupted_quarantines_it_and_is_refused() {
        let (mut writer, mut tables) = (writer(), MemTables::default());
        let mutation = increment(1);
        let prepared = prepared_on_nothing(&writer, &mutation);
        // A row appeared under the key since, and its record is corrupt.
        tables.corrupt_record("c", "k", b"not a record".to_vec());
        let mut effects = Effects::default();
        let err = writer
            .apply_prepared(&mut tables, "c", "k", &mutation, prepared, 1, &mut effects)
            .unwrap_err();
        assert!(matches!(err, StoreError::Quarantined { .. }), "{err}");
        // The prepared row, stored before the check, is gone again; the
        // corrupt bytes are in quarantine.
        assert!(tables.row("c", "k").unwrap().is_none());
        assert!(tables.is_quarantined("c", "k").unwrap());
        assert_eq!(
            (writer.quarantined, effects.corrupt, writer.last_seq),
            (1, 1, 0)
        );
    }

    #[test]
    fn a_write_prepared_before_its_record_was_quarantined_is_refused() {
        let (mut writer, mut tables) = (writer(), MemTables::default());
        let mutation = increment(1);
        let prepared = prepared_on_nothing(&writer, &mutation);
        tables.quarantine("c", "k", b"bad").unwrap();
        writer.quarantined += 1;
        let err = writer
            .apply_prepared(
                &mut tables,
                "c",
                "k",
                &mutation,
                prepared,
                1,
                &mut Effects::default(),
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::Quarantined { .. }), "{err}");
        assert!(tables.row("c", "k").unwrap().is_none());
    }
}
