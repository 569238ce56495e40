//! The enable-wins flag.

use serde::{Deserialize, Serialize};

use crate::{Causal, CausalContext, Dot, DotSet, DotStore, ReplicaId};

/// A boolean where an enable concurrent with a disable wins.
///
/// ```
/// use trellis_crdt::{Causal, EwFlag, Lattice, ReplicaId};
///
/// let mut a: Causal<EwFlag> = Causal::default();
/// a.apply(|flag, cx| flag.enable(cx, ReplicaId(1)));
/// let mut b = a.clone();
/// a.apply(|flag, _| flag.disable());
/// b.apply(|flag, cx| flag.enable(cx, ReplicaId(2)));
/// a.merge(b);
/// assert!(a.store.is_enabled());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EwFlag {
    enablers: DotSet,
}

impl EwFlag {
    /// Delta: the flag enabled by `replica`.
    pub fn enable(&self, cx: &CausalContext, replica: ReplicaId) -> Causal<Self> {
        let enabled = EwFlag {
            enablers: DotSet::single(cx.next_dot(replica)),
        };
        Causal::new(enabled, self.dots())
    }

    /// Delta: the flag disabled, as far as this replica has seen it enabled.
    pub fn disable(&self) -> Causal<Self> {
        Causal::new(EwFlag::default(), self.dots())
    }

    /// Whether the flag is on.
    pub fn is_enabled(&self) -> bool {
        !self.enablers.is_empty()
    }
}

impl DotStore for EwFlag {
    fn is_empty(&self) -> bool {
        self.enablers.is_empty()
    }

    fn for_each_dot(&self, visit: &mut dyn FnMut(Dot)) {
        self.enablers.for_each_dot(visit);
    }

    fn join(&mut self, own: &CausalContext, other: Self, theirs: &CausalContext) {
        self.enablers.join(own, other.enablers, theirs);
    }
}
