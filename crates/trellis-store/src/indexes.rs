//! The in-memory reconciliation indexes of all collections: loaded and
//! verified on open (rebuilt from the records when missing or corrupt),
//! then updated after every committed batch.

use std::collections::BTreeMap;
use std::sync::RwLock;

use trellis_crdt::{codec, Digest, Record, Timestamp};

use crate::index::{Bucket, Fingerprint, IndexEntry, KeyRange, RangeIndex};
use crate::tables::{meta, StoredEntry, WriteTables};
use crate::writer::IndexUpdate;
use crate::StoreError;

/// Every collection's [`RangeIndex`], shared by readers and the writer.
#[derive(Default)]
pub(crate) struct Indexes {
    by_collection: RwLock<BTreeMap<String, RangeIndex>>,
}

/// What opening found, besides the indexes.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// Each collection's index fingerprint.
    pub totals: BTreeMap<String, Fingerprint>,
    /// Each collection's live-record count.
    pub live: BTreeMap<String, u64>,
    /// Collections whose index had to be rebuilt.
    pub rebuilt: u64,
    /// Records found corrupt (and quarantined) while rebuilding.
    pub corrupt: u64,
}

impl Indexes {
    /// Loads every collection's index from `tables`, rebuilding (and
    /// rewriting) any whose stored checksum or size does not match.
    pub fn load(tables: &mut impl WriteTables) -> Result<(Indexes, Loaded), StoreError> {
        let mut loaded = Loaded::default();
        let mut by_collection = BTreeMap::new();
        for collection in tables.collections()? {
            let stored_checksum = tables
                .meta(&meta::checksum(&collection))?
                .and_then(|bytes| codec::decode::<Fingerprint>(&bytes).ok());
            let records = tables.record_count(&collection)?;
            let verified = tables.all_index_entries(&collection)?.and_then(|entries| {
                let index = RangeIndex::from_sorted(entries).ok()?;
                let matches =
                    Some(index.total()) == stored_checksum && index.len() as u64 == records;
                matches.then_some(index)
            });
            let live_meta = tables.meta(&meta::live(&collection))?;
            let (index, live) = match (verified, live_meta) {
                (Some(index), Some(live)) => {
                    let live = <[u8; 8]>::try_from(live.as_slice()).map_or(0, u64::from_le_bytes);
                    (index, live)
                }
                _ => {
                    tracing::warn!(%collection, "reconciliation index missing or corrupt; rebuilding from records");
                    loaded.rebuilt += 1;
                    rebuild(tables, &collection, &mut loaded.corrupt)?
                }
            };
            loaded.totals.insert(collection.clone(), index.total());
            loaded.live.insert(collection.clone(), live);
            by_collection.insert(collection, index);
        }
        let indexes = Indexes {
            by_collection: RwLock::new(by_collection),
        };
        Ok((indexes, loaded))
    }

    /// Applies a committed batch's changes.
    pub fn apply(&self, updates: Vec<IndexUpdate>) {
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
                        .insert(key, entry);
                }
                IndexUpdate::Remove { collection, key } => {
                    if let Some(index) = by_collection.get_mut(&collection) {
                        index.remove(&key);
                    }
                }
            }
        }
    }

    /// Runs `read` against a collection's index (an empty one if the
    /// collection does not exist).
    fn read<T>(&self, collection: &str, read: impl FnOnce(&RangeIndex) -> T) -> T {
        let by_collection = self
            .by_collection
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match by_collection.get(collection) {
            Some(index) => read(index),
            None => read(&RangeIndex::new()),
        }
    }

    /// The fingerprint of `range`.
    pub fn fingerprint(&self, collection: &str, range: &KeyRange) -> Fingerprint {
        self.read(collection, |index| index.fingerprint(range))
    }

    /// `range` split into `k` equal buckets.
    pub fn split(&self, collection: &str, range: &KeyRange, k: usize) -> Vec<Bucket> {
        self.read(collection, |index| index.split(range, k))
    }

    /// Up to `limit` entries of `range`.
    pub fn entries(
        &self,
        collection: &str,
        range: &KeyRange,
        limit: usize,
    ) -> Vec<(String, IndexEntry)> {
        self.read(collection, |index| {
            index
                .range(range)
                .take(limit)
                .map(|(key, entry)| (key.to_owned(), *entry))
                .collect()
        })
    }

    /// Whether a collection's index holds `key`.
    pub fn contains(&self, collection: &str, key: &str) -> bool {
        self.read(collection, |index| index.contains_key(key))
    }

    /// How many keys a collection's index holds.
    pub fn len(&self, collection: &str) -> u64 {
        self.read(collection, |index| index.len() as u64)
    }
}

/// Records read at a time while rebuilding an index.
const REBUILD_CHUNK: usize = 1024;

/// Rebuilds a collection's index from its records, quarantining any that
/// do not decode, and rewrites the stored index, checksum and live count.
///
/// The records are read a chunk at a time and each stored index entry is
/// rewritten in place, so memory holds the index being built but never
/// every record or a second copy of the entries.
fn rebuild(
    tables: &mut impl WriteTables,
    collection: &str,
    corrupt: &mut u64,
) -> Result<(RangeIndex, u64), StoreError> {
    let mut records = Rebuilt {
        tables,
        collection,
        after: None,
        chunk: Vec::new().into_iter(),
        live: 0,
        corrupt: 0,
        failed: None,
    };
    let index = RangeIndex::from_sorted(&mut records);
    let Rebuilt {
        tables,
        live,
        corrupt: found,
        failed,
        ..
    } = records;
    *corrupt += found;
    if let Some(err) = failed {
        return Err(err);
    }
    let index = index.map_err(|err| StoreError::Engine(err.to_string()))?;
    // Entries of keys that have no record (any more).
    tables.retain_index(collection, &mut |key| index.contains_key(key))?;
    tables.put_meta(&meta::checksum(collection), &codec::encode(&index.total()))?;
    tables.put_meta(&meta::live(collection), &live.to_le_bytes())?;
    Ok((index, live))
}

/// The index entries of a collection's records in key order, read a chunk
/// at a time, each also written to the stored index; records that do not
/// decode are quarantined and skipped. Stops at the first table error,
/// kept in `failed`.
struct Rebuilt<'a, T> {
    tables: &'a mut T,
    collection: &'a str,
    /// The last key read.
    after: Option<String>,
    /// Records read and not yet processed.
    chunk: std::vec::IntoIter<(String, Vec<u8>)>,
    /// Live records found.
    live: u64,
    /// Corrupt records found.
    corrupt: u64,
    failed: Option<StoreError>,
}

impl<T: WriteTables> Rebuilt<'_, T> {
    /// The entry of one record, or `None` if it is corrupt (and now
    /// quarantined).
    fn entry(&mut self, key: &str, bytes: &[u8]) -> Result<Option<IndexEntry>, StoreError> {
        let collection = self.collection;
        match codec::decode::<Record>(bytes) {
            Ok(record) => {
                let hlc = self
                    .tables
                    .index_entry(collection, key)?
                    .map_or_else(|| latest_write(&record), |stored| stored.entry.hlc);
                let entry = IndexEntry {
                    digest: Digest::of_encoding(bytes),
                    hlc,
                };
                let live = record.exists();
                self.tables
                    .put_index_entry(collection, key, &StoredEntry { entry, live })?;
                self.live += u64::from(live);
                Ok(Some(entry))
            }
            Err(cause) => {
                tracing::error!(%collection, %key, %cause, "corrupt record quarantined during index rebuild");
                self.corrupt += 1;
                self.tables.quarantine(collection, key, bytes)?;
                self.tables.remove_record(collection, key)?;
                self.tables.remove_index_entry(collection, key)?;
                Ok(None)
            }
        }
    }

    /// Reads the next chunk of records; `false` at the end.
    fn refill(&mut self) -> Result<bool, StoreError> {
        let chunk =
            self.tables
                .records_after(self.collection, "", self.after.as_deref(), REBUILD_CHUNK)?;
        let Some((last, _)) = chunk.last() else {
            return Ok(false);
        };
        self.after = Some(last.clone());
        self.chunk = chunk.into_iter();
        Ok(true)
    }
}

impl<T: WriteTables> Iterator for Rebuilt<'_, T> {
    type Item = (String, IndexEntry);

    fn next(&mut self) -> Option<Self::Item> {
        while self.failed.is_none() {
            let Some((key, bytes)) = self.chunk.next() else {
                match self.refill() {
                    Ok(true) => continue,
                    Ok(false) => return None,
                    Err(err) => {
                        self.failed = Some(err);
                        return None;
                    }
                }
            };
            match self.entry(&key, &bytes) {
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

    fn entry(byte: u8) -> StoredEntry {
        StoredEntry {
            entry: IndexEntry {
                digest: Digest([byte; 32]),
                hlc: Timestamp(u64::from(byte)),
            },
            live: true,
        }
    }

    #[test]
    fn a_rebuild_rewrites_entries_drops_stale_ones_and_quarantines_corrupt_records() {
        let mut tables = MemTables::default();
        let time = Timestamp::from_millis(1_000);
        let mut good = Record::default();
        good.put_json(&serde_json::json!({"a": 1}), ReplicaId(1), time)
            .unwrap();
        let mut gone = good.clone();
        gone.delete();
        for (key, record) in [("a", &good), ("c", &gone)] {
            tables
                .put_record("leads", key, &codec::encode(record))
                .unwrap();
        }
        tables.corrupt_record("leads", "b", vec![1, 0xff, 0xff]);
        // A wrong entry for "a", an entry for "b", and one for "z", which
        // has no record; no checksum, so loading rebuilds.
        for key in ["a", "b", "z"] {
            tables.put_index_entry("leads", key, &entry(9)).unwrap();
        }
        let (indexes, loaded) = Indexes::load(&mut tables).unwrap();
        assert_eq!((loaded.rebuilt, loaded.corrupt), (1, 1));
        assert_eq!(loaded.live.get("leads"), Some(&1));
        let keys: Vec<_> = indexes
            .entries("leads", &KeyRange::all(), usize::MAX)
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(keys, ["a", "c"]);
        let stored = tables.all_index_entries("leads").unwrap().unwrap();
        assert_eq!(
            stored,
            indexes.entries("leads", &KeyRange::all(), usize::MAX)
        );
        let a = tables.index_entry("leads", "a").unwrap().unwrap();
        assert_eq!(a.entry.digest, Digest::of_encoding(&codec::encode(&good)));
        // The old entry's time is kept.
        assert_eq!(a.entry.hlc, Timestamp(9));
        assert!(!tables.index_entry("leads", "c").unwrap().unwrap().live);
        assert!(tables.is_quarantined("leads", "b").unwrap());
        assert!(tables.record("leads", "b").unwrap().is_none());
    }
}
