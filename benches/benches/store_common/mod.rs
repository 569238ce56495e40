//! What the `trellis-store` benchmarks share: the record written, its
//! encoded bytes for the raw-redb baselines, fresh temporary directories,
//! and the process's memory counters.
//!
//! Included by `benches/store_writes.rs` (as `mod store_common`) and by
//! `src/bin/store_open.rs` (through `#[path]`), so that both write records
//! of the same shape. It lives in a directory so that cargo does not take it
//! for a benchmark of its own.

// Each including target uses only part of this module.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::json;
use trellis_crdt::{codec, Digest, Record, ReplicaId, Timestamp};

/// The collection every storage benchmark writes.
pub const COLLECTION: &str = "leads";

/// The redb table holding [`COLLECTION`]'s records (see
/// `crates/trellis-store/src/redb_tables.rs`).
pub const RECORDS_TABLE: &str = "records/leads";

/// The replica that owns the benchmark stores.
pub const REPLICA: ReplicaId = ReplicaId(0x5eed_0001);

/// The `n`th benchmark record: 6 fields (strings and a number), about
/// 220 bytes once encoded as a Trellis record.
pub fn lead_doc(n: u64) -> serde_json::Value {
    const STAGES: [&str; 4] = ["new", "contacted", "qualified", "won"];
    const CITIES: [&str; 4] = ["Berlin", "Lisbon", "Nairobi", "Osaka"];
    json!({
        "name": format!("Ada {n}"),
        "email": format!("ada{n}@ex.com"),
        "company": format!("Co {}", n % 1000),
        "city": CITIES[(n % 4) as usize],
        "stage": STAGES[(n / 4 % 4) as usize],
        "score": n % 100,
    })
}

/// The bytes `RedbStore` stores for a first write of [`lead_doc`]`(n)`:
/// the row of `crates/trellis-store/src/row.rs`, that is the record's
/// index entry (its digest, the time, 1 for live) in front of the codec
/// encoding of the record it makes (the same fields, one replica, one
/// timestamp). The raw-redb baselines insert these.
pub fn lead_bytes(n: u64) -> Vec<u8> {
    let time = Timestamp(1_750_000_000_000 << 16);
    let record = Record::from_json(&lead_doc(n), REPLICA, time).expect("a lead is a JSON object");
    let encoded = codec::encode(&record);
    let mut row = Digest::of_encoding(&encoded).as_bytes().to_vec();
    row.extend_from_slice(&time.0.to_le_bytes());
    row.push(1);
    row.extend_from_slice(&encoded);
    row
}

/// The key of the `n`th record written by writer `writer`, as the write
/// benchmark uses it: every write creates a new record.
pub fn writer_key(writer: usize, n: u64) -> String {
    format!("lead-{writer:04}-{n:08}")
}

/// A fresh, empty directory under the system temporary directory (on
/// this machine the same filesystem as the work tree), unique to this
/// process and `name`.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trellis-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("the temporary directory is writable");
    dir
}

/// The process's peak and current resident set size, in KiB, from
/// `/proc/self/status` (`VmHWM`, `VmRSS`); zeros where that file does not
/// exist.
pub fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}
