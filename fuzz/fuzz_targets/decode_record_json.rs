//! Hostile JSON documents into `Record::from_json`, the HTTP API's way in.
//!
//! The input is taken as UTF-8 JSON. A document that parses and that
//! `Record::from_json` accepts must render back through `to_json` as the
//! same document, less its empty nested objects (which store nothing). The
//! record must also survive the codec, a second replica replacing it with
//! the same document, and a delete.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use trellis_crdt::{codec, Lattice, Record, ReplicaId, Timestamp};

/// `doc` without the nested objects that hold no value at any depth.
fn without_empty_objects(doc: &Value) -> Value {
    match doc {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter_map(|(key, value)| {
                    let pruned = without_empty_objects(value);
                    match &pruned {
                        Value::Object(inner) if inner.is_empty() => None,
                        _ => Some((key.clone(), pruned)),
                    }
                })
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let Ok(record) = Record::from_json(&doc, ReplicaId(1), Timestamp(1)) else {
        assert_ne!(
            doc,
            Value::Object(Map::new()),
            "the empty object was refused"
        );
        return;
    };
    assert!(
        doc.is_object(),
        "a document that is not an object was accepted"
    );
    let expected = without_empty_objects(&doc);
    let rendered = record.to_json();
    assert_eq!(
        rendered, expected,
        "to_json(from_json(doc)) differs from doc"
    );

    // The codec round trip.
    let back: Record = codec::decode(&codec::encode(&record)).expect("a record re-encodes");
    assert_eq!(
        back, record,
        "the record does not round-trip through the codec"
    );

    // A second replica writes the same document over it, concurrently with
    // nothing: the rendering stays the same, and merging is idempotent.
    let mut other = record.clone();
    let delta = other
        .put_json(&doc, ReplicaId(2), Timestamp(2))
        .expect("a document accepted once is accepted again");
    assert_eq!(
        other.to_json(),
        expected,
        "rewriting the document changed it"
    );
    let mut merged = record.clone();
    merged.merge(delta.clone());
    assert_eq!(
        merged, other,
        "merging put_json's delta differs from applying it"
    );
    merged.merge(delta);
    assert_eq!(
        merged, other,
        "merging put_json's delta twice differs from once"
    );

    // Deleting leaves an empty rendering.
    let mut deleted = other;
    deleted.delete();
    assert_eq!(deleted.to_json(), Value::Object(Map::new()));
});
