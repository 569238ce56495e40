//! Replica identity and dots: the unique names of individual events.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The identity of one replica (in a Trellis cluster: one site's node).
///
/// A replica id is a 64-bit number that must be unique in the cluster. Nodes
/// derive it from their certificate; embedders pick one at random.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReplicaId(pub u64);

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl From<u64> for ReplicaId {
    fn from(value: u64) -> Self {
        ReplicaId(value)
    }
}

/// One event: the `counter`-th event created by `replica`.
///
/// Counters start at 1. A replica's events form a gap-free sequence, which is
/// what lets a [`CausalContext`](crate::CausalContext) compress them into a
/// version vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The replica that created the event.
    pub replica: ReplicaId,
    /// Its position in that replica's sequence, starting at 1.
    pub counter: u64,
}

impl Dot {
    /// The dot `counter` of `replica`.
    pub fn new(replica: impl Into<ReplicaId>, counter: u64) -> Self {
        Dot {
            replica: replica.into(),
            counter,
        }
    }
}

impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.replica, self.counter)
    }
}
