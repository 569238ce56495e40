//! Single operations on the add-wins set, Trellis `Causal<AwSet<u64>>`
//! against `crdts::Orswot<u64, u64>`: `set_add_one` adds a new element and
//! `set_remove_one` removes a present one, on sets of 1 000, 10 000 and
//! 100 000 elements. Only the operation is timed; the clone of the set
//! happens in setup.
//!
//! These take microseconds, so they always measure wall-clock time: a read
//! of the CPU clock costs a system call (several hundred nanoseconds here),
//! which would swamp the faster side. A routine this short is rarely
//! descheduled, and the fastest samples bound the noise.
//!
//! Run with `cargo bench -p trellis-benches --bench set_ops`.

use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode};
use trellis_benches::set::{self, SET_SIZE};
use trellis_benches::{measure, replica, SITE_A};

fn set_one_op(c: &mut Criterion) {
    for (name, remove) in [("set_add_one", false), ("set_remove_one", true)] {
        let mut group = c.benchmark_group(name);
        group.sampling_mode(SamplingMode::Flat);
        for size in [1_000u64, 10_000, SET_SIZE] {
            // Removing an element present in the set; adding one that is not.
            let element = if remove { size / 2 } else { size };

            let ours = set::ours_base(size);
            group.bench_with_input(BenchmarkId::new("trellis", size), &ours, |b, state| {
                b.iter_batched(
                    || state.clone(),
                    |mut state| {
                        if remove {
                            state.apply(|set, _| set.remove(&element));
                        } else {
                            state.apply(|set, cx| set.add(cx, replica(SITE_A), element));
                        }
                        state
                    },
                    BatchSize::LargeInput,
                );
            });
            drop(ours);

            let peer = set::peer_base(size);
            group.bench_with_input(BenchmarkId::new("crdts", size), &peer, |b, state| {
                b.iter_batched(
                    || state.clone(),
                    |mut state| {
                        if remove {
                            set::peer_remove(&mut state, element);
                        } else {
                            set::peer_add(&mut state, SITE_A, element);
                        }
                        state
                    },
                    BatchSize::LargeInput,
                );
            });
        }
        group.finish();
    }
}

fn main() {
    let mut criterion = measure::configured(Criterion::default());
    set_one_op(&mut criterion);
    criterion.final_summary();
}
