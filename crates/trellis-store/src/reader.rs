//! The read logic both stores share.

use trellis_crdt::Record;

use crate::feed::{batch_len, decode_batch};
use crate::indexes::Indexes;
use crate::row::decode_row;
use crate::tables::{meta, meta_u64, ReadTables};
use crate::{Change, CollectionInfo, Page, Scan, StoreError};

/// The default page size of a scan.
pub const DEFAULT_SCAN_LIMIT: usize = 100;

/// Decodes a stored row's record; a failure is reported as
/// [`StoreError::Corrupt`].
pub(crate) fn decode_record(collection: &str, key: &str, row: &[u8]) -> Result<Record, StoreError> {
    decode_row(row)
        .map(|(_, record)| record)
        .map_err(|cause| StoreError::Corrupt {
            collection: collection.to_owned(),
            key: key.to_owned(),
            cause,
        })
}

/// The record at `collection/key`.
pub(crate) fn get(
    tables: &(impl ReadTables + ?Sized),
    collection: &str,
    key: &str,
) -> Result<Option<Record>, StoreError> {
    tables
        .row(collection, key)?
        .map(|row| decode_record(collection, key, &row))
        .transpose()
}

/// A page of live records. Corrupt records are skipped and passed to
/// `corrupt`.
pub(crate) fn scan(
    tables: &(impl ReadTables + ?Sized),
    collection: &str,
    scan: &Scan,
    mut corrupt: impl FnMut(StoreError),
) -> Result<Page, StoreError> {
    let limit = if scan.limit == 0 {
        DEFAULT_SCAN_LIMIT
    } else {
        scan.limit
    };
    let mut records = Vec::new();
    let mut after = scan.after.clone();
    loop {
        let batch = tables.rows_after(collection, &scan.prefix, after.as_deref(), limit)?;
        let exhausted = batch.len() < limit;
        for (key, bytes) in batch {
            after = Some(key.clone());
            match decode_record(collection, &key, &bytes) {
                Ok(record) if record.exists() => records.push((key, record)),
                Ok(_deleted) => {}
                Err(err) => corrupt(err),
            }
            if records.len() == limit {
                let more = !tables
                    .rows_after(collection, &scan.prefix, after.as_deref(), 1)?
                    .is_empty();
                return Ok(Page {
                    records,
                    next: if more { after } else { None },
                });
            }
        }
        if exhausted {
            return Ok(Page {
                records,
                next: None,
            });
        }
    }
}

/// Change-feed entries after `after`.
pub(crate) fn changes_since(
    tables: &(impl ReadTables + ?Sized),
    after: u64,
    limit: usize,
) -> Result<Vec<Change>, StoreError> {
    let floor = meta_u64(tables, meta::FEED_FLOOR)?.unwrap_or(0);
    if after < floor {
        return Err(StoreError::ChangesTruncated {
            requested: after,
            oldest: floor + 1,
        });
    }
    if limit == 0 {
        return Ok(Vec::new());
    }
    // Each batch row holds the changes up to its key; the first one may
    // also hold some at or below `after`, which are skipped.
    let mut rows = Vec::new();
    let mut wanted = 0;
    tables.change_batches_after(after, &mut |last_seq, row| {
        wanted += batch_len(row).min(last_seq - after);
        rows.push((last_seq, row.to_vec()));
        wanted < limit as u64
    })?;
    let mut changes = Vec::new();
    for (last_seq, row) in rows {
        let (_, batch) = decode_batch(last_seq, &row)?;
        changes.extend(batch.into_iter().filter(|change| change.seq > after));
    }
    changes.truncate(limit);
    Ok(changes)
}

/// Every collection with its counts.
pub(crate) fn collections(
    tables: &(impl ReadTables + ?Sized),
    indexes: &Indexes,
) -> Result<Vec<CollectionInfo>, StoreError> {
    tables
        .collections()?
        .into_iter()
        .map(|name| {
            let (live, keys) = (indexes.live(&name), indexes.len(&name));
            Ok(CollectionInfo { name, live, keys })
        })
        .collect()
}
