//! What survives a restart: identity, clock, change sequence, and an index
//! whose stored entries are verified on open and rebuilt from their
//! records when they do not check out.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use redb::{Database, ReadableTable, TableDefinition};
use serde_json::json;
use trellis_crdt::ReplicaId;
use trellis_store::index::KeyRange;
use trellis_store::{Mutation, RedbStore, Store, StoreConfig, StoreError};

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
