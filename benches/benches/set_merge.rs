//! The add-wins set, Trellis `Causal<AwSet<u64>>` against
//! `crdts::Orswot<u64, u64>`, on the same data: merging two replicas of a
//! 100 000-element set diverged by 1%, 10% and 50% concurrent edits each.
//! Only the merge is timed; the clones happen in setup. Measures thread CPU
//! time unless `TRELLIS_BENCH_CLOCK=wall` (see `trellis_benches::measure`).
//!
//! Run with `cargo bench -p trellis-benches --bench set_merge`.

use criterion::measurement::Measurement;
use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode};
use trellis_benches::measure::{self, Benchmarks};
use trellis_benches::set::{self, SetWorkload, SET_SIZE};
use trellis_benches::EDIT_PERCENTS;

fn set_merge<M: Measurement>(c: &mut Criterion<M>) {
    let mut group = c.benchmark_group("set_merge");
    group.sampling_mode(SamplingMode::Flat);
    for percent in EDIT_PERCENTS {
        let workload = SetWorkload::new(SET_SIZE, percent);
        let edits = format!("{percent}pct");

        let ours = set::ours_diverged(&workload);
        group.bench_with_input(BenchmarkId::new("trellis", &edits), &ours, |b, (x, y)| {
            b.iter_batched(
                || (x.clone(), y.clone()),
                |(x, y)| set::ours_merge(x, y),
                BatchSize::LargeInput,
            );
        });
        drop(ours);

        let peer = set::peer_diverged(&workload);
        group.bench_with_input(BenchmarkId::new("crdts", &edits), &peer, |b, (x, y)| {
            b.iter_batched(
                || (x.clone(), y.clone()),
                |(x, y)| set::peer_merge(x, y),
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

fn all<M: Measurement>(c: &mut Criterion<M>) {
    set_merge(c);
}

fn main() {
    measure::run(Benchmarks {
        cpu: all,
        wall: all,
    });
}
