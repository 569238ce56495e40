//! The multi-value register.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Causal, CausalContext, Dot, DotFun, DotStore, ReplicaId, Timestamp};

/// A value together with the hybrid-clock time it was written at.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stamped<V> {
    /// When the write happened.
    pub time: Timestamp,
    /// What was written.
    pub value: V,
}

/// A multi-value register: a write replaces every value it has seen, and
/// concurrent writes are all kept as *siblings*.
///
/// [`winner`](MvReg::winner) picks one sibling deterministically: the
/// highest timestamp, then the highest replica id. That is the
/// last-writer-wins view; [`siblings`](MvReg::siblings) shows all of them.
///
/// ```
/// use trellis_crdt::{Causal, Lattice, MvReg, ReplicaId, Timestamp};
///
/// let mut a: Causal<MvReg<String>> = Causal::default();
/// let mut b = a.clone();
/// a.apply(|reg, cx| reg.write(cx, ReplicaId(1), Timestamp(10), "ada".into()));
/// b.apply(|reg, cx| reg.write(cx, ReplicaId(2), Timestamp(20), "grace".into()));
/// a.merge(b);
/// assert_eq!(a.store.siblings().count(), 2);
/// assert_eq!(a.store.winner().map(String::as_str), Some("grace"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent, bound(deserialize = "V: Deserialize<'de>"))]
pub struct MvReg<V> {
    entries: DotFun<Stamped<V>>,
}

impl<V> Default for MvReg<V> {
    fn default() -> Self {
        MvReg {
            entries: DotFun::default(),
        }
    }
}

impl<V> MvReg<V>
where
    V: Clone + PartialEq + Serialize + DeserializeOwned,
{
    /// Delta: `value` written at `time` by `replica`, replacing every
    /// sibling this replica has seen.
    pub fn write(
        &self,
        cx: &CausalContext,
        replica: ReplicaId,
        time: Timestamp,
        value: V,
    ) -> Causal<Self> {
        let dot = cx.next_dot(replica);
        let written = MvReg {
            entries: DotFun::single(dot, Stamped { time, value }),
        };
        Causal::new(written, self.dots())
    }

    /// A register holding one value under `dot`.
    pub(crate) fn single(dot: Dot, time: Timestamp, value: V) -> Self {
        MvReg {
            entries: DotFun::single(dot, Stamped { time, value }),
        }
    }

    /// Delta: every sibling seen so far removed.
    pub fn clear(&self) -> Causal<Self> {
        Causal::new(MvReg::default(), self.dots())
    }

    /// The concurrent values, in dot order.
    pub fn siblings(&self) -> impl Iterator<Item = (Dot, &Stamped<V>)> {
        self.entries.iter().map(|(dot, stamped)| (*dot, stamped))
    }

    /// The last-writer-wins value: the sibling with the highest timestamp,
    /// ties broken by the highest replica id.
    pub fn winner(&self) -> Option<&V> {
        self.winning().map(|stamped| &stamped.value)
    }

    /// The winning sibling with its timestamp.
    pub fn winning(&self) -> Option<&Stamped<V>> {
        self.entries
            .iter()
            .max_by_key(|(dot, stamped)| (stamped.time, dot.replica, dot.counter))
            .map(|(_, stamped)| stamped)
    }
}

impl<V> DotStore for MvReg<V>
where
    V: Clone + PartialEq + Serialize + DeserializeOwned,
{
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn for_each_dot(&self, visit: &mut dyn FnMut(Dot)) {
        self.entries.for_each_dot(visit);
    }

    fn join(&mut self, own: &CausalContext, other: Self, theirs: &CausalContext) {
        self.entries.join(own, other.entries, theirs);
    }
}
