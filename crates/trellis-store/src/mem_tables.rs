//! [`ReadTables`] and [`WriteTables`] over plain maps, for [`MemStore`](crate::MemStore).

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::index::IndexEntry;
use crate::tables::{ReadTables, StoredEntry, WriteTables};
use crate::StoreError;

/// The tables of a memory store.
#[derive(Debug, Default)]
pub(crate) struct MemTables {
    records: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    index: BTreeMap<String, BTreeMap<String, StoredEntry>>,
    changes: BTreeMap<u64, Vec<u8>>,
    quarantine: BTreeMap<(String, String), Vec<u8>>,
    meta: BTreeMap<String, Vec<u8>>,
}

impl ReadTables for MemTables {
    fn record(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .records
            .get(collection)
            .and_then(|records| records.get(key))
            .cloned())
    }

    fn records_after(
        &self,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let Some(records) = self.records.get(collection) else {
            return Ok(Vec::new());
        };
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        Ok(records
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, bytes)| (key.clone(), bytes.clone()))
            .collect())
    }

    fn record_count(&self, collection: &str) -> Result<u64, StoreError> {
        Ok(self
            .records
            .get(collection)
            .map_or(0, |records| records.len() as u64))
    }

    fn index_entry(&self, collection: &str, key: &str) -> Result<Option<StoredEntry>, StoreError> {
        Ok(self
            .index
            .get(collection)
            .and_then(|index| index.get(key))
            .copied())
    }

    fn all_index_entries(
        &self,
        collection: &str,
    ) -> Result<Option<Vec<(String, IndexEntry)>>, StoreError> {
        Ok(Some(
            self.index
                .get(collection)
                .map(|index| {
                    index
                        .iter()
                        .map(|(key, stored)| (key.clone(), stored.entry))
                        .collect()
                })
                .unwrap_or_default(),
        ))
    }

    fn is_quarantined(&self, collection: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .quarantine
            .contains_key(&(collection.to_owned(), key.to_owned())))
    }

    fn quarantined_count(&self) -> Result<u64, StoreError> {
        Ok(self.quarantine.len() as u64)
    }

    fn changes_after(&self, after: u64, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self
            .changes
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(_, bytes)| bytes.clone())
            .collect())
    }

    fn collections(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.records.keys().cloned().collect())
    }

    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(name).cloned())
    }
}

impl WriteTables for MemTables {
    fn put_record(&mut self, collection: &str, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.records
            .entry(collection.to_owned())
            .or_default()
            .insert(key.to_owned(), bytes.to_vec());
        Ok(())
    }

    fn remove_record(&mut self, collection: &str, key: &str) -> Result<(), StoreError> {
        if let Some(records) = self.records.get_mut(collection) {
            records.remove(key);
        }
        Ok(())
    }

    fn put_index_entry(
        &mut self,
        collection: &str,
        key: &str,
        entry: &StoredEntry,
    ) -> Result<(), StoreError> {
        self.index
            .entry(collection.to_owned())
            .or_default()
            .insert(key.to_owned(), *entry);
        Ok(())
    }

    fn remove_index_entry(&mut self, collection: &str, key: &str) -> Result<(), StoreError> {
        if let Some(index) = self.index.get_mut(collection) {
            index.remove(key);
        }
        Ok(())
    }

    fn retain_index(
        &mut self,
        collection: &str,
        keep: &mut dyn FnMut(&str) -> bool,
    ) -> Result<(), StoreError> {
        if let Some(index) = self.index.get_mut(collection) {
            index.retain(|key, _| keep(key));
        }
        Ok(())
    }

    fn quarantine(&mut self, collection: &str, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.quarantine
            .insert((collection.to_owned(), key.to_owned()), bytes.to_vec());
        Ok(())
    }

    fn release(&mut self, collection: &str, key: &str) -> Result<(), StoreError> {
        self.quarantine
            .remove(&(collection.to_owned(), key.to_owned()));
        Ok(())
    }

    fn append_change(&mut self, seq: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.changes.insert(seq, bytes.to_vec());
        Ok(())
    }

    fn trim_changes(&mut self, through: u64) -> Result<(), StoreError> {
        self.changes = self.changes.split_off(&through.saturating_add(1));
        Ok(())
    }

    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(name.to_owned(), value.to_vec());
        Ok(())
    }
}

impl MemTables {
    /// Overwrites a stored record's bytes as they are, for corruption tests.
    #[cfg(test)]
    pub fn corrupt_record(&mut self, collection: &str, key: &str, bytes: Vec<u8>) {
        self.records
            .entry(collection.to_owned())
            .or_default()
            .insert(key.to_owned(), bytes);
    }
}
