//! # trellis-benches
//!
//! Workloads shared by Trellis's criterion benchmarks and by the `sizes`
//! and `build_times` report binaries. Every benchmark compares a Trellis
//! type with a peer crate **in the same run, on the same data**: the data
//! is generated here once, from fixed seeds, and then built into each
//! implementation through its public API.
//!
//! - [`set`]: a 100 000-element add-wins set, two replicas diverged by
//!   concurrent adds and removes. Trellis `Causal<AwSet<u64>>` against
//!   `crdts::Orswot<u64, u64>`.
//! - [`records`]: 12 500 records of 8 register fields (100 000 field
//!   writes), two replicas diverged by concurrent field writes. A Trellis
//!   collection (`BTreeMap<String, Record>`) against a nested
//!   `crdts::Map` and against automerge documents.
//!
//! - [`report`]: what the report binaries share (settings, percentiles).
//!
//! `docs/benchmarks.md` in the repository describes the workloads, the
//! commands and the measured tables.
//!
//! ```
//! use trellis_benches::set::{self, SetWorkload};
//!
//! let workload = SetWorkload::new(1_000, 10);
//! let (a, b) = set::ours_diverged(&workload);
//! let merged = set::ours_merge(a, b);
//! let (pa, pb) = set::peer_diverged(&workload);
//! let peer = set::peer_merge(pa, pb);
//! assert_eq!(set::ours_members(&merged), set::peer_members(&peer));
//! ```

pub mod measure;
pub mod records;
pub mod report;
pub mod set;

use trellis_crdt::ReplicaId;

/// The replica that writes the common starting state.
pub const ORIGIN: u64 = 0x6a09_e667_f3bc_c908;
/// The first of the two diverging replicas.
pub const SITE_A: u64 = 0xbb67_ae85_84ca_a73b;
/// The second of the two diverging replicas.
pub const SITE_B: u64 = 0x3c6e_f372_fe94_f82b;

/// The concurrent-edit fractions every merge benchmark runs, in percent of
/// the starting state's size, per replica.
pub const EDIT_PERCENTS: [u32; 3] = [1, 10, 50];

/// A Trellis replica id for one of the constants above.
pub fn replica(id: u64) -> ReplicaId {
    ReplicaId(id)
}

/// A small deterministic generator (SplitMix64), so that every run and
/// every implementation sees the same data without a `rand` dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `count` distinct values from `start..end`, in random order.
    ///
    /// # Panics
    ///
    /// If the range holds fewer than `count` values.
    pub fn distinct(&mut self, start: u64, end: u64, count: usize) -> Vec<u64> {
        let mut pool: Vec<u64> = (start..end).collect();
        assert!(
            count <= pool.len(),
            "cannot draw {count} from {start}..{end}"
        );
        for i in 0..count {
            let remaining = (pool.len() - i) as u64;
            let j = i + usize::try_from(self.next_u64() % remaining).unwrap_or(0);
            pool.swap(i, j);
        }
        pool.truncate(count);
        pool
    }
}

/// Joins many lattice values pairwise, level by level: O(n log n) total
/// work for n small deltas, instead of n joins into one growing state.
pub fn merge_tree<L: trellis_crdt::Lattice>(mut items: Vec<L>) -> L {
    while items.len() > 1 {
        let mut next = Vec::with_capacity(items.len().div_ceil(2));
        let mut pairs = items.into_iter();
        while let Some(left) = pairs.next() {
            next.push(match pairs.next() {
                Some(right) => left.merged(right),
                None => left,
            });
        }
        items = next;
    }
    items.pop().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_draws_are_distinct_and_in_range() {
        let mut rng = Rng::new(7);
        let mut drawn = rng.distinct(100, 200, 60);
        assert_eq!(drawn.len(), 60);
        assert!(drawn.iter().all(|v| (100..200).contains(v)));
        drawn.sort_unstable();
        drawn.dedup();
        assert_eq!(drawn.len(), 60);
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }
}
