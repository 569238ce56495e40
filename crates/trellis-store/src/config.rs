//! How a store is opened: durability, limits and retention.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Limits;

/// When a write counts as durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Every batch is committed with fsync before its writes are
    /// acknowledged. Nothing acknowledged is lost, even on power loss.
    /// The default.
    #[default]
    Fsync,
    /// Batches are committed without fsync and acknowledged at once; the
    /// data is forced to disk every `interval` (and when the store closes).
    ///
    /// **Risk:** a crash, of the process (kill -9, out of memory) or of the
    /// machine, loses the writes acknowledged since the last forced sync:
    /// up to `interval` of them. The file stays consistent, just older.
    /// Peers may already hold such writes, and anti-entropy brings them
    /// back from a peer that does; writes no other site received are gone.
    Relaxed {
        /// How often data is forced to disk.
        #[serde(with = "millis")]
        interval: Duration,
    },
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(value.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// Settings for opening a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// When writes are durable. Default [`Durability::Fsync`].
    pub durability: Durability,
    /// What the store accepts.
    pub limits: Limits,
    /// How many change-feed entries are kept. Default 1 000 000.
    pub change_retention: u64,
    /// The most writes committed in one batch. Default 4096.
    pub max_batch: usize,
    /// How far ahead of local time a remote timestamp may be. Default 60 s.
    pub max_clock_skew: Duration,
    /// Milliseconds added to the system clock before the hybrid clock
    /// reads it. 0 (the default) in production; tests and the fault
    /// harness set it to run a node whose clock is off.
    pub clock_offset_ms: i64,
}

impl StoreConfig {
    /// The wall clock this store's hybrid clock reads: the system clock
    /// shifted by [`clock_offset_ms`](Self::clock_offset_ms).
    pub fn wall_clock_ms(&self) -> u64 {
        offset_clock(trellis_crdt::wall_clock_millis(), self.clock_offset_ms)
    }
}

/// `wall` shifted by `offset` milliseconds, saturating.
pub(crate) fn offset_clock(wall: u64, offset: i64) -> u64 {
    wall.saturating_add_signed(offset)
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            durability: Durability::Fsync,
            limits: Limits::default(),
            change_retention: 1_000_000,
            max_batch: 4096,
            max_clock_skew: Duration::from_secs(60),
            clock_offset_ms: 0,
        }
    }
}
