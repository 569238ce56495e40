//! The read logic both stores share.

use trellis_crdt::{codec, Record};

use crate::indexes::Indexes;
use crate::tables::{meta, meta_u64, ReadTables};
use crate::{Change, CollectionInfo, Page, Scan, StoreError};

/// The default page size of a scan.
pub const DEFAULT_SCAN_LIMIT: usize = 100;

/// Decodes a stored record; a failure is reported as [`StoreError::Corrupt`].
pub(crate) fn decode_record(
    collection: &str,
    key: &str,
    bytes: &[u8],
) -> Result<Record, StoreError> {
    codec::decode(bytes).map_err(|cause| StoreError::Corrupt {
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
        .record(collection, key)?
        .map(|bytes| decode_record(collection, key, &bytes))
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
        let batch = tables.records_after(collection, &scan.prefix, after.as_deref(), limit)?;
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
                    .records_after(collection, &scan.prefix, after.as_deref(), 1)?
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
    tables
        .changes_after(after, limit)?
        .into_iter()
        .map(|bytes| {
            codec::decode::<Change>(&bytes)
                .map_err(|err| StoreError::Engine(format!("unreadable change-feed entry: {err}")))
        })
        .collect()
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
            let live = meta_u64(tables, &meta::live(&name))?.unwrap_or(0);
            let keys = indexes.len(&name);
            Ok(CollectionInfo { name, live, keys })
        })
        .collect()
}
