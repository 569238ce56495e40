//! The reconciliation index (`trellis_store::index::RangeIndex`) over a
//! million keys, of two shapes: sequential (`lead-0000123`) and random
//! 16-character ids (`[0-9a-z]`), each with a random 32-byte digest.
//!
//! - `index_1m_keys`: `fingerprint` of a random range (both ends drawn
//!   uniformly, so ranges hold anything from 0 to 1M keys, a third of the
//!   index on average), `split` of such a range into 16 buckets, `insert`
//!   replacing the entry of an existing key (a record update), and
//!   `insert` of a new key followed by its `remove` (two operations per
//!   iteration, keeping the index at 1M keys). 1024 precomputed ranges or
//!   keys are cycled through.
//! - `index_range_1k_keys`: the fingerprint of a range holding exactly
//!   1000 keys of the same million, by the index (`trellis`) and by brute
//!   force over a `BTreeMap` range: `btreemap_blake3` hashes each entry
//!   with `Fingerprint::of_entry` and adds them up (what a store without
//!   the index would do), `btreemap_cached_hash` adds up entry hashes
//!   computed in advance (the best any O(range) scan can do).
//!
//! Measured with the clock that `TRELLIS_BENCH_CLOCK` selects (thread CPU
//! time by default; see `trellis_benches::measure`).
//!
//! Run with `cargo bench -p trellis-benches --bench index_fingerprint`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::measurement::Measurement;
use criterion::{BenchmarkId, Criterion};
use trellis_benches::measure::{self, Benchmarks};
use trellis_benches::Rng;
use trellis_crdt::{Digest, Timestamp};
use trellis_store::index::{Fingerprint, IndexEntry, KeyRange, RangeIndex};

/// Keys in each index.
const KEYS: usize = 1_000_000;
/// Precomputed ranges or keys per benchmark, cycled through.
const SAMPLES: usize = 1024;
/// Keys in each range of the brute-force comparison.
const RANGE_KEYS: usize = 1000;

/// The two key shapes.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// `lead-0000000` to `lead-0999999`.
    Sequential,
    /// 16 random characters of `[0-9a-z]`.
    Random,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Sequential => "seq_keys",
            Shape::Random => "random_keys",
        }
    }

    /// A key of this shape; for `Sequential`, the `n`th.
    fn key(self, rng: &mut Rng, n: u64) -> String {
        match self {
            Shape::Sequential => format!("lead-{n:07}"),
            Shape::Random => random_id(rng),
        }
    }
}

fn random_id(rng: &mut Rng) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..16)
        .map(|_| char::from(ALPHABET[(rng.next_u64() % 36) as usize]))
        .collect()
}

fn random_entry(rng: &mut Rng) -> IndexEntry {
    let mut digest = [0u8; 32];
    for chunk in digest.chunks_exact_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    IndexEntry {
        digest: Digest(digest),
        hlc: Timestamp(rng.next_u64() >> 1),
    }
}

/// The sorted keys and entries of one index.
struct Data {
    shape: Shape,
    sorted: Vec<(String, IndexEntry)>,
}

impl Data {
    fn new(shape: Shape, seed: u64) -> Data {
        let mut rng = Rng::new(seed);
        let mut sorted: Vec<(String, IndexEntry)> = (0..KEYS as u64)
            .map(|n| (shape.key(&mut rng, n), random_entry(&mut rng)))
            .collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        sorted.dedup_by(|a, b| a.0 == b.0);
        Data { shape, sorted }
    }

    fn index(&self) -> RangeIndex {
        RangeIndex::from_sorted(
            self.sorted
                .iter()
                .map(|(key, entry)| (key.as_str(), *entry)),
        )
        .expect("the keys are sorted and distinct")
    }

    /// A key between the index's keys, for range ends: a random key of
    /// the shape (sequential ones with a random number below 1M).
    fn probe(&self, rng: &mut Rng) -> String {
        let n = rng.next_u64() % KEYS as u64;
        self.shape.key(rng, n)
    }

    /// Ranges with both ends drawn at random.
    fn random_ranges(&self, rng: &mut Rng) -> Vec<KeyRange> {
        (0..SAMPLES)
            .map(|_| {
                let (a, b) = (self.probe(rng), self.probe(rng));
                if a <= b {
                    KeyRange::new(a, b)
                } else {
                    KeyRange::new(b, a)
                }
            })
            .collect()
    }

    /// Ranges of exactly `RANGE_KEYS` keys, from a key of the index to the
    /// key `RANGE_KEYS` places on.
    fn ranges_of_1k(&self, rng: &mut Rng) -> Vec<KeyRange> {
        (0..SAMPLES)
            .map(|_| {
                let first = (rng.next_u64() % (self.sorted.len() - RANGE_KEYS) as u64) as usize;
                KeyRange::new(
                    self.sorted[first].0.clone(),
                    self.sorted[first + RANGE_KEYS].0.clone(),
                )
            })
            .collect()
    }
}

fn index_1m<M: Measurement>(c: &mut Criterion<M>, data: &[Data]) {
    let mut group = c.benchmark_group("index_1m_keys");
    for data in data {
        let shape = data.shape.name();
        let mut rng = Rng::new(0x1d3e_0001 ^ data.sorted.len() as u64);
        let mut index = data.index();
        let ranges = data.random_ranges(&mut rng);

        let mut i = 0;
        group.bench_function(BenchmarkId::new("fingerprint", shape), |b| {
            b.iter(|| {
                i = (i + 1) % SAMPLES;
                index.fingerprint(black_box(&ranges[i]))
            });
        });
        group.bench_function(BenchmarkId::new("split_16", shape), |b| {
            b.iter(|| {
                i = (i + 1) % SAMPLES;
                index.split(black_box(&ranges[i]), 16)
            });
        });

        let existing: Vec<(String, IndexEntry)> = (0..SAMPLES)
            .map(|_| {
                let at = (rng.next_u64() % data.sorted.len() as u64) as usize;
                (data.sorted[at].0.clone(), random_entry(&mut rng))
            })
            .collect();
        group.bench_function(BenchmarkId::new("insert_replace", shape), |b| {
            b.iter(|| {
                i = (i + 1) % SAMPLES;
                let (key, entry) = &existing[i];
                index.insert(key.as_str(), *entry)
            });
        });

        let fresh: Vec<(String, IndexEntry)> = (0..SAMPLES)
            .map(|_| {
                let key = loop {
                    let mut key = data.probe(&mut rng);
                    key.push('~');
                    if !index.contains_key(&key) {
                        break key;
                    }
                };
                (key, random_entry(&mut rng))
            })
            .collect();
        group.bench_function(BenchmarkId::new("insert_new_then_remove", shape), |b| {
            b.iter(|| {
                i = (i + 1) % SAMPLES;
                let (key, entry) = &fresh[i];
                index.insert(key.as_str(), *entry);
                index.remove(key)
            });
        });
        assert_eq!(
            index.len(),
            data.sorted.len(),
            "the index is back to its size"
        );
    }
    group.finish();
}

fn range_1k<M: Measurement>(c: &mut Criterion<M>, data: &[Data]) {
    let mut group = c.benchmark_group("index_range_1k_keys");
    for data in data {
        let shape = data.shape.name();
        let mut rng = Rng::new(0x0b1e_0002 ^ data.sorted.len() as u64);
        let index = data.index();
        let ranges = data.ranges_of_1k(&mut rng);
        let digests: BTreeMap<String, Digest> = data
            .sorted
            .iter()
            .map(|(key, entry)| (key.clone(), entry.digest))
            .collect();
        let hashes: BTreeMap<String, Fingerprint> = data
            .sorted
            .iter()
            .map(|(key, entry)| (key.clone(), Fingerprint::of_entry(key, &entry.digest)))
            .collect();
        let bounds = |range: &KeyRange| {
            let end = range.end.clone().expect("the 1k ranges are bounded");
            (range.start.clone(), end)
        };
        // The three agree.
        for range in ranges.iter().take(8) {
            let (start, end) = bounds(range);
            let by_index = index.fingerprint(range);
            assert_eq!(by_index.count, RANGE_KEYS as u64);
            let brute: Fingerprint = digests
                .range(start.clone()..end.clone())
                .map(|(key, digest)| Fingerprint::of_entry(key, digest))
                .sum();
            let cached: Fingerprint = hashes.range(start..end).map(|(_, hash)| *hash).sum();
            assert_eq!((brute, cached), (by_index, by_index));
        }
        let bounded: Vec<(String, String)> = ranges.iter().map(bounds).collect();

        let mut i = 0;
        group.bench_function(BenchmarkId::new("trellis", shape), |b| {
            b.iter(|| {
                i = (i + 1) % SAMPLES;
                index.fingerprint(black_box(&ranges[i]))
            });
        });
        group.bench_function(BenchmarkId::new("btreemap_blake3", shape), |b| {
            b.iter(|| {
                i = (i + 1) % SAMPLES;
                let (start, end) = black_box(&bounded[i]);
                digests
                    .range::<str, _>((
                        std::ops::Bound::Included(start.as_str()),
                        std::ops::Bound::Excluded(end.as_str()),
                    ))
                    .map(|(key, digest)| Fingerprint::of_entry(key, digest))
                    .sum::<Fingerprint>()
            });
        });
        group.bench_function(BenchmarkId::new("btreemap_cached_hash", shape), |b| {
            b.iter(|| {
                i = (i + 1) % SAMPLES;
                let (start, end) = black_box(&bounded[i]);
                hashes
                    .range::<str, _>((
                        std::ops::Bound::Included(start.as_str()),
                        std::ops::Bound::Excluded(end.as_str()),
                    ))
                    .map(|(_, hash)| *hash)
                    .sum::<Fingerprint>()
            });
        });
    }
    group.finish();
}

fn all<M: Measurement>(c: &mut Criterion<M>) {
    let data = [
        Data::new(Shape::Sequential, 0x5e9_0001),
        Data::new(Shape::Random, 0x7a4d_0002),
    ];
    index_1m(c, &data);
    range_1k(c, &data);
}

fn main() {
    measure::run(Benchmarks {
        cpu: all,
        wall: all,
    });
}
