//! [`ReadTables`] and [`WriteTables`] over plain maps, for [`MemStore`](crate::MemStore).

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::tables::{ReadTables, WriteTables};
use crate::StoreError;

/// The tables of a memory store: the same rows as a redb store's.
#[derive(Debug, Default)]
pub(crate) struct MemTables {
    records: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    changes: BTreeMap<u64, Vec<u8>>,
    quarantine: BTreeMap<(String, String), Vec<u8>>,
    meta: BTreeMap<String, Vec<u8>>,
}

impl ReadTables for MemTables {
    fn row(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .records
            .get(collection)
            .and_then(|records| records.get(key))
            .cloned())
    }

    fn rows_after(
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

    fn is_quarantined(&self, collection: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .quarantine
            .contains_key(&(collection.to_owned(), key.to_owned())))
    }

    fn quarantined_count(&self) -> Result<u64, StoreError> {
        Ok(self.quarantine.len() as u64)
    }

    fn change_batches_after(
        &self,
        after: u64,
        visit: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let Some(start) = after.checked_add(1) else {
            return Ok(());
        };
        for (last_seq, row) in self.changes.range(start..) {
            if !visit(*last_seq, row) {
                break;
            }
        }
        Ok(())
    }

    fn last_change_batch(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        Ok(self
            .changes
            .last_key_value()
            .map(|(last_seq, row)| (*last_seq, row.clone())))
    }

    fn collections(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.records.keys().cloned().collect())
    }

    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(name).cloned())
    }
}

impl WriteTables for MemTables {
    fn put_row(&mut self, collection: &str, key: &str, row: &[u8]) -> Result<(), StoreError> {
        self.replace_row(collection, key, row).map(drop)
    }

    fn replace_row(
        &mut self,
        collection: &str,
        key: &str,
        row: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .records
            .entry(collection.to_owned())
            .or_default()
            .insert(key.to_owned(), row.to_vec()))
    }

    fn remove_row(&mut self, collection: &str, key: &str) -> Result<(), StoreError> {
        if let Some(records) = self.records.get_mut(collection) {
            records.remove(key);
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

    fn append_change_batch(&mut self, last_seq: u64, row: &[u8]) -> Result<(), StoreError> {
        self.changes.insert(last_seq, row.to_vec());
        Ok(())
    }

    fn trim_change_batches(&mut self, through: u64) -> Result<Option<u64>, StoreError> {
        let kept = self.changes.split_off(&through.saturating_add(1));
        let highest = self.changes.last_key_value().map(|(last_seq, _)| *last_seq);
        self.changes = kept;
        Ok(highest)
    }

    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(name.to_owned(), value.to_vec());
        Ok(())
    }
}

impl MemTables {
    /// Replaces a stored record's bytes behind its row header (an all-zero
    /// header if there is no row), for corruption tests.
    #[cfg(test)]
    pub fn corrupt_record(&mut self, collection: &str, key: &str, bytes: Vec<u8>) {
        use crate::row::HEADER_LEN;
        let rows = self.records.entry(collection.to_owned()).or_default();
        let mut row = rows
            .get(key)
            .map_or(vec![0; HEADER_LEN], |row| row[..HEADER_LEN].to_vec());
        row.extend_from_slice(&bytes);
        rows.insert(key.to_owned(), row);
    }
}
