//! Bootstrap wire overhead: a node with n records and an empty node
//! reconcile through the real protocol (fingerprint rounds, then the
//! flow-controlled stream of chunks and their acknowledgements), and we
//! compare every byte both sides sent with the raw bytes of the records
//! (each key plus its codec-encoded record).
//!
//! `cargo run --release -p trellis-benches --bin bootstrap [-- 10000 1000000]`

use std::time::Instant;

use serde_json::json;
use trellis_crdt::{codec, ReplicaId};
use trellis_gossip::node::{Event, GossipConfig};
use trellis_gossip::pair::Pair;
use trellis_store::index::KeyRange;
use trellis_store::{MemStore, Mutation, Scan, Store, StoreConfig};

const LEADS: &str = "leads";

/// A lead of about 200 bytes of JSON, 8 fields.
fn lead(n: usize) -> serde_json::Value {
    const CITIES: [&str; 4] = ["Berlin", "Lisbon", "Oslo", "Madrid"];
    const STAGES: [&str; 3] = ["new", "contacted", "qualified"];
    json!({
        "name": format!("Customer {n}"),
        "email": format!("customer{n}@example.com"),
        "company": format!("Company {}", n % 997),
        "city": CITIES[n % 4],
        "stage": STAGES[n % 3],
        "score": n % 100,
        "source": "web form",
        "owner": format!("rep-{}", n % 17),
    })
}

/// Every key plus its encoded record, summed: what the records weigh.
fn raw_bytes(store: &MemStore) -> u64 {
    let mut total = 0;
    let mut scan = Scan {
        limit: 10_000,
        ..Scan::default()
    };
    loop {
        let page = store
            .scan(LEADS, &scan)
            .unwrap_or_else(|err| panic!("scan: {err}"));
        for (key, record) in &page.records {
            total += (key.len() + codec::encode(record).len()) as u64;
        }
        match page.next {
            Some(next) => scan.after = Some(next),
            None => return total,
        }
    }
}

fn run(n: usize) {
    let stores = [1, 2].map(|id| MemStore::new(ReplicaId(id), StoreConfig::default()));
    for i in 0..n {
        stores[0]
            .apply(LEADS, &format!("lead-{i:07}"), Mutation::Put(lead(i)))
            .wait()
            .unwrap_or_else(|err| panic!("write: {err}"));
    }
    let raw = raw_bytes(&stores[0]);
    let mut pair = Pair::new(stores, &GossipConfig::default());
    pair.connect();
    // The hellos: the empty node learns which collections exist.
    let mut messages = pair.deliver(usize::MAX);
    let started = Instant::now();
    // The empty node opens the session, as a new site does.
    pair.advance(5_000);
    pair.event(1, Event::Tick);
    while pair.deliver_one() {
        messages += 1;
    }
    let elapsed = started.elapsed();
    let got = pair.store(1).fingerprint(LEADS, &KeyRange::all());
    assert_eq!(
        got,
        pair.store(0).fingerprint(LEADS, &KeyRange::all()),
        "not converged"
    );
    let (full, empty) = (pair.sent(0), pair.sent(1));
    let wire = full.bytes + empty.bytes;
    println!(
        "| {n} | {raw} | {} | {} | {wire} | {:.3} | {messages} | {:.2} s |",
        full.record_bytes,
        wire - full.record_bytes,
        wire as f64 / raw as f64,
        elapsed.as_secs_f64(),
    );
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|arg| arg.parse().unwrap_or_else(|_| panic!("not a count: {arg}")))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 1_000_000]
    } else {
        sizes
    };
    println!("| records | raw bytes | stream bytes | other bytes | wire total | wire / raw | messages | time |");
    println!("|---|---|---|---|---|---|---|---|");
    for n in sizes {
        run(n);
    }
}
