//! What survives a restart: identity, clock, change sequence, and an index
//! whose stored entries are verified on open and rebuilt from their
//! records when they do not check out.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use serde_json::json;
use trellis_crdt::{codec, Digest, Record, ReplicaId, Timestamp};
use trellis_store::index::KeyRange;
use trellis_store::{Change, Mutation, RedbStore, Store, StoreConfig, StoreError};

const ME: ReplicaId = ReplicaId(0xfeed);

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("trellis-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fill(store: &RedbStore, count: usize) {
    for i in 0..count {
        store
            .apply(
                "leads",
                &format!("lead-{i:03}"),
                Mutation::Put(json!({"n": i})),
            )
            .wait()
            .unwrap();
    }
}

#[test]
fn identity_clock_and_sequence_survive_a_restart() {
    let dir = tempdir("restart");
    let path = dir.join("data.redb");
    let (high_water, last_seq) = {
        let store = RedbStore::open(&path, ME, StoreConfig::default()).unwrap();
        fill(&store, 10);
        (store.clock_high_water(), store.last_seq())
    };
    let store = RedbStore::open(&path, ME, StoreConfig::default()).unwrap();
    assert_eq!(store.replica_id(), ME);
    assert_eq!(store.last_seq(), last_seq);
    assert_eq!(store.clock_high_water(), high_water);
    let next = store
        .apply("leads", "after", Mutation::Put(json!({})))
        .wait()
        .unwrap();
    assert!(
        next.time > high_water,
        "the clock never goes backwards across a restart"
    );
    assert_eq!(next.seq, last_seq + 1);
    drop(store);

    let err = RedbStore::open(&path, ReplicaId(2), StoreConfig::default())
        .err()
        .expect("a data file belongs to one replica");
    assert!(err.to_string().contains("belongs to replica"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_store_cannot_be_opened_twice() {
    let dir = tempdir("twice");
    let path = dir.join("data.redb");
    let _store = RedbStore::open(&path, ME, StoreConfig::default()).unwrap();
    let err = RedbStore::open(&path, ME, StoreConfig::default())
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Unusable { .. }), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_or_corrupt_index_is_rebuilt_on_open() {
    let dir = tempdir("rebuild");
    let path = dir.join("data.redb");
    let before = {
        let store = RedbStore::open(&path, ME, StoreConfig::default()).unwrap();
        fill(&store, 50);
        store.delete("leads", "lead-010").wait().unwrap();
        store.index_entries("leads", &KeyRange::all(), usize::MAX)
    };

    // Damage the index entries stored in front of two records: a digest
    // byte of a live one, and the live flag of the deleted one.
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let records: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("records/leads");
            let mut table = txn.open_table(records).unwrap();
            for (key, byte) in [("lead-003", 0), ("lead-010", 40)] {
                let mut row = table.get(key).unwrap().unwrap().value().to_vec();
                row[byte] ^= 0x55;
                table.insert(key, row.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let store = RedbStore::open(&path, ME, StoreConfig::default()).unwrap();
    assert_eq!(store.stats().index_rebuilds, 1);
    assert_eq!(store.stats().corrupt_records, 0);
    let rebuilt = store.index_entries("leads", &KeyRange::all(), usize::MAX);
    assert_eq!(rebuilt.len(), before.len());
    for ((key, entry), (old_key, old)) in rebuilt.iter().zip(&before) {
        assert_eq!((key, entry.digest), (old_key, old.digest));
        // The time of the last change is kept wherever the damaged entry
        // still gave it; an unreadable one is estimated from the record.
        if key != "lead-010" {
            assert_eq!(entry.hlc, old.hlc, "{key}");
        }
    }
    let info = &store.collections().unwrap()[0];
    assert_eq!((info.live, info.keys), (49, 50));
    drop(store);

    // A clean reopen does not rebuild.
    let store = RedbStore::open(&path, ME, StoreConfig::default()).unwrap();
    assert_eq!(store.stats().index_rebuilds, 0);
    drop(store);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Records of the hand-written format-2 file besides the five checked one
/// by one.
const BULK: u64 = 2_500;

/// Writes a data file in format 2 by hand, as builds before format 3 left
/// it: records, their index table, one change-feed row per change, and
/// the per-batch metadata.
fn write_format_2(path: &std::path::Path) -> (Vec<(String, Record)>, u64, u64) {
    type Bytes<'a> = TableDefinition<'a, &'static str, &'static [u8]>;
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    let clock = 1_750_000_000_000u64 << 16;
    let mut written = Vec::new();
    {
        let mut records = txn.open_table(Bytes::new("records/leads")).unwrap();
        let mut index = txn.open_table(Bytes::new("index/leads")).unwrap();
        let mut changes = txn
            .open_table(TableDefinition::<u64, &[u8]>::new("changes"))
            .unwrap();
        for n in 0..5u64 {
            let key = format!("lead-{n}");
            let time = Timestamp(clock - 100 + n);
            let mut record = Record::from_json(&json!({"n": n}), ME, time).unwrap();
            if n == 4 {
                record.delete();
            }
            let bytes = codec::encode(&record);
            let digest = Digest::of_encoding(&bytes);
            records.insert(key.as_str(), bytes.as_slice()).unwrap();
            let mut entry = digest.as_bytes().to_vec();
            entry.extend_from_slice(&time.0.to_le_bytes());
            entry.push(u8::from(record.exists()));
            // Lead 3's index entry was lost: the upgrade remakes it.
            if n != 3 {
                index.insert(key.as_str(), entry.as_slice()).unwrap();
            }
            let change = Change {
                seq: n + 1,
                collection: "leads".into(),
                key: key.clone(),
                digest,
                origin: ME,
                origin_time: time,
            };
            changes
                .insert(n + 1, codec::encode(&change).as_slice())
                .unwrap();
            written.push((key, record));
        }
        // More records than the upgrade rewrites at a time, with no
        // change-feed entries of their own.
        for n in 0..BULK {
            let key = format!("bulk-{n:05}");
            let record = Record::from_json(&json!({"n": n}), ME, Timestamp(clock - 1)).unwrap();
            let bytes = codec::encode(&record);
            let mut entry = Digest::of_encoding(&bytes).as_bytes().to_vec();
            entry.extend_from_slice(&(clock - 1).to_le_bytes());
            entry.push(1);
            records.insert(key.as_str(), bytes.as_slice()).unwrap();
            index.insert(key.as_str(), entry.as_slice()).unwrap();
        }
        let mut meta = txn.open_table(Bytes::new("meta")).unwrap();
        for (name, value) in [
            ("format", 2u64),
            ("replica_id", ME.0),
            ("clock", clock),
            ("last_seq", 5),
            ("live/leads", 4),
        ] {
            meta.insert(name, value.to_le_bytes().as_slice()).unwrap();
        }
        meta.insert("checksum/leads", [0u8; 40].as_slice()).unwrap();
    }
    txn.commit().unwrap();
    (written, 5, clock)
}

#[test]
fn a_format_2_file_is_upgraded_in_place_on_open() {
    let dir = tempdir("upgrade");
    let path = dir.join("data.redb");
    let (written, last_seq, clock) = write_format_2(&path);

    let store = RedbStore::open(&path, ME, StoreConfig::default()).unwrap();
    for (key, record) in &written {
        let stored = store.get("leads", key).unwrap().unwrap();
        assert_eq!(&stored, record, "{key}");
    }
    let info = &store.collections().unwrap()[0];
    assert_eq!((info.live, info.keys), (4 + BULK, 5 + BULK));
    assert_eq!(
        store.get("leads", "bulk-02499").unwrap().unwrap().to_json(),
        json!({"n": 2_499})
    );
    assert_eq!(store.last_seq(), last_seq);
    assert!(store.clock_high_water().0 >= clock);
    let feed = store.changes_since(0, 100).unwrap();
    let keys: Vec<&str> = feed.iter().map(|change| change.key.as_str()).collect();
    assert_eq!(keys, ["lead-0", "lead-1", "lead-2", "lead-3", "lead-4"]);
    assert_eq!(store.stats().index_rebuilds, 0);
    let next = store
        .apply("leads", "lead-9", Mutation::Put(json!({"n": 9})))
        .wait()
        .unwrap();
    assert_eq!(next.seq, last_seq + 1);
    assert!(next.time.0 > clock);
    let entries = store.index_entries("leads", &KeyRange::all(), usize::MAX);
    drop(store);

    // The file is format 3 now: a second open finds everything in place.
    let store = RedbStore::open(&path, ME, StoreConfig::default()).unwrap();
    assert_eq!(store.stats().index_rebuilds, 0);
    assert_eq!(
        store.index_entries("leads", &KeyRange::all(), usize::MAX),
        entries
    );
    assert_eq!(store.changes_since(0, 100).unwrap().len(), 6);
    drop(store);
    let db = Database::create(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let names: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|table| table.name().to_owned())
        .collect();
    assert!(
        !names.iter().any(|name| name.starts_with("index/")),
        "{names:?}"
    );
    drop(txn);
    drop(db);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_file_of_a_format_it_cannot_upgrade_is_refused_with_the_fix() {
    let dir = tempdir("format1");
    let path = dir.join("data.redb");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let meta: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
            let mut table = txn.open_table(meta).unwrap();
            table
                .insert("format", 1u64.to_le_bytes().as_slice())
                .unwrap();
            table
                .insert("replica_id", ME.0.to_le_bytes().as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let err = RedbStore::open(&path, ME, StoreConfig::default())
        .err()
        .expect("format 1 is refused");
    assert!(matches!(err, StoreError::Unusable { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("data format 1"), "{message}");
    assert!(message.contains("move the file"), "{message}");
    std::fs::remove_dir_all(dir).unwrap();
}
