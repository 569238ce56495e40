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
/// The records are read a chunk at a time, so memory holds the index
/// entries (as the index itself does afterwards) but never every record.
fn rebuild(
    tables: &mut impl WriteTables,
    collection: &str,
    corrupt: &mut u64,
) -> Result<(RangeIndex, u64), StoreError> {
    let mut entries = Vec::new();
    let mut live = 0u64;
    let mut after: Option<String> = None;
    loop {
        let chunk = tables.records_after(collection, "", after.as_deref(), REBUILD_CHUNK)?;
        let Some((last, _)) = chunk.last() else {
            break;
        };
        after = Some(last.clone());
        for (key, bytes) in chunk {
            match codec::decode::<Record>(&bytes) {
                Ok(record) => {
                    let hlc = tables
                        .index_entry(collection, &key)?
                        .map_or_else(|| latest_write(&record), |stored| stored.entry.hlc);
                    let entry = IndexEntry {
                        digest: Digest::of_encoding(&bytes),
                        hlc,
                    };
                    live += u64::from(record.exists());
                    entries.push((
                        key,
                        StoredEntry {
                            entry,
                            live: record.exists(),
                        },
                    ));
                }
                Err(cause) => {
                    tracing::error!(%collection, %key, %cause, "corrupt record quarantined during index rebuild");
                    *corrupt += 1;
                    tables.quarantine(collection, &key, &bytes)?;
                    tables.remove_record(collection, &key)?;
                }
            }
        }
    }
    tables.replace_index(collection, &entries)?;
    let index =
        RangeIndex::from_sorted(entries.into_iter().map(|(key, stored)| (key, stored.entry)))
            .map_err(|err| StoreError::Engine(err.to_string()))?;
    tables.put_meta(&meta::checksum(collection), &codec::encode(&index.total()))?;
    tables.put_meta(&meta::live(collection), &live.to_le_bytes())?;
    Ok((index, live))
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
