//! `Causal`: a dot store paired with its causal context, the lattice that
//! every observed-remove type in this crate is built on.

use serde::{Deserialize, Deserializer, Serialize};

use crate::{CausalContext, DotStore, Lattice};

/// A causal CRDT: a [`DotStore`] of live dots and the [`CausalContext`] of
/// every dot seen.
///
/// This is the replicated state of a register, set, flag or map, and it is
/// also the shape of their deltas: a delta holds the new dots in its store
/// and, in its context, the new dots plus the dots it removes.
///
/// ```
/// use trellis_crdt::{AwSet, Causal, Lattice, ReplicaId};
///
/// let mut a: Causal<AwSet<u32>> = Causal::default();
/// let mut b = a.clone();
/// a.apply(|set, cx| set.add(cx, ReplicaId(1), 7));
/// b.apply(|set, cx| set.add(cx, ReplicaId(2), 9));
/// a.merge(b.clone());
/// b.merge(a.clone());
/// assert_eq!(a, b);
/// assert_eq!(a.store.len(), 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Causal<S> {
    /// The live dots and their payload.
    pub store: S,
    /// Every dot this state has seen, live or removed.
    pub context: CausalContext,
}

impl<S: Default> Default for Causal<S> {
    fn default() -> Self {
        Causal {
            store: S::default(),
            context: CausalContext::default(),
        }
    }
}

impl<S: DotStore> Causal<S> {
    /// A state from its parts. Dots the store holds are added to the
    /// context, so the state is always well formed.
    pub fn new(store: S, mut context: CausalContext) -> Self {
        context.union(&store.dots());
        Causal { store, context }
    }

    /// Runs a delta mutator against this state, merges the delta it
    /// returns, and returns the delta for replication.
    ///
    /// Mutators are the `&self` methods of the store types, such as
    /// [`AwSet::add`](crate::AwSet::add); they read the state and the
    /// context (for fresh dots) and describe the change as a delta.
    pub fn apply(&mut self, mutator: impl FnOnce(&S, &CausalContext) -> Causal<S>) -> Causal<S> {
        let delta = mutator(&self.store, &self.context);
        self.merge(delta.clone());
        delta
    }
}

impl<S: DotStore> Lattice for Causal<S> {
    fn merge(&mut self, other: Self) {
        self.store.join(&self.context, other.store, &other.context);
        self.context.union(&other.context);
    }
}

impl<'de, S: DotStore> Deserialize<'de> for Causal<S> {
    /// Decodes and repairs: any dot the store holds is added to the
    /// context, so a decoded state is always well formed (its live dots
    /// are among those it has seen). Decoding cannot check that a dot
    /// means the same event everywhere: bytes that reuse another replica's
    /// dot for different contents make merges disagree, as does a replica
    /// that loses its state and writes again under the same id.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(bound = "S: DotStore")]
        struct Raw<S> {
            store: S,
            context: CausalContext,
        }
        let raw = Raw::<S>::deserialize(deserializer)?;
        Ok(Causal::new(raw.store, raw.context))
    }
}
