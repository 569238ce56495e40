//! The in-memory reconciliation indexes and live counts of all
//! collections: loaded on open from the index entries stored in front of
//! the records (each checked against its record's bytes, and rebuilt from
//! the record when it does not check out), then updated after every
//! committed batch.

use std::collections::BTreeMap;
use std::sync::RwLock;

use trellis_crdt::{codec, Digest, Record, Timestamp};

use crate::index::{Bucket, Fingerprint, IndexEntry, KeyRange, RangeIndex};
use crate::row::{checked_row, decode_header, encode_row, StoredEntry, HEADER_LEN};
use crate::tables::WriteTables;
use crate::writer::IndexUpdate;
use crate::StoreError;

/// Every collection's [`RangeIndex`] and live-record count, shared by
/// readers and the writer.
#[derive(Default)]
pub(crate) struct Indexes {
    by_collection: RwLock<BTreeMap<String, Collection>>,
}

/// One collection's index and live count.
#[derive(Default)]
struct Collection {
    index: RangeIndex,
    live: u64,
}

/// What opening found, besides the indexes.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// Each collection's live-record count.
    pub live: BTreeMap<String, u64>,
    /// Collections with at least one index entry rebuilt from its record.
    pub rebuilt: u64,
    /// Records found corrupt (and quarantined) while loading.
    pub corrupt: u64,
}

impl Indexes {
    /// Loads every collection's index from the rows in `tables`. A row
    /// whose index entry does not check out against its record bytes gets
    /// its entry rebuilt from the record (and rewritten); a row whose
    /// record does not decode is quarantined.
    pub fn load(tables: &mut impl WriteTables) -> Result<(Indexes, Loaded), StoreError> {
        let mut loaded = Loaded::default();
        let mut by_collection = BTreeMap::new();
        for collection in tables.collections()? {
            let (index, found) = load_collection(tables, &collection)?;
            if found.repaired > 0 {
                tracing::warn!(%collection, repaired = found.repaired, "index entries did not match their records; rebuilt them from the records");
                loaded.rebuilt += 1;
            }
            loaded.corrupt += found.corrupt;
            loaded.live.insert(collection.clone(), found.live);
            let live = found.live;
            by_collection.insert(collection, Collection { index, live });
        }
        let indexes = Indexes {
            by_collection: RwLock::new(by_collection),
        };
        Ok((indexes, loaded))
    }

    /// Applies a committed batch's index changes and live counts.
    pub fn apply(&self, updates: Vec<IndexUpdate>, live: Vec<(String, u64)>) {
        let mut by_collection = self
            .by_collection
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for update in updates {
            match update {
                IndexUpdate::Put {
                    collection,
                    key,
                    entry,
                } => {
                    by_collection
                        .entry(collection)
                        .or_default()
                        .index
                        .insert(key, entry);
                }
                IndexUpdate::Remove { collection, key } => {
                    if let Some(found) = by_collection.get_mut(&collection) {
                        found.index.remove(&key);
                    }
                }
            }
        }
        for (collection, count) in live {
            by_collection.entry(collection).or_default().live = count;
        }
    }

    /// Runs `read` against a collection (an empty one if it does not
    /// exist).
    fn read<T>(&self, collection: &str, read: impl FnOnce(&Collection) -> T) -> T {
        let by_collection = self
            .by_collection
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match by_collection.get(collection) {
            Some(found) => read(found),
            None => read(&Collection::default()),
        }
    }

    /// The fingerprint of `range`.
    pub fn fingerprint(&self, collection: &str, range: &KeyRange) -> Fingerprint {
        self.read(collection, |found| found.index.fingerprint(range))
    }

    /// `range` split into `k` equal buckets.
    pub fn split(&self, collection: &str, range: &KeyRange, k: usize) -> Vec<Bucket> {
        self.read(collection, |found| found.index.split(range, k))
    }

    /// Up to `limit` entries of `range`.
    pub fn entries(
        &self,
        collection: &str,
        range: &KeyRange,
        limit: usize,
    ) -> Vec<(String, IndexEntry)> {
        self.read(collection, |found| {
            found
                .index
                .range(range)
                .take(limit)
                .map(|(key, entry)| (key.to_owned(), *entry))
                .collect()
        })
    }

    /// Whether a collection's index holds `key`.
    pub fn contains(&self, collection: &str, key: &str) -> bool {
        self.read(collection, |found| found.index.contains_key(key))
    }

    /// How many keys a collection's index holds.
    pub fn len(&self, collection: &str) -> u64 {
        self.read(collection, |found| found.index.len() as u64)
    }

    /// How many of a collection's records are live.
    pub fn live(&self, collection: &str) -> u64 {
        self.read(collection, |found| found.live)
    }
}

/// Rows read at a time while loading.
const LOAD_CHUNK: usize = 1024;

/// What loading one collection found.
#[derive(Debug, Default)]
struct Found {
    live: u64,
    repaired: u64,
    corrupt: u64,
}

/// Builds a collection's index from its rows, read a chunk at a time so
/// that memory holds the index being built but never every record.
fn load_collection(
    tables: &mut impl WriteTables,
    collection: &str,
) -> Result<(RangeIndex, Found), StoreError> {
    let mut rows = Rows {
        tables,
        collection,
        after: None,
        chunk: Vec::new().into_iter(),
        found: Found::default(),
        failed: None,
    };
    let index = RangeIndex::from_sorted(&mut rows);
    let Rows { found, failed, .. } = rows;
    if let Some(err) = failed {
        return Err(err);
    }
    let index = index.map_err(|err| StoreError::Engine(err.to_string()))?;
    Ok((index, found))
}

/// The index entries of a collection's rows in key order. Stops at the
/// first table error, kept in `failed`.
struct Rows<'a, T> {
    tables: &'a mut T,
    collection: &'a str,
    /// The last key read.
    after: Option<String>,
    /// Rows read and not yet processed.
    chunk: std::vec::IntoIter<(String, Vec<u8>)>,
    found: Found,
    failed: Option<StoreError>,
}

impl<T: WriteTables> Rows<'_, T> {
    /// The entry of one row: as stored if it checks out against the
    /// record bytes, else rebuilt from the record and rewritten; `None`
    /// if the record does not decode (it is quarantined).
    fn entry(&mut self, key: &str, row: &[u8]) -> Result<Option<IndexEntry>, StoreError> {
        if let Some((stored, _)) = checked_row(row) {
            self.found.live += u64::from(stored.live);
            return Ok(Some(stored.entry));
        }
        let collection = self.collection;
        let record = row.get(HEADER_LEN..).unwrap_or_default();
        match codec::decode::<Record>(record) {
            Ok(decoded) => {
                // The time of the last change is kept from the damaged
                // entry if it is readable.
                let hlc = decode_header(row)
                    .map_or_else(|| latest_write(&decoded), |stored| stored.entry.hlc);
                let live = decoded.exists();
                let entry = IndexEntry {
                    digest: Digest::of_encoding(record),
                    hlc,
                };
                self.tables.put_row(
                    collection,
                    key,
                    &encode_row(&StoredEntry { entry, live }, record),
                )?;
                self.found.repaired += 1;
                self.found.live += u64::from(live);
                Ok(Some(entry))
            }
            Err(cause) => {
                tracing::error!(%collection, %key, %cause, "corrupt record quarantined on open");
                self.found.corrupt += 1;
                self.tables.quarantine(collection, key, row)?;
                self.tables.remove_row(collection, key)?;
                Ok(None)
            }
        }
    }

    /// Reads the next chunk of rows; `false` at the end.
    fn refill(&mut self) -> Result<bool, StoreError> {
        let chunk =
            self.tables
                .rows_after(self.collection, "", self.after.as_deref(), LOAD_CHUNK)?;
        let Some((last, _)) = chunk.last() else {
            return Ok(false);
        };
        self.after = Some(last.clone());
        self.chunk = chunk.into_iter();
        Ok(true)
    }
}

impl<T: WriteTables> Iterator for Rows<'_, T> {
    type Item = (String, IndexEntry);

    fn next(&mut self) -> Option<Self::Item> {
        while self.failed.is_none() {
            let Some((key, row)) = self.chunk.next() else {
                match self.refill() {
                    Ok(true) => continue,
                    Ok(false) => return None,
                    Err(err) => {
                        self.failed = Some(err);
                        return None;
                    }
                }
            };
            match self.entry(&key, &row) {
                Ok(Some(entry)) => return Some((key, entry)),
                Ok(None) => {}
                Err(err) => self.failed = Some(err),
            }
        }
        None
    }
}

/// The best estimate of a record's last change time when its index entry
/// is lost: the latest register write in it.
fn latest_write(record: &Record) -> Timestamp {
    record
        .fields()
        .flat_map(|(_, field)| field.register.siblings().map(|(_, stamped)| stamped.time))
        .max()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use trellis_crdt::ReplicaId;

    use super::*;
    use crate::mem_tables::MemTables;
    use crate::tables::ReadTables;

    fn row(record: &Record, hlc: u64) -> Vec<u8> {
        let bytes = codec::encode(record);
        let entry = IndexEntry {
            digest: Digest::of_encoding(&bytes),
            hlc: Timestamp(hlc),
        };
        encode_row(
            &StoredEntry {
                entry,
                live: record.exists(),
            },
            &bytes,
        )
    }

    #[test]
    fn loading_rebuilds_damaged_entries_and_quarantines_corrupt_records() {
        let mut tables = MemTables::default();
        let time = Timestamp::from_millis(1_000);
        let mut good = Record::default();
        good.put_json(&serde_json::json!({"a": 1}), ReplicaId(1), time)
            .unwrap();
        let mut gone = good.clone();
        gone.delete();
        let mut other = Record::default();
        other
            .put_json(&serde_json::json!({"b": 2}), ReplicaId(1), time)
            .unwrap();
        // "a": a wrong digest in front of a good record; "c": a deleted
        // record, intact; "d": a live flag that is neither 0 nor 1; "e":
        // intact.
        let mut a = row(&good, 9);
        a[0] ^= 1;
        let mut d = row(&other, 5);
        d[40] = 7;
        for (key, bytes) in [
            ("a", a),
            ("c", row(&gone, 3)),
            ("d", d),
            ("e", row(&other, 4)),
        ] {
            tables.put_row("leads", key, &bytes).unwrap();
        }
        // "b": a record that does not decode behind a readable header.
        tables.corrupt_record("leads", "b", vec![1, 0xff, 0xff]);

        let (indexes, loaded) = Indexes::load(&mut tables).unwrap();
        assert_eq!((loaded.rebuilt, loaded.corrupt), (1, 1));
        assert_eq!(loaded.live.get("leads"), Some(&3));
        assert_eq!(indexes.live("leads"), 3);
        let entries = indexes.entries("leads", &KeyRange::all(), usize::MAX);
        let keys: Vec<_> = entries.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(keys, ["a", "c", "d", "e"]);
        // The rebuilt entries are rewritten and check out, with the live
        // flag from the record, and the time of the last change from the
        // old header if it was readable ("a"), else from the record ("d").
        for (key, hlc) in [("a", Timestamp(9)), ("d", time)] {
            let stored = tables.row("leads", key).unwrap().unwrap();
            let (entry, _) = checked_row(&stored).expect("the row checks out now");
            assert_eq!((entry.entry.hlc, entry.live), (hlc, true));
        }
        assert!(tables.is_quarantined("leads", "b").unwrap());
        assert!(tables.row("leads", "b").unwrap().is_none());
        // A second load finds nothing to repair.
        let (_, again) = Indexes::load(&mut tables).unwrap();
        assert_eq!((again.rebuilt, again.corrupt), (0, 0));
    }

    #[test]
    fn a_row_cut_inside_its_header_is_quarantined() {
        let mut tables = MemTables::default();
        tables.put_row("leads", "k", &[0; HEADER_LEN - 1]).unwrap();
        let (indexes, loaded) = Indexes::load(&mut tables).unwrap();
        assert_eq!(loaded.corrupt, 1);
        assert_eq!(indexes.len("leads"), 0);
        assert!(tables.is_quarantined("leads", "k").unwrap());
    }
}
