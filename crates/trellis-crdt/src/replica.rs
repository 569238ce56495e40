//! Replica identity and dots: the unique names of individual events.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

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

/// The largest event counter a decoded [`Dot`] or version vector may
/// hold: 2^62, far beyond what a replica can generate, and far enough from
/// `u64::MAX` that counter arithmetic never overflows.
pub const MAX_COUNTER: u64 = 1 << 62;

/// One event: the `counter`-th event created by `replica`.
///
/// Counters start at 1. A replica's events form a gap-free sequence, which is
/// what lets a [`CausalContext`](crate::CausalContext) compress them into a
/// version vector. Decoding refuses counters outside `1..=MAX_COUNTER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
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

/// Checks a decoded event counter.
pub(crate) fn valid_counter<E: serde::de::Error>(counter: u64) -> Result<u64, E> {
    if (1..=MAX_COUNTER).contains(&counter) {
        Ok(counter)
    } else {
        Err(E::custom(format_args!(
            "event counter {counter} is outside 1..={MAX_COUNTER}"
        )))
    }
}

impl<'de> Deserialize<'de> for Dot {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            replica: ReplicaId,
            counter: u64,
        }
        let raw = Raw::deserialize(deserializer)?;
        Ok(Dot {
            replica: raw.replica,
            counter: valid_counter(raw.counter)?,
        })
    }
}

impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.replica, self.counter)
    }
}
