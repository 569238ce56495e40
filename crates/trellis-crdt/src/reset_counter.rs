//! A counter that can live inside an observed-remove map.

use serde::{Deserialize, Serialize};

use crate::{Causal, CausalContext, Dot, DotFun, DotStore, ReplicaId};

/// One replica's running totals inside a [`ResetCounter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Totals {
    /// Sum of this replica's increments.
    pub up: u64,
    /// Sum of this replica's decrements.
    pub down: u64,
}

/// A positive-negative counter that can be removed (reset), for use as a
/// field of an [`OrMap`](crate::OrMap) or a [`Record`](crate::Record).
///
/// Each replica's running totals sit under a single dot, replaced on every
/// change. Removing the counter drops the dots the remover has seen, which
/// resets it to zero.
///
/// **Change concurrent with a reset:** the changing replica's entry was not
/// seen by the reset, so it survives with that replica's *whole* running
/// total since it last saw the counter reset, not only the concurrent
/// change. Entries of other replicas that the reset saw are gone.
///
/// ```
/// use trellis_crdt::{Causal, Lattice, ReplicaId, ResetCounter};
///
/// let mut a: Causal<ResetCounter> = Causal::default();
/// let mut b = a.clone();
/// a.apply(|c, cx| c.add(cx, ReplicaId(1), 5));
/// b.apply(|c, cx| c.add(cx, ReplicaId(2), -2));
/// a.merge(b);
/// assert_eq!(a.store.value(), 3);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResetCounter {
    totals: DotFun<Totals>,
}

impl ResetCounter {
    /// Delta: `by` added on behalf of `replica` (negative to subtract).
    /// Totals saturate at `u64::MAX`.
    pub fn add(&self, cx: &CausalContext, replica: ReplicaId, by: i64) -> Causal<Self> {
        let mut totals = Totals::default();
        let mut replaced = Vec::new();
        for (dot, entry) in self.totals.iter().filter(|(dot, _)| dot.replica == replica) {
            totals.up = totals.up.saturating_add(entry.up);
            totals.down = totals.down.saturating_add(entry.down);
            replaced.push(*dot);
        }
        if by >= 0 {
            totals.up = totals.up.saturating_add(by.unsigned_abs());
        } else {
            totals.down = totals.down.saturating_add(by.unsigned_abs());
        }
        let changed = ResetCounter {
            totals: DotFun::single(cx.next_dot(replica), totals),
        };
        Causal::new(changed, CausalContext::from_dots(replaced))
    }

    /// Delta: the counter reset to zero, as far as this replica has seen it.
    pub fn reset(&self) -> Causal<Self> {
        Causal::new(ResetCounter::default(), self.dots())
    }

    /// The sum of every replica's increments minus decrements.
    pub fn value(&self) -> i128 {
        self.totals
            .iter()
            .map(|(_, totals)| i128::from(totals.up) - i128::from(totals.down))
            .sum()
    }
}

impl DotStore for ResetCounter {
    fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }

    fn for_each_dot(&self, visit: &mut dyn FnMut(Dot)) {
        self.totals.for_each_dot(visit);
    }

    fn join(&mut self, own: &CausalContext, other: Self, theirs: &CausalContext) {
        self.totals.join(own, other.totals, theirs);
    }
}
