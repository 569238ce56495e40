//! The store's hybrid logical clock, shared by the commit thread and the
//! threads that prepare their local writes ahead of their batch.

use std::sync::{Arc, Mutex, MutexGuard};

use trellis_crdt::{ClockSkewError, HybridClock, Timestamp};

/// A [`HybridClock`] behind a lock. Clones share one clock, so a writer
/// state restored after a failed batch does not take the clock back: the
/// clock never goes backwards, whatever happens to the batch.
#[derive(Clone, Debug)]
pub(crate) struct SharedClock(Arc<Mutex<HybridClock>>);

impl SharedClock {
    /// Shares `clock`.
    pub fn new(clock: HybridClock) -> Self {
        SharedClock(Arc::new(Mutex::new(clock)))
    }

    fn lock(&self) -> MutexGuard<'_, HybridClock> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new timestamp for a local event at wall time `wall_ms`.
    pub fn tick(&self, wall_ms: u64) -> Timestamp {
        self.lock().tick(wall_ms)
    }

    /// Takes in a remote timestamp (see [`HybridClock::observe`]).
    pub fn observe(&self, remote: Timestamp, wall_ms: u64) -> Result<(), ClockSkewError> {
        self.lock().observe(remote, wall_ms)
    }

    /// The latest timestamp issued or observed.
    pub fn last(&self) -> Timestamp {
        self.lock().last()
    }
}
