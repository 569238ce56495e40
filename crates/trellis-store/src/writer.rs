//! The write logic both stores share: applying mutations and merges to
//! the tables, keeping the reconciliation index, the change feed, the
//! clock and the counts in step, all within one batch.

use std::collections::{BTreeMap, BTreeSet};

use trellis_crdt::{codec, Digest, HybridClock, Lattice, Record, ReplicaId, Timestamp};

use crate::index::{Fingerprint, IndexEntry};
use crate::tables::{meta, WriteTables};
use crate::{Applied, Change, Limits, Merged, Mutation, Origin, StoreConfig, StoreError};

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
}

/// The writer's state: everything a write changes besides the tables.
/// Cloned at the start of a batch and restored if the batch fails.
#[derive(Clone, Debug)]
pub(crate) struct Writer {
    pub replica: ReplicaId,
    pub clock: HybridClock,
    pub last_seq: u64,
    pub feed_floor: u64,
    pub limits: Limits,
    pub retention: u64,
    /// Each collection's index fingerprint (its stored checksum).
    pub totals: BTreeMap<String, Fingerprint>,
    /// Each collection's live-record count.
    pub live: BTreeMap<String, u64>,
    /// Collections whose metadata the current batch must write.
    touched: BTreeSet<String>,
}

/// A record as found in the tables.
enum Stored {
    Missing,
    Present { record: Record, digest: Digest },
}

impl Writer {
    /// A writer continuing from persisted state.
    pub fn new(
        replica: ReplicaId,
        clock: HybridClock,
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
            totals: BTreeMap::new(),
            live: BTreeMap::new(),
            touched: BTreeSet::new(),
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
        // Loading first quarantines a record found corrupt just now, so
        // that the check below refuses the write in that case too.
        let before = self.load(tables, collection, key, effects)?;
        if tables.is_quarantined(collection, key)? {
            return Err(StoreError::Quarantined {
                collection: collection.to_owned(),
                key: key.to_owned(),
            });
        }
        let mut record = match &before {
            Stored::Missing => Record::default(),
            Stored::Present { record, .. } => record.clone(),
        };
        let time = self.clock.tick(wall_ms);
        let delta = match mutation {
            Mutation::Put(doc) => record.put_json(doc, self.replica, time)?,
            Mutation::Patch(ops) => record.apply_all(ops, self.replica, time)?,
            Mutation::Delete => record.delete(),
        };
        let origin = Origin {
            replica: self.replica,
            time,
            full_state: false,
        };
        let (digest, seq) = self.store(
            tables, collection, key, &before, &record, time, origin, effects,
        )?;
        Ok(Applied {
            delta,
            record,
            digest,
            seq,
            time,
        })
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
        let before = self.load(tables, collection, key, effects)?;
        let quarantined = tables.is_quarantined(collection, key)?;
        let (mut record, previous_time) = match &before {
            Stored::Missing => (Record::default(), Timestamp::default()),
            Stored::Present { record, .. } => (
                record.clone(),
                tables
                    .index_entry(collection, key)?
                    .map_or(Timestamp::default(), |e| e.hlc),
            ),
        };
        let unchanged = record.clone();
        record.merge(state);
        if quarantined && origin.full_state {
            tables.release(collection, key)?;
        }
        if record == unchanged {
            let digest = match before {
                Stored::Present { digest, .. } => digest,
                Stored::Missing => Digest::of(&record),
            };
            return Ok(Merged {
                grew: false,
                digest,
                seq: None,
            });
        }
        let time = previous_time.max(origin.time);
        let (digest, seq) = self.store(
            tables, collection, key, &before, &record, time, origin, effects,
        )?;
        Ok(Merged {
            grew: true,
            digest,
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
        self.load(tables, collection, key, effects).map(drop)
    }

    /// Writes the batch's metadata: clock, sequence, feed trim, index
    /// checksums and live counts of the collections it touched.
    pub fn finish(&mut self, tables: &mut impl WriteTables) -> Result<(), StoreError> {
        tables.put_meta(meta::CLOCK, &self.clock.last().0.to_le_bytes())?;
        tables.put_meta(meta::LAST_SEQ, &self.last_seq.to_le_bytes())?;
        let floor = self.last_seq.saturating_sub(self.retention);
        if floor > self.feed_floor {
            tables.trim_changes(floor)?;
            self.feed_floor = floor;
            tables.put_meta(meta::FEED_FLOOR, &floor.to_le_bytes())?;
        }
        for collection in std::mem::take(&mut self.touched) {
            let total = self.totals.get(&collection).copied().unwrap_or_default();
            tables.put_meta(&meta::checksum(&collection), &codec::encode(&total))?;
            let live = self.live.get(&collection).copied().unwrap_or(0);
            tables.put_meta(&meta::live(&collection), &live.to_le_bytes())?;
        }
        Ok(())
    }

    fn check_names(&self, collection: &str, key: &str) -> Result<(), StoreError> {
        self.limits.check_collection(collection)?;
        self.limits.check_key(key)
    }

    /// Reads and decodes a record. Bytes that do not decode are moved to
    /// quarantine, and the record is treated as missing.
    fn load(
        &mut self,
        tables: &mut impl WriteTables,
        collection: &str,
        key: &str,
        effects: &mut Effects,
    ) -> Result<Stored, StoreError> {
        let Some(bytes) = tables.record(collection, key)? else {
            return Ok(Stored::Missing);
        };
        let digest = Digest::of_encoding(&bytes);
        match codec::decode::<Record>(&bytes) {
            Ok(record) => Ok(Stored::Present { record, digest }),
            Err(cause) => {
                tracing::error!(%collection, %key, %cause, "corrupt record quarantined");
                effects.corrupt += 1;
                tables.quarantine(collection, key, &bytes)?;
                tables.remove_record(collection, key)?;
                tables.remove_index_entry(collection, key)?;
                self.forget(collection, key, &digest, true);
                effects.index.push(IndexUpdate::Remove {
                    collection: collection.to_owned(),
                    key: key.to_owned(),
                });
                self.touched.insert(collection.to_owned());
                Ok(Stored::Missing)
            }
        }
    }

    /// Checks limits, then writes the record, its index entry and a
    /// change-feed entry.
    #[allow(clippy::too_many_arguments)]
    fn store(
        &mut self,
        tables: &mut impl WriteTables,
        collection: &str,
        key: &str,
        before: &Stored,
        record: &Record,
        time: Timestamp,
        origin: Origin,
        effects: &mut Effects,
    ) -> Result<(Digest, u64), StoreError> {
        let fields = record.fields().count();
        if fields > self.limits.max_fields {
            return Err(StoreError::TooManyFields {
                collection: collection.to_owned(),
                key: key.to_owned(),
                fields,
                limit: self.limits.max_fields,
            });
        }
        let bytes = codec::encode(record);
        if bytes.len() > self.limits.max_record_bytes {
            return Err(StoreError::RecordTooLarge {
                collection: collection.to_owned(),
                key: key.to_owned(),
                size: bytes.len(),
                limit: self.limits.max_record_bytes,
            });
        }
        let digest = Digest::of_encoding(&bytes);
        let entry = IndexEntry { digest, hlc: time };
        tables.put_record(collection, key, &bytes)?;
        tables.put_index_entry(collection, key, &entry)?;
        if let Stored::Present {
            record: old,
            digest: old_digest,
        } = before
        {
            self.forget(collection, key, old_digest, old.exists());
        }
        let total = self.totals.entry(collection.to_owned()).or_default();
        *total += Fingerprint::of_entry(key, &digest);
        if record.exists() {
            *self.live.entry(collection.to_owned()).or_insert(0) += 1;
        }
        self.touched.insert(collection.to_owned());

        self.last_seq += 1;
        let change = Change {
            seq: self.last_seq,
            collection: collection.to_owned(),
            key: key.to_owned(),
            digest,
            origin: origin.replica,
            origin_time: origin.time,
        };
        tables.append_change(change.seq, &codec::encode(&change))?;
        effects.index.push(IndexUpdate::Put {
            collection: collection.to_owned(),
            key: key.to_owned(),
            entry,
        });
        effects.writes += 1;
        Ok((digest, self.last_seq))
    }

    /// Takes a stored record out of the collection's checksum and count.
    fn forget(&mut self, collection: &str, key: &str, digest: &Digest, was_live: bool) {
        let total = self.totals.entry(collection.to_owned()).or_default();
        *total -= Fingerprint::of_entry(key, digest);
        if was_live {
            let live = self.live.entry(collection.to_owned()).or_insert(0);
            *live = live.saturating_sub(1);
        }
    }
}
