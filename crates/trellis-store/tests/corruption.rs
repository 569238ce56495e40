//! Bytes flipped in the data file: opening checks every record against
//! the digest stored in front of it, so the damaged record is found,
//! counted and quarantined at once; the store serves everything else, and
//! a full state from a peer repairs it. (A record found undecodable by a
//! read while the store is open is quarantined too: see the `MemStore`
//! unit tests, which can damage a record under a running store.)

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use serde_json::json;
use trellis_crdt::{codec, Lattice, Record, ReplicaId};
use trellis_store::{Mutation, Origin, RedbStore, Store, StoreConfig, StoreError};

const ME: ReplicaId = ReplicaId(1);

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("trellis-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Overwrites the first byte of every copy of `needle` in the file.
fn flip_in_file(path: &std::path::Path, needle: &[u8]) -> usize {
    let mut bytes = std::fs::read(path).unwrap();
    let mut hits = 0;
    let mut at = 0;
    while let Some(offset) = bytes[at..].windows(needle.len()).position(|w| w == needle) {
        bytes[at + offset] ^= 0xff;
        hits += 1;
        at += offset + needle.len();
    }
    std::fs::write(path, bytes).unwrap();
    hits
}

#[test]
fn a_corrupt_record_is_quarantined_and_repaired_from_a_peer() {
    let dir = tempdir("corruption");
    let path = dir.join("data.redb");
    let damaged = {
        let store = RedbStore::open(&path, ME, StoreConfig::default()).unwrap();
        for i in 0..20 {
            store
                .apply(
                    "leads",
                    &format!("lead-{i:02}"),
                    Mutation::Put(json!({"n": i, "note": "intact"})),
                )
                .wait()
                .unwrap();
        }
        store.get("leads", "lead-07").unwrap().unwrap()
    };
    let encoded = codec::encode(&damaged);
    assert!(
        flip_in_file(&path, &encoded) > 0,
        "the record's bytes are in the file"
    );

    let store = RedbStore::open(&path, ME, StoreConfig::default()).unwrap();
    let stats = store.stats();
    assert_eq!((stats.corrupt_records, stats.quarantined), (1, 1));
    assert!(store.get("leads", "lead-07").unwrap().is_none());

    // Everything else is served.
    assert_eq!(
        store.get("leads", "lead-08").unwrap().unwrap().to_json()["n"],
        8
    );
    let page = store.scan("leads", &Default::default()).unwrap();
    assert_eq!(page.records.len(), 19);
    let leads = &store.collections().unwrap()[0];
    assert_eq!((leads.live, leads.keys), (19, 19));

    let err = store
        .apply("leads", "lead-07", Mutation::Put(json!({"n": 0})))
        .wait()
        .unwrap_err();
    assert!(matches!(err, StoreError::Quarantined { .. }), "{err}");

    // A peer's full state repairs it and lifts the quarantine.
    let origin = Origin {
        replica: ReplicaId(2),
        time: trellis_crdt::Timestamp(1),
        full_state: true,
    };
    let merged = store
        .merge("leads", "lead-07", damaged.clone(), origin)
        .wait()
        .unwrap();
    assert!(merged.grew);
    assert_eq!(merged.digest, damaged.digest());
    assert_eq!(store.stats().quarantined, 0);
    let repaired: Record = store.get("leads", "lead-07").unwrap().unwrap();
    assert_eq!(repaired.to_json(), json!({"n": 7, "note": "intact"}));
    store
        .apply("leads", "lead-07", Mutation::Put(json!({"n": 70})))
        .wait()
        .unwrap();
    drop(store);
    std::fs::remove_dir_all(dir).unwrap();
}
