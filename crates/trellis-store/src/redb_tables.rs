//! The tables in a redb database, and [`ReadTables`]/[`WriteTables`] over
//! its transactions.
//!
//! | table | key | value |
//! |---|---|---|
//! | `records/{collection}` | record key | the row: index entry, then the codec-encoded `Record` (see `crate::row`) |
//! | `changes` | last sequence number of a batch | the batch's changes (see `crate::feed`) |
//! | `quarantine` | `{collection}/{key}` | the undecodable bytes |
//! | `meta` | name | value (see `tables::meta`) |

use std::cell::RefCell;
use std::collections::HashMap;

use redb::{
    ReadOnlyTable, ReadTransaction, ReadableTable, Table, TableDefinition, TableError, TableHandle,
    WriteTransaction,
};

use crate::tables::{ReadTables, WriteTables};
use crate::StoreError;

type Bytes = TableDefinition<'static, &'static str, &'static [u8]>;

pub(crate) const CHANGES: TableDefinition<'static, u64, &'static [u8]> =
    TableDefinition::new("changes");
const QUARANTINE: Bytes = TableDefinition::new("quarantine");
pub(crate) const META: Bytes = TableDefinition::new("meta");
pub(crate) const RECORDS_PREFIX: &str = "records/";

fn records_table(collection: &str) -> String {
    format!("{RECORDS_PREFIX}{collection}")
}

fn quarantine_key(collection: &str, key: &str) -> String {
    format!("{collection}/{key}")
}

pub(crate) fn definition(name: &str) -> TableDefinition<'_, &'static str, &'static [u8]> {
    TableDefinition::new(name)
}

/// Reads through a redb read transaction.
pub(crate) struct RedbRead {
    txn: ReadTransaction,
}

impl RedbRead {
    pub fn new(txn: ReadTransaction) -> Self {
        RedbRead { txn }
    }

    /// Opens a table that may not exist yet.
    fn bytes_table(
        &self,
        name: &str,
    ) -> Result<Option<ReadOnlyTable<&'static str, &'static [u8]>>, StoreError> {
        match self.txn.open_table(definition(name)) {
            Ok(table) => Ok(Some(table)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }
}

type BytesTable<'txn> = Table<'txn, &'static str, &'static [u8]>;

/// Reads and writes through a redb write transaction, keeping every table
/// it reads or writes open for the length of the batch.
pub(crate) struct RedbWrite<'txn> {
    txn: &'txn WriteTransaction,
    /// Tables by name.
    open: RefCell<HashMap<String, BytesTable<'txn>>>,
    /// Records tables by collection, so that finding one needs no name.
    records: RefCell<HashMap<String, BytesTable<'txn>>>,
    changes: Option<Table<'txn, u64, &'static [u8]>>,
}

impl<'txn> RedbWrite<'txn> {
    /// Write access through `txn`. The `quarantine` and `meta` tables are
    /// opened at once: every write checks the one and every batch writes
    /// the other.
    pub fn new(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        let mut write = RedbWrite {
            txn,
            open: RefCell::new(HashMap::new()),
            records: RefCell::new(HashMap::new()),
            changes: None,
        };
        write.table(QUARANTINE.name().to_owned())?;
        write.table(META.name().to_owned())?;
        Ok(write)
    }

    fn table(
        &mut self,
        name: String,
    ) -> Result<&mut Table<'txn, &'static str, &'static [u8]>, StoreError> {
        use std::collections::hash_map::Entry;
        match self.open.get_mut().entry(name) {
            Entry::Occupied(slot) => Ok(slot.into_mut()),
            Entry::Vacant(slot) => {
                let table = self
                    .txn
                    .open_table(TableDefinition::new(slot.key().as_str()))?;
                Ok(slot.insert(table))
            }
        }
    }

    /// A collection's records table, created if it does not exist.
    fn records_mut(&mut self, collection: &str) -> Result<&mut BytesTable<'txn>, StoreError> {
        let records = self.records.get_mut();
        if !records.contains_key(collection) {
            let table = self
                .txn
                .open_table(definition(&records_table(collection)))?;
            records.insert(collection.to_owned(), table);
        }
        records.get_mut(collection).ok_or(StoreError::Closed)
    }

    fn changes(&mut self) -> Result<&mut Table<'txn, u64, &'static [u8]>, StoreError> {
        if self.changes.is_none() {
            self.changes = Some(self.txn.open_table(CHANGES)?);
        }
        self.changes.as_mut().ok_or(StoreError::Closed)
    }

    /// Runs `read` over a table, opening it for the rest of the batch if
    /// it is not open yet (`None` if it does not exist).
    fn with_table<T>(
        &self,
        open: &RefCell<HashMap<String, BytesTable<'txn>>>,
        key: &str,
        name: impl FnOnce() -> String,
        read: impl FnOnce(&dyn ReadableBytes) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let mut open = open.borrow_mut();
        if let Some(table) = open.get(key) {
            return read(table).map(Some);
        }
        match self.txn.open_table(definition(&name())) {
            Ok(table) => read(open.entry(key.to_owned()).or_insert(table)).map(Some),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }
}

/// The reads both transaction kinds share, over a string-keyed table.
trait ReadableBytes {
    fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn entries_from(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    fn count(&self) -> Result<u64, StoreError>;
}

impl<T: ReadableTable<&'static str, &'static [u8]>> ReadableBytes for T {
    fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get(key)?.map(|value| value.value().to_vec()))
    }

    fn entries_from(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let start = match after {
            Some(after) if after >= prefix => after,
            _ => prefix,
        };
        let mut out = Vec::new();
        for entry in self.range(start..)? {
            let (key, value) = entry?;
            let key = key.value();
            if Some(key) == after {
                continue;
            }
            if !key.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((key.to_owned(), value.value().to_vec()));
        }
        Ok(out)
    }

    fn count(&self) -> Result<u64, StoreError> {
        Ok(self.len()?)
    }
}

/// The table-independent parts of [`ReadTables`], written once for both
/// transaction kinds.
trait TableSource {
    fn with_bytes<T>(
        &self,
        name: &str,
        read: impl FnOnce(&dyn ReadableBytes) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError>;

    /// Runs `read` over a collection's records table (`None` if it does
    /// not exist).
    fn with_records<T>(
        &self,
        collection: &str,
        read: impl FnOnce(&dyn ReadableBytes) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        self.with_bytes(&records_table(collection), read)
    }

    /// Runs `read` over the changes table (`None` if it does not exist).
    fn with_changes<T>(
        &self,
        read: impl FnOnce(&dyn ReadableChanges) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError>;

    fn table_names(&self) -> Result<Vec<String>, StoreError>;
}

impl TableSource for RedbRead {
    fn with_bytes<T>(
        &self,
        name: &str,
        read: impl FnOnce(&dyn ReadableBytes) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        match self.bytes_table(name)? {
            Some(table) => read(&table).map(Some),
            None => Ok(None),
        }
    }

    fn with_changes<T>(
        &self,
        read: impl FnOnce(&dyn ReadableChanges) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        match self.txn.open_table(CHANGES) {
            Ok(table) => read(&table).map(Some),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    fn table_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .txn
            .list_tables()?
            .map(|handle| handle.name().to_owned())
            .collect())
    }
}

impl TableSource for RedbWrite<'_> {
    fn with_bytes<T>(
        &self,
        name: &str,
        read: impl FnOnce(&dyn ReadableBytes) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        self.with_table(&self.open, name, || name.to_owned(), read)
    }

    fn with_records<T>(
        &self,
        collection: &str,
        read: impl FnOnce(&dyn ReadableBytes) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        self.with_table(
            &self.records,
            collection,
            || records_table(collection),
            read,
        )
    }

    fn with_changes<T>(
        &self,
        read: impl FnOnce(&dyn ReadableChanges) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        match &self.changes {
            Some(table) => read(table).map(Some),
            None => match self.txn.open_table(CHANGES) {
                Ok(table) => read(&table).map(Some),
                Err(TableError::TableDoesNotExist(_)) => Ok(None),
                Err(err) => Err(err.into()),
            },
        }
    }

    fn table_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .txn
            .list_tables()?
            .map(|handle| handle.name().to_owned())
            .collect())
    }
}

/// The reads of the changes table both transaction kinds share.
trait ReadableChanges {
    fn batches_after(
        &self,
        after: u64,
        visit: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), StoreError>;
    fn last_batch(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError>;
}

impl<T: ReadableTable<u64, &'static [u8]>> ReadableChanges for T {
    fn batches_after(
        &self,
        after: u64,
        visit: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let Some(start) = after.checked_add(1) else {
            return Ok(());
        };
        for entry in self.range(start..)? {
            let (last_seq, row) = entry?;
            if !visit(last_seq.value(), row.value()) {
                break;
            }
        }
        Ok(())
    }

    fn last_batch(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        Ok(self
            .last()?
            .map(|(last_seq, row)| (last_seq.value(), row.value().to_vec())))
    }
}

impl<S: TableSource> ReadTables for S {
    fn row(&self, collection: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .with_records(collection, |table| table.get_bytes(key))?
            .flatten())
    }

    fn rows_after(
        &self,
        collection: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .with_records(collection, |table| table.entries_from(prefix, after, limit))?
            .unwrap_or_default())
    }

    fn is_quarantined(&self, collection: &str, key: &str) -> Result<bool, StoreError> {
        let name = QUARANTINE.name().to_owned();
        Ok(self
            .with_bytes(&name, |table| {
                table.get_bytes(&quarantine_key(collection, key))
            })?
            .flatten()
            .is_some())
    }

    fn quarantined_count(&self) -> Result<u64, StoreError> {
        let name = QUARANTINE.name().to_owned();
        Ok(self.with_bytes(&name, |table| table.count())?.unwrap_or(0))
    }

    fn change_batches_after(
        &self,
        after: u64,
        visit: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.with_changes(|changes| changes.batches_after(after, visit))?;
        Ok(())
    }

    fn last_change_batch(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        Ok(self.with_changes(|changes| changes.last_batch())?.flatten())
    }

    fn collections(&self) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self
            .table_names()?
            .into_iter()
            .filter_map(|name| name.strip_prefix(RECORDS_PREFIX).map(str::to_owned))
            .collect();
        names.sort();
        Ok(names)
    }

    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let table = META.name().to_owned();
        Ok(self
            .with_bytes(&table, |meta| meta.get_bytes(name))?
            .flatten())
    }
}

impl WriteTables for RedbWrite<'_> {
    fn put_row(&mut self, collection: &str, key: &str, row: &[u8]) -> Result<(), StoreError> {
        self.records_mut(collection)?.insert(key, row)?;
        Ok(())
    }

    fn replace_row(
        &mut self,
        collection: &str,
        key: &str,
        row: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let previous = self.records_mut(collection)?.insert(key, row)?;
        Ok(previous.map(|previous| previous.value().to_vec()))
    }

    fn remove_row(&mut self, collection: &str, key: &str) -> Result<(), StoreError> {
        self.records_mut(collection)?.remove(key)?;
        Ok(())
    }

    fn quarantine(&mut self, collection: &str, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let name = QUARANTINE.name().to_owned();
        self.table(name)?
            .insert(quarantine_key(collection, key).as_str(), bytes)?;
        Ok(())
    }

    fn release(&mut self, collection: &str, key: &str) -> Result<(), StoreError> {
        let name = QUARANTINE.name().to_owned();
        self.table(name)?
            .remove(quarantine_key(collection, key).as_str())?;
        Ok(())
    }

    fn append_change_batch(&mut self, last_seq: u64, row: &[u8]) -> Result<(), StoreError> {
        self.changes()?.insert(last_seq, row)?;
        Ok(())
    }

    fn trim_change_batches(&mut self, through: u64) -> Result<Option<u64>, StoreError> {
        let mut highest = None;
        self.changes()?.retain_in(..=through, |last_seq, _| {
            highest = Some(last_seq);
            false
        })?;
        Ok(highest)
    }

    fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let table = META.name().to_owned();
        self.table(table)?.insert(name, value)?;
        Ok(())
    }
}
