//! Upgrading a data file of format 2 to format 3 in place, on open.
//!
//! Format 2 kept each collection's index entries in a table of their own
//! (`index/{collection}`), one change-feed row per change, and the clock,
//! last sequence number, index checksums and live counts in `meta`.
//! Format 3 (see [`crate::row`] and [`crate::feed`]) puts each entry in
//! front of its record's bytes and stores the feed a batch per row. The
//! upgrade runs in the opening transaction, so a crash part-way leaves the
//! file as it was.

use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};
use trellis_crdt::{codec, Digest, Record, Timestamp};

use crate::feed::encode_batch;
use crate::index::IndexEntry;
use crate::redb_tables::{definition, CHANGES, META, RECORDS_PREFIX};
use crate::row::{decode_header, encode_row, StoredEntry, HEADER_LEN};
use crate::tables::FORMAT_VERSION;
use crate::{Change, StoreError};

/// The format this module upgrades from.
pub(crate) const FROM: u64 = 2;

/// Format 2's index table of a collection.
const INDEX_PREFIX: &str = "index/";

/// Format 2's per-batch metadata, dropped by the upgrade.
const CLOCK: &str = "clock";
const LAST_SEQ: &str = "last_seq";
const CHECKSUM_PREFIX: &str = "checksum/";
const LIVE_PREFIX: &str = "live/";

/// Rewrites a format-2 file's tables as format 3, within `txn`.
pub(crate) fn upgrade(txn: &WriteTransaction) -> Result<(), StoreError> {
    let collections: Vec<String> = txn
        .list_tables()?
        .filter_map(|handle| {
            handle
                .name()
                .strip_prefix(RECORDS_PREFIX)
                .map(str::to_owned)
        })
        .collect();
    for collection in &collections {
        upgrade_records(txn, collection)?;
    }
    let clock = {
        let meta = txn.open_table(META)?;
        let value = meta.get(CLOCK)?.map(|value| value.value().to_vec());
        value
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .map_or(0, u64::from_le_bytes)
    };
    upgrade_changes(txn, Timestamp(clock))?;
    let mut meta = txn.open_table(META)?;
    meta.retain(|name, _| {
        !(name == CLOCK
            || name == LAST_SEQ
            || name.starts_with(CHECKSUM_PREFIX)
            || name.starts_with(LIVE_PREFIX))
    })?;
    meta.insert(
        crate::tables::meta::FORMAT,
        FORMAT_VERSION.to_le_bytes().as_slice(),
    )?;
    tracing::info!(
        collections = collections.len(),
        "upgraded the data file from format {FROM} to format {FORMAT_VERSION}"
    );
    Ok(())
}

/// Puts each record's index entry in front of its bytes and drops the
/// collection's index table. An entry that is missing or does not match
/// the record is made from the record (open then checks every row).
fn upgrade_records(txn: &WriteTransaction, collection: &str) -> Result<(), StoreError> {
    let index_name = format!("{INDEX_PREFIX}{collection}");
    let index_table = TableDefinition::<&str, &[u8]>::new(&index_name);
    let entries: Vec<(String, Vec<u8>)> = match txn.open_table(index_table) {
        Ok(index) => index
            .iter()?
            .map(|row| row.map(|(key, value)| (key.value().to_owned(), value.value().to_vec())))
            .collect::<Result<_, _>>()?,
        Err(redb::TableError::TableDoesNotExist(_)) => Vec::new(),
        Err(err) => return Err(err.into()),
    };
    let entries: std::collections::HashMap<String, Vec<u8>> = entries.into_iter().collect();
    let records_name = format!("{RECORDS_PREFIX}{collection}");
    let mut records = txn.open_table(definition(&records_name))?;
    // A chunk of records at a time, so that memory never holds them all.
    let mut after: Option<String> = None;
    loop {
        let chunk: Vec<(String, Vec<u8>)> = match &after {
            None => records.range::<&str>(..)?,
            Some(last) => records.range::<&str>((
                std::ops::Bound::Excluded(last.as_str()),
                std::ops::Bound::Unbounded,
            ))?,
        }
        .take(CHUNK)
        .map(|row| row.map(|(key, value)| (key.value().to_owned(), value.value().to_vec())))
        .collect::<Result<_, _>>()?;
        let Some((last, _)) = chunk.last() else {
            break;
        };
        after = Some(last.clone());
        upgrade_chunk(&mut records, &entries, chunk)?;
    }
    drop(records);
    txn.delete_table(index_table)?;
    Ok(())
}

/// Records rewritten at a time.
const CHUNK: usize = 1024;

/// Rewrites a chunk of format-2 records as rows.
fn upgrade_chunk(
    records: &mut redb::Table<'_, &'static str, &'static [u8]>,
    entries: &std::collections::HashMap<String, Vec<u8>>,
    chunk: Vec<(String, Vec<u8>)>,
) -> Result<(), StoreError> {
    for (key, bytes) in chunk {
        let digest = Digest::of_encoding(&bytes);
        let old = entries.get(&key).and_then(|entry| old_entry(entry));
        let stored = match old {
            Some(stored) if stored.entry.digest == digest => stored,
            other => StoredEntry {
                entry: IndexEntry {
                    digest,
                    hlc: other.map_or(Timestamp::default(), |stored| stored.entry.hlc),
                },
                live: codec::decode::<Record>(&bytes).is_ok_and(|record| record.exists()),
            },
        };
        records.insert(key.as_str(), encode_row(&stored, &bytes).as_slice())?;
    }
    Ok(())
}

/// A format-2 index entry: exactly the 41 bytes of a format-3 row header
/// (digest, timestamp, live flag), on its own.
fn old_entry(bytes: &[u8]) -> Option<StoredEntry> {
    (bytes.len() == HEADER_LEN).then(|| decode_header(bytes))?
}

/// Turns each change-feed row into a batch of one, carrying the clock's
/// high-water mark. A row that does not decode stops the upgrade: the
/// feed would have a gap.
fn upgrade_changes(txn: &WriteTransaction, clock: Timestamp) -> Result<(), StoreError> {
    let mut table = txn.open_table(CHANGES)?;
    let rows: Vec<(u64, Vec<u8>)> = table
        .iter()?
        .map(|row| row.map(|(seq, value)| (seq.value(), value.value().to_vec())))
        .collect::<Result<_, _>>()?;
    for (seq, bytes) in rows {
        let change: Change = codec::decode(&bytes).map_err(|err| {
            StoreError::Engine(format!(
                "cannot upgrade change-feed entry {seq} from data format {FROM}: {err}"
            ))
        })?;
        if change.seq != seq {
            return Err(StoreError::Engine(format!(
                "cannot upgrade change-feed entry {seq} from data format {FROM}: it says it is entry {}",
                change.seq
            )));
        }
        table.insert(seq, encode_batch(clock, &[change]).as_slice())?;
    }
    Ok(())
}
