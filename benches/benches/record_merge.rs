//! Records: merging two diverged replicas of a collection of 12 500
//! records × 8 fields (100 000 field writes), each replica having written
//! 1%, 10% or 50% of the field slots concurrently. Trellis
//! (`BTreeMap<String, Record>`, merged key by key) against a nested
//! `crdts::Map` of `MVReg`s and against automerge, both one document per
//! record and one document for the collection. Only the merge is timed;
//! the clones happen in setup.
//!
//! Run with `cargo bench -p trellis-benches --bench record_merge`.

use criterion::measurement::Measurement;
use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode};
use trellis_benches::measure::{self, Benchmarks};
use trellis_benches::records::{self, RecordWorkload, RECORDS};
use trellis_benches::EDIT_PERCENTS;

fn record_merge<M: Measurement>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("record_merge");
    group.sampling_mode(SamplingMode::Flat);
    for percent in EDIT_PERCENTS {
        let workload = RecordWorkload::new(RECORDS, percent);
        let edits = format!("{percent}pct");

        let ours = records::ours_diverged(&workload);
        group.bench_with_input(BenchmarkId::new("trellis", &edits), &ours, |b, (x, y)| {
            b.iter_batched(
                || (x.clone(), y.clone()),
                |(x, y)| records::ours_merge(x, y),
                BatchSize::LargeInput,
            );
        });
        drop(ours);

        let peer = records::peer_diverged(&workload);
        group.bench_with_input(BenchmarkId::new("crdts", &edits), &peer, |b, (x, y)| {
            b.iter_batched(
                || (x.clone(), y.clone()),
                |(x, y)| records::peer_merge(x, y),
                BatchSize::LargeInput,
            );
        });
        drop(peer);

        let docs = records::am_docs_diverged(&workload);
        group.bench_with_input(
            BenchmarkId::new("automerge_doc_per_record", &edits),
            &docs,
            |b, (x, y)| {
                b.iter_batched(
                    || (x.clone(), y.clone()),
                    |(x, y)| records::am_docs_merge(x, y),
                    BatchSize::LargeInput,
                );
            },
        );
        drop(docs);

        let (x, y) = records::am_doc_diverged(&workload);
        group.bench_with_input(
            BenchmarkId::new("automerge_one_doc", &edits),
            &(x.doc, y.doc),
            |b, (x, y)| {
                b.iter_batched(
                    || (x.clone(), y.clone()),
                    |(x, y)| records::am_doc_merge(x, y),
                    BatchSize::LargeInput,
                );
            },
        );
    }
    group.finish();
}

fn all<M: Measurement>(c: &mut Criterion<M>) {
    record_merge(c);
}

fn main() {
    measure::run(Benchmarks {
        cpu: all,
        wall: all,
    });
}
