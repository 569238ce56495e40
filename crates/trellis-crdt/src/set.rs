//! The add-wins observed-remove set.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Causal, CausalContext, Dot, DotMap, DotSet, DotStore, ReplicaId};

/// An add-wins observed-remove set.
///
/// Each add tags the element with a fresh dot; a remove drops the dots it
/// has seen. An add concurrent with a remove therefore survives: add wins.
/// Removed elements leave no tombstone behind, only their dots in the
/// causal context, which compacts into a version vector.
///
/// ```
/// use trellis_crdt::{AwSet, Causal, Lattice, ReplicaId};
///
/// let mut a: Causal<AwSet<String>> = Causal::default();
/// a.apply(|set, cx| set.add(cx, ReplicaId(1), "vip".to_string()));
/// let mut b = a.clone();
/// a.apply(|set, _| set.remove(&"vip".to_string()));
/// b.apply(|set, cx| set.add(cx, ReplicaId(2), "vip".to_string()));
/// a.merge(b);
/// assert!(a.store.contains(&"vip".to_string()), "the concurrent add wins");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(
    transparent,
    bound(
        serialize = "E: Ord + Serialize",
        deserialize = "E: Ord + Clone + Serialize + DeserializeOwned"
    )
)]
pub struct AwSet<E: Ord> {
    elements: DotMap<E, DotSet>,
}

impl<E: Ord> Default for AwSet<E> {
    fn default() -> Self {
        AwSet {
            elements: DotMap::default(),
        }
    }
}

impl<E> AwSet<E>
where
    E: Ord + Clone + Serialize + DeserializeOwned,
{
    /// Delta: `element` added by `replica`.
    pub fn add(&self, cx: &CausalContext, replica: ReplicaId, element: E) -> Causal<Self> {
        let dot = cx.next_dot(replica);
        let seen = self.dots_of(&element);
        let added = AwSet {
            elements: DotMap::single(element, DotSet::single(dot)),
        };
        Causal::new(added, seen)
    }

    /// Delta: `element` removed, as far as this replica has seen it.
    pub fn remove(&self, element: &E) -> Causal<Self> {
        Causal::new(AwSet::default(), self.dots_of(element))
    }

    /// Delta: every element seen so far removed.
    pub fn clear(&self) -> Causal<Self> {
        Causal::new(AwSet::default(), self.dots())
    }

    /// Whether `element` is present.
    pub fn contains(&self, element: &E) -> bool {
        self.elements.get(element).is_some()
    }

    /// The elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = &E> {
        self.elements.iter().map(|(element, _)| element)
    }

    /// How many elements are present.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    fn dots_of(&self, element: &E) -> CausalContext {
        self.elements
            .get(element)
            .map_or_else(CausalContext::new, DotStore::dots)
    }
}

impl<E> DotStore for AwSet<E>
where
    E: Ord + Clone + Serialize + DeserializeOwned,
{
    fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    fn for_each_dot(&self, visit: &mut dyn FnMut(Dot)) {
        self.elements.for_each_dot(visit);
    }

    fn join(&mut self, own: &CausalContext, other: Self, theirs: &CausalContext) {
        self.elements.join(own, other.elements, theirs);
    }
}
