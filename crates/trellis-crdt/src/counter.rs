//! Grow-only and positive-negative counters.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Lattice, ReplicaId};

/// A grow-only counter: each replica counts its own increments, and the
/// value is the sum.
///
/// ```
/// use trellis_crdt::{GCounter, Lattice, ReplicaId};
///
/// let mut a = GCounter::default();
/// let mut b = GCounter::default();
/// let delta = a.increment(ReplicaId(1), 3);
/// b.increment(ReplicaId(2), 4);
/// b.merge_delta(delta);
/// assert_eq!(b.value(), 7);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GCounter {
    totals: BTreeMap<ReplicaId, u64>,
}

impl GCounter {
    /// Adds `by` on behalf of `replica` and returns the delta (the
    /// replica's new total). Totals saturate at `u64::MAX`. Adding zero
    /// changes nothing and returns the empty delta.
    pub fn increment(&mut self, replica: ReplicaId, by: u64) -> GCounter {
        if by == 0 {
            return GCounter::default();
        }
        let total = self.totals.entry(replica).or_insert(0);
        *total = total.saturating_add(by);
        GCounter {
            totals: BTreeMap::from([(replica, *total)]),
        }
    }

    /// The sum over all replicas (saturating).
    pub fn value(&self) -> u64 {
        self.totals
            .values()
            .fold(0u64, |sum, &total| sum.saturating_add(total))
    }

    /// `replica`'s own total.
    pub fn total_of(&self, replica: ReplicaId) -> u64 {
        self.totals.get(&replica).copied().unwrap_or(0)
    }
}

impl Lattice for GCounter {
    fn merge(&mut self, other: Self) {
        for (replica, total) in other.totals {
            let mine = self.totals.entry(replica).or_insert(0);
            *mine = (*mine).max(total);
        }
    }
}

/// A counter that goes up and down: two [`GCounter`]s, one for increments
/// and one for decrements.
///
/// ```
/// use trellis_crdt::{Lattice, PnCounter, ReplicaId};
///
/// let mut a = PnCounter::default();
/// let mut b = PnCounter::default();
/// a.increment(ReplicaId(1), 10);
/// let delta = b.decrement(ReplicaId(2), 3);
/// a.merge_delta(delta);
/// assert_eq!(a.value(), 7);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PnCounter {
    increments: GCounter,
    decrements: GCounter,
}

impl PnCounter {
    /// Adds `by` on behalf of `replica`; returns the delta.
    pub fn increment(&mut self, replica: ReplicaId, by: u64) -> PnCounter {
        PnCounter {
            increments: self.increments.increment(replica, by),
            decrements: GCounter::default(),
        }
    }

    /// Subtracts `by` on behalf of `replica`; returns the delta.
    pub fn decrement(&mut self, replica: ReplicaId, by: u64) -> PnCounter {
        PnCounter {
            increments: GCounter::default(),
            decrements: self.decrements.increment(replica, by),
        }
    }

    /// Increments minus decrements.
    pub fn value(&self) -> i128 {
        i128::from(self.increments.value()) - i128::from(self.decrements.value())
    }
}

impl Lattice for PnCounter {
    fn merge(&mut self, other: Self) {
        self.increments.merge(other.increments);
        self.decrements.merge(other.decrements);
    }
}
