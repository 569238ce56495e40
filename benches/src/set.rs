//! The add-wins set workload.
//!
//! A common state of `size` elements (`0..size`, each added by
//! [`ORIGIN`](crate::ORIGIN) in its own operation) is copied to two
//! replicas. Each replica then makes `percent`% × `size` concurrent edits:
//! half remove distinct existing elements, half add distinct new elements
//! drawn from `size..2 × size`. The replicas draw independently, so some
//! removes and some adds coincide across replicas, as they would in use.
//!
//! Trellis states are built through the public delta API in batches (see
//! [`apply_batch`]): one `Causal::apply` per operation on a 100 000-element
//! set costs a full join of the set, which makes building by single
//! operations quadratic. [`ours_apply_sequential`] does it one operation at
//! a time, for the build-time report and the equivalence test.

use std::collections::BTreeSet;

use crdts::{CmRDT, CvRDT, Orswot};
use trellis_crdt::{AwSet, Causal, Lattice, ReplicaId};

use crate::{merge_tree, replica, Rng, ORIGIN, SITE_A, SITE_B};

/// The set size the merge benchmark uses.
pub const SET_SIZE: u64 = 100_000;

/// Trellis's add-wins set with its causal context.
pub type OurSet = Causal<AwSet<u64>>;

/// The peer: riak_dt's ORSWOT as ported by the `crdts` crate.
pub type PeerSet = Orswot<u64, u64>;

/// One replica's concurrent edits.
#[derive(Clone, Debug)]
pub struct Edits {
    /// Existing elements removed.
    pub removes: Vec<u64>,
    /// New elements added.
    pub adds: Vec<u64>,
}

impl Edits {
    fn draw(size: u64, percent: u32, seed: u64) -> Self {
        let total = usize::try_from(size * u64::from(percent) / 100).unwrap_or(usize::MAX);
        let mut rng = Rng::new(seed);
        let removes = rng.distinct(0, size, total / 2);
        let adds = rng.distinct(size, 2 * size, total - total / 2);
        Edits { removes, adds }
    }

    /// How many operations the replica makes.
    pub fn len(&self) -> usize {
        self.removes.len() + self.adds.len()
    }

    /// Whether the replica makes no edit.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The data of one set benchmark: a starting size and two replicas' edits.
#[derive(Clone, Debug)]
pub struct SetWorkload {
    /// Elements in the common starting state: `0..size`.
    pub size: u64,
    /// Concurrent edits, in percent of `size`, per replica.
    pub percent: u32,
    /// Replica A's edits.
    pub a: Edits,
    /// Replica B's edits.
    pub b: Edits,
}

impl SetWorkload {
    /// The workload for `size` elements and `percent`% concurrent edits
    /// per replica (fixed seeds: every call returns the same data).
    pub fn new(size: u64, percent: u32) -> Self {
        SetWorkload {
            size,
            percent,
            a: Edits::draw(size, percent, 0xa000 + u64::from(percent)),
            b: Edits::draw(size, percent, 0xb000 + u64::from(percent)),
        }
    }
}

/// Applies independent operations (each targets a distinct element)
/// through the public delta API: every delta is computed against the
/// current state, with fresh dots drawn in order as sequential `apply`
/// calls would draw them; the deltas are joined pairwise and the result
/// merged once. For distinct elements this yields exactly the state of
/// one `apply` per operation (a test checks it), in O(n log n) instead of
/// O(n × size).
pub fn apply_batch(state: &mut OurSet, id: ReplicaId, removes: &[u64], adds: &[u64]) {
    let mut cx = state.context.clone();
    let mut deltas = Vec::with_capacity(removes.len() + adds.len());
    for element in removes {
        deltas.push(state.store.remove(element));
    }
    for &element in adds {
        deltas.push(state.store.add(&cx, id, element));
        cx.insert(cx.next_dot(id));
    }
    state.merge(merge_tree(deltas));
}

/// Applies the operations one `Causal::apply` at a time, as a replica
/// taking single writes does.
pub fn ours_apply_sequential(state: &mut OurSet, id: ReplicaId, removes: &[u64], adds: &[u64]) {
    for element in removes {
        state.apply(|set, _| set.remove(element));
    }
    for &element in adds {
        state.apply(|set, cx| set.add(cx, id, element));
    }
}

/// The common starting state, `0..size` added by the origin.
pub fn ours_base(size: u64) -> OurSet {
    let mut state = OurSet::default();
    let elements: Vec<u64> = (0..size).collect();
    apply_batch(&mut state, replica(ORIGIN), &[], &elements);
    state
}

/// The two diverged replicas.
pub fn ours_diverged(workload: &SetWorkload) -> (OurSet, OurSet) {
    let base = ours_base(workload.size);
    let mut a = base.clone();
    apply_batch(
        &mut a,
        replica(SITE_A),
        &workload.a.removes,
        &workload.a.adds,
    );
    let mut b = base;
    apply_batch(
        &mut b,
        replica(SITE_B),
        &workload.b.removes,
        &workload.b.adds,
    );
    (a, b)
}

/// The merge being measured.
pub fn ours_merge(mut a: OurSet, b: OurSet) -> OurSet {
    a.merge(b);
    a
}

/// The elements present, sorted.
pub fn ours_members(state: &OurSet) -> Vec<u64> {
    state.store.iter().copied().collect()
}

/// Adds `element` as `actor`, one operation.
pub fn peer_add(state: &mut PeerSet, actor: u64, element: u64) {
    let ctx = state.read_ctx().derive_add_ctx(actor);
    let op = state.add(element, ctx);
    state.apply(op);
}

/// Removes `element`, one operation.
pub fn peer_remove(state: &mut PeerSet, element: u64) {
    let ctx = state.contains(&element).derive_rm_ctx();
    let op = state.rm(element, ctx);
    state.apply(op);
}

/// The common starting state, one add operation per element.
pub fn peer_base(size: u64) -> PeerSet {
    let mut state = PeerSet::default();
    for element in 0..size {
        peer_add(&mut state, ORIGIN, element);
    }
    state
}

fn peer_edit(state: &mut PeerSet, actor: u64, edits: &Edits) {
    for &element in &edits.removes {
        peer_remove(state, element);
    }
    for &element in &edits.adds {
        peer_add(state, actor, element);
    }
}

/// The two diverged replicas.
pub fn peer_diverged(workload: &SetWorkload) -> (PeerSet, PeerSet) {
    let base = peer_base(workload.size);
    let mut a = base.clone();
    peer_edit(&mut a, SITE_A, &workload.a);
    let mut b = base;
    peer_edit(&mut b, SITE_B, &workload.b);
    (a, b)
}

/// The merge being measured.
pub fn peer_merge(mut a: PeerSet, b: PeerSet) -> PeerSet {
    a.merge(b);
    a
}

/// The elements present, sorted.
pub fn peer_members(state: &PeerSet) -> Vec<u64> {
    let members: BTreeSet<u64> = state.read().val.into_iter().collect();
    members.into_iter().collect()
}

/// The elements an add-wins merge must hold: the base, less what either
/// replica removed (and the other did not re-add), plus both replicas' adds.
pub fn expected_members(workload: &SetWorkload) -> Vec<u64> {
    let mut members: BTreeSet<u64> = (0..workload.size).collect();
    for element in workload.a.removes.iter().chain(&workload.b.removes) {
        members.remove(element);
    }
    members.extend(workload.a.adds.iter().chain(&workload.b.adds));
    members.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_build_equals_one_apply_per_operation() {
        let workload = SetWorkload::new(400, 50);
        let (a, _) = ours_diverged(&workload);
        let mut sequential = OurSet::default();
        let elements: Vec<u64> = (0..workload.size).collect();
        ours_apply_sequential(&mut sequential, replica(ORIGIN), &[], &elements);
        assert_eq!(sequential, ours_base(workload.size));
        ours_apply_sequential(
            &mut sequential,
            replica(SITE_A),
            &workload.a.removes,
            &workload.a.adds,
        );
        assert_eq!(sequential, a);
    }

    #[test]
    fn both_implementations_agree_on_the_merge() {
        for percent in crate::EDIT_PERCENTS {
            let workload = SetWorkload::new(2_000, percent);
            assert_eq!(workload.a.len(), 20 * percent as usize);
            let (a, b) = ours_diverged(&workload);
            let ours = ours_merge(a, b);
            let (pa, pb) = peer_diverged(&workload);
            let peer = peer_merge(pa, pb);
            assert_eq!(ours_members(&ours), expected_members(&workload));
            assert_eq!(peer_members(&peer), expected_members(&workload));
        }
    }
}
