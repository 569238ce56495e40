//! Hostile HTTP request bodies through the node's body handling: the
//! JSON parser with its depth limit, then what PUT does with an object
//! (`Record::from_json`) and what PATCH does with `{"ops": [...]}`
//! (`parse_patch`, then the type check against the record the PUT made,
//! then applying the operations). Nothing may panic; whatever is refused
//! is refused with an error.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trellis_crdt::{Record, ReplicaId, Timestamp};
use trellis_node::api::{check_kinds, parse_json, parse_patch};

fuzz_target!(|data: &[u8]| {
    // The default api.max_json_depth.
    let Ok(body) = parse_json(data, 32) else {
        return;
    };
    let mut record = Record::from_json(&body, ReplicaId(1), Timestamp(1)).ok();
    if let Some(record) = &record {
        let _ = record.to_json();
    }
    let Ok(ops) = parse_patch(body) else {
        return;
    };
    if check_kinds(record.as_ref(), &ops).is_ok() {
        let target = record.get_or_insert_with(Record::default);
        if target.apply_all(&ops, ReplicaId(2), Timestamp(2)).is_ok() {
            let _ = target.to_json();
        }
    }
});
