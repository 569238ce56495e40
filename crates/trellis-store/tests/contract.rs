//! The behaviour every `Store` implementation must have, run against both.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use serde_json::json;
use trellis_crdt::{FieldPath, Lattice, Op, Record, ReplicaId, Timestamp};
use trellis_store::index::KeyRange;
use trellis_store::{
    Durability, MemStore, Mutation, Origin, RedbStore, Scan, Store, StoreConfig, StoreError,
};

/// Runs `check` against a memory store and a redb store.
fn each_store(config: StoreConfig, check: impl Fn(&dyn Store)) {
    check(&MemStore::new(ReplicaId(1), config.clone()));
    let dir = tempdir();
    let store = RedbStore::open(dir.join("data.redb"), ReplicaId(1), config).unwrap();
    check(&store);
    drop(store);
    std::fs::remove_dir_all(dir).unwrap();
}

fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "trellis-contract-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn put(
    store: &dyn Store,
    collection: &str,
    key: &str,
    doc: serde_json::Value,
) -> trellis_store::Applied {
    store
        .apply(collection, key, Mutation::Put(doc))
        .wait()
        .unwrap()
}

#[test]
fn put_patch_get_delete() {
    each_store(StoreConfig::default(), |store| {
        let first = put(store, "leads", "l1", json!({"name": "Ada", "stage": "new"}));
        assert_eq!(first.seq, 1);
        let patch = Mutation::Patch(vec![
            Op::Set {
                path: FieldPath::top("stage").unwrap(),
                value: "won".into(),
            },
            Op::Increment {
                path: FieldPath::top("calls").unwrap(),
                by: 2,
            },
        ]);
        let patched = store.apply("leads", "l1", patch).wait().unwrap();
        assert!(patched.time > first.time);
        assert_eq!(patched.seq, 2);
        let record = store.get("leads", "l1").unwrap().unwrap();
        assert_eq!(
            record.to_json(),
            json!({"name": "Ada", "stage": "won", "calls": 2})
        );
        assert_eq!(record.digest(), patched.digest);

        let deleted = store.delete("leads", "l1").wait().unwrap();
        assert!(!deleted.record.exists());
        let record = store.get("leads", "l1").unwrap().unwrap();
        assert!(
            !record.exists(),
            "a deleted record keeps its history but no fields"
        );
        assert!(store.get("leads", "never").unwrap().is_none());
        assert!(store.clock_high_water() >= deleted.time);
    });
}

#[test]
fn merge_is_idempotent_and_reports_growth() {
    each_store(StoreConfig::default(), |store| {
        let mut remote = Record::default();
        let delta = remote
            .put_json(
                &json!({"name": "Grace"}),
                ReplicaId(9),
                Timestamp::from_millis(1),
            )
            .unwrap();
        let origin = Origin {
            replica: ReplicaId(9),
            time: Timestamp::from_millis(1),
            full_state: false,
        };
        let merged = store
            .merge("leads", "l2", delta.clone(), origin)
            .wait()
            .unwrap();
        assert!(merged.grew);
        assert_eq!(merged.seq, Some(1));
        assert_eq!(merged.digest, remote.digest());
        let again = store.merge("leads", "l2", delta, origin).wait().unwrap();
        assert!(!again.grew);
        assert_eq!(again.seq, None);
        assert_eq!(store.last_seq(), 1);
        let change = &store.changes_since(0, 10).unwrap()[0];
        assert_eq!(
            (change.origin, change.origin_time),
            (ReplicaId(9), origin.time)
        );
    });
}

#[test]
fn remote_timestamps_beyond_the_skew_are_refused() {
    each_store(StoreConfig::default(), |store| {
        let future = trellis_crdt::wall_clock_millis() + 3_600_000;
        let mut remote = Record::default();
        let delta = remote
            .put_json(
                &json!({"a": 1}),
                ReplicaId(9),
                Timestamp::from_millis(future),
            )
            .unwrap();
        let origin = Origin {
            replica: ReplicaId(9),
            time: Timestamp::from_millis(future),
            full_state: true,
        };
        let err = store
            .merge("leads", "l3", delta, origin)
            .wait()
            .unwrap_err();
        assert!(matches!(err, StoreError::ClockSkew(_)), "{err}");
        assert!(store.get("leads", "l3").unwrap().is_none());
    });
}

#[test]
fn scan_pages_through_live_records_by_prefix() {
    each_store(StoreConfig::default(), |store| {
        for i in 0..25 {
            put(store, "contacts", &format!("eu-{i:02}"), json!({"i": i}));
            put(store, "contacts", &format!("us-{i:02}"), json!({"i": i}));
        }
        store.delete("contacts", "eu-03").wait().unwrap();
        let mut keys = Vec::new();
        let mut scan = Scan {
            prefix: "eu-".into(),
            after: None,
            limit: 10,
        };
        loop {
            let page = store.scan("contacts", &scan).unwrap();
            assert!(page.records.len() <= 10);
            keys.extend(page.records.into_iter().map(|(key, _)| key));
            match page.next {
                Some(next) => scan.after = Some(next),
                None => break,
            }
        }
        let expected: Vec<String> = (0..25)
            .filter(|i| *i != 3)
            .map(|i| format!("eu-{i:02}"))
            .collect();
        assert_eq!(keys, expected);

        let infos = store.collections().unwrap();
        assert_eq!(infos.len(), 1);
        assert_eq!(
            (infos[0].name.as_str(), infos[0].live, infos[0].keys),
            ("contacts", 49, 50)
        );
    });
}

#[test]
fn the_change_feed_is_gap_free_and_bounded() {
    let config = StoreConfig {
        change_retention: 10,
        ..StoreConfig::default()
    };
    each_store(config, |store| {
        for i in 0..30 {
            put(store, "orders", &format!("o{}", i % 7), json!({"n": i}));
        }
        let changes = store.changes_since(20, 100).unwrap();
        let seqs: Vec<u64> = changes.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, (21..=30).collect::<Vec<_>>());
        assert_eq!(changes.last().unwrap().key, "o1");
        let err = store.changes_since(5, 100).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::ChangesTruncated {
                    requested: 5,
                    oldest: 21
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("rescan"));
        assert_eq!(store.changes_since(28, 1).unwrap().len(), 1);
    });
}

#[test]
fn limits_are_enforced_with_clear_errors() {
    let config = StoreConfig {
        limits: trellis_store::Limits {
            max_key_bytes: 8,
            max_record_bytes: 200,
            max_fields: 3,
        },
        ..StoreConfig::default()
    };
    each_store(config, |store| {
        let err = store
            .apply("Bad Name", "k", Mutation::Delete)
            .wait()
            .unwrap_err();
        assert!(err.to_string().contains("invalid collection name"), "{err}");
        let err = store
            .apply("leads", "much-too-long", Mutation::Delete)
            .wait()
            .unwrap_err();
        assert!(err.to_string().contains("max_key_bytes"), "{err}");
        let err = store
            .apply(
                "leads",
                "k",
                Mutation::Put(json!({"a": 1, "b": 2, "c": 3, "d": 4})),
            )
            .wait()
            .unwrap_err();
        assert!(err.to_string().contains("max_fields"), "{err}");
        let err = store
            .apply("leads", "k", Mutation::Put(json!({"a": "x".repeat(300)})))
            .wait()
            .unwrap_err();
        assert!(err.to_string().contains("max_record_bytes"), "{err}");
        assert!(
            store.get("leads", "k").unwrap().is_none(),
            "refused writes leave nothing"
        );
        assert_eq!(store.last_seq(), 0);
    });
}

#[test]
fn the_index_follows_every_write() {
    each_store(StoreConfig::default(), |store| {
        for i in 0..40 {
            put(store, "leads", &format!("k{i:02}"), json!({"i": i}));
        }
        store.delete("leads", "k07").wait().unwrap();
        let entries = store.index_entries("leads", &KeyRange::all(), usize::MAX);
        assert_eq!(
            entries.len(),
            40,
            "deleted records stay indexed so deletes replicate"
        );
        for (key, entry) in &entries {
            assert_eq!(
                store.get("leads", key).unwrap().unwrap().digest(),
                entry.digest
            );
        }
        let total = store.fingerprint("leads", &KeyRange::all());
        assert_eq!(total.count, 40);
        let buckets = store.split("leads", &KeyRange::all(), 4);
        assert_eq!(buckets.len(), 4);
        let sum = buckets
            .iter()
            .map(|b| b.fingerprint)
            .sum::<trellis_store::index::Fingerprint>();
        assert_eq!(sum, total);
    });
}

#[test]
fn relaxed_durability_acknowledges_and_persists_on_close() {
    let dir = tempdir();
    let config = StoreConfig {
        durability: Durability::Relaxed {
            interval: std::time::Duration::from_millis(50),
        },
        ..StoreConfig::default()
    };
    {
        let store = RedbStore::open(dir.join("data.redb"), ReplicaId(1), config.clone()).unwrap();
        for i in 0..20 {
            put(&store, "leads", &format!("k{i}"), json!({"i": i}));
        }
    }
    let store = RedbStore::open(dir.join("data.redb"), ReplicaId(1), config).unwrap();
    assert_eq!(store.last_seq(), 20);
    assert_eq!(store.collections().unwrap()[0].live, 20);
    drop(store);
    std::fs::remove_dir_all(dir).unwrap();
}
