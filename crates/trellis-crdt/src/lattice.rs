//! The lattice trait every CRDT in this crate implements.

use serde::Serialize;

use crate::Digest;

/// A join-semilattice: a state that only grows, by merging.
///
/// Implementations guarantee that [`merge`](Lattice::merge) is idempotent,
/// commutative and associative (the property tests in this crate check it,
/// and `testing::assert_lattice_laws` (feature `proptest`) checks your own
/// compositions). Deltas returned by mutators are themselves states, so the
/// same `merge` takes in a full state or a delta: sending the full state is
/// always correct, deltas are an optimisation.
///
/// `Default` is the bottom element: merging it changes nothing.
pub trait Lattice: Clone + Default + PartialEq + Serialize {
    /// Joins `other` into `self`: afterwards `self` holds everything both
    /// states held.
    fn merge(&mut self, other: Self);

    /// Joins a delta into `self`. Deltas are states, so this is
    /// [`merge`](Lattice::merge); it exists to make call sites read well.
    fn merge_delta(&mut self, delta: Self) {
        self.merge(delta);
    }

    /// `self` joined with `other`, consuming both.
    fn merged(mut self, other: Self) -> Self {
        self.merge(other);
        self
    }

    /// Whether this is the bottom element (the initial, empty state).
    fn is_bottom(&self) -> bool {
        *self == Self::default()
    }

    /// The blake3 digest of the canonical encoding: equal states have equal
    /// digests on every platform.
    fn digest(&self) -> Digest {
        Digest::of(self)
    }
}
