//! One-shot timings of building the benchmark states (not criterion: each
//! build runs once, so read these as orders of magnitude). They show what
//! a single operation costs as the state grows, which the merge
//! benchmarks leave out of their timed part.
//!
//! Run with `cargo run --release -p trellis-benches --bin build_times`.

use std::time::{Duration, Instant};

use trellis_benches::records::{self, RecordWorkload, RECORDS};
use trellis_benches::set::{self, OurSet, SetWorkload, SET_SIZE};
use trellis_benches::{replica, ORIGIN, SITE_A};

fn timed<T>(run: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = run();
    (value, start.elapsed())
}

fn row(what: &str, ops: usize, took: Duration) {
    let per_op = took.as_secs_f64() * 1e6 / ops.max(1) as f64;
    println!(
        "| {what} | {ops} | {:.1} ms | {per_op:.2} µs |",
        took.as_secs_f64() * 1e3
    );
}

fn main() {
    println!("| build | operations | total | per operation |");
    println!("|---|---:|---:|---:|");

    // Trellis, one `Causal::apply` per add, from empty: quadratic.
    for size in [1_000u64, 5_000, 10_000, 20_000] {
        let elements: Vec<u64> = (0..size).collect();
        let (_, took) = timed(|| {
            let mut state = OurSet::default();
            set::ours_apply_sequential(&mut state, replica(ORIGIN), &[], &elements);
            state
        });
        row(
            &format!("set, trellis, {size} adds, one `apply` each"),
            elements.len(),
            took,
        );
    }
    let (base, took) = timed(|| set::ours_base(SET_SIZE));
    row(
        &format!("set, trellis, {SET_SIZE} adds, batched deltas"),
        SET_SIZE as usize,
        took,
    );
    let (_, took) = timed(|| set::peer_base(SET_SIZE));
    row(
        &format!("set, crdts, {SET_SIZE} adds, one `apply` each"),
        SET_SIZE as usize,
        took,
    );

    // Concurrent edits on the 100 000-element state.
    let workload = SetWorkload::new(SET_SIZE, 1);
    let (_, took) = timed(|| {
        let mut state = base.clone();
        set::ours_apply_sequential(
            &mut state,
            replica(SITE_A),
            &workload.a.removes,
            &workload.a.adds,
        );
        state
    });
    row(
        "set, trellis, 1% edits on 100 000, one `apply` each",
        workload.a.len(),
        took,
    );
    let (_, took) = timed(|| {
        let mut state = base.clone();
        set::apply_batch(
            &mut state,
            replica(SITE_A),
            &workload.a.removes,
            &workload.a.adds,
        );
        state
    });
    row(
        "set, trellis, 1% edits on 100 000, batched deltas",
        workload.a.len(),
        took,
    );
    let peer_base = set::peer_base(SET_SIZE);
    let (_, took) = timed(|| {
        let mut state = peer_base.clone();
        for &element in &workload.a.removes {
            set::peer_remove(&mut state, element);
        }
        for &element in &workload.a.adds {
            set::peer_add(&mut state, SITE_A, element);
        }
        state
    });
    row(
        "set, crdts, 1% edits on 100 000, one `apply` each",
        workload.a.len(),
        took,
    );

    // Records: 100 000 field writes into an empty collection.
    let workload = RecordWorkload::new(RECORDS, 10);
    let writes = workload.base.len();
    let (_, took) = timed(|| {
        let mut collection = records::OurCollection::new();
        records::ours_write(&mut collection, replica(ORIGIN), &workload.base);
        collection
    });
    row("records, trellis, `Record::apply` per write", writes, took);
    let (_, took) = timed(|| {
        let mut collection = records::PeerCollection::default();
        records::peer_write(&mut collection, ORIGIN, &workload.base);
        collection
    });
    row("records, crdts, one `apply` per write", writes, took);
    let (_, took) = timed(|| {
        let mut docs = records::AmDocs::new();
        records::am_docs_write(&mut docs, ORIGIN, &workload.base, records::FIELDS.len());
        docs
    });
    row(
        "records, automerge doc per record, one change per record",
        writes,
        took,
    );
    let (_, took) = timed(|| {
        let mut doc = records::AmDoc {
            doc: automerge::AutoCommit::new(),
            objects: Vec::new(),
        };
        records::am_doc_write(&mut doc, ORIGIN, &workload.base, records::FIELDS.len());
        doc
    });
    row(
        "records, automerge one doc, one change per record",
        writes,
        took,
    );
}
