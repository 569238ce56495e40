//! The hybrid logical clock: timestamps that follow wall time, never go
//! backwards, and order causally related events.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Bits of a [`Timestamp`] that hold the logical counter.
const LOGICAL_BITS: u32 = 16;

/// A hybrid logical clock reading.
///
/// It packs milliseconds since the Unix epoch in the high 48 bits and a
/// logical counter in the low 16 bits, so timestamps compare as plain
/// integers and a burst of 65 536 events within one millisecond still gets
/// distinct, increasing stamps (the counter then carries into the next
/// millisecond).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The timestamp at the start of wall-clock millisecond `millis`.
    pub fn from_millis(millis: u64) -> Self {
        Timestamp(millis << LOGICAL_BITS)
    }

    /// The wall-clock milliseconds since the Unix epoch.
    pub fn millis(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// The logical counter within the millisecond.
    pub fn logical(self) -> u16 {
        (self.0 & ((1 << LOGICAL_BITS) - 1)) as u16
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:05}", self.millis(), self.logical())
    }
}

/// A remote timestamp the clock refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "remote timestamp {remote} is {ahead_ms} ms ahead of local wall time {wall_ms} ms, beyond the \
     maximum clock skew of {max_skew_ms} ms; check the remote site's clock (NTP) or raise max_skew"
)]
pub struct ClockSkewError {
    /// The refused timestamp.
    pub remote: Timestamp,
    /// Local wall time when it was refused, in milliseconds since the epoch.
    pub wall_ms: u64,
    /// How far ahead of local wall time the remote timestamp was.
    pub ahead_ms: u64,
    /// The configured limit.
    pub max_skew_ms: u64,
}

/// A hybrid logical clock.
///
/// It is a plain value: wall time is passed in, so tests and simulations are
/// deterministic. Readings are strictly increasing, even when the wall clock
/// steps backwards. A remote timestamp further ahead of local wall time than
/// `max_skew` is refused with [`ClockSkewError`] and not adopted, so one site
/// with a broken clock cannot drag every other site into the future.
///
/// To keep the clock monotonic across restarts, persist a high-water mark
/// and restore it with [`HybridClock::resume_after`].
#[derive(Clone, Debug)]
pub struct HybridClock {
    last: Timestamp,
    max_skew_ms: u64,
}

impl HybridClock {
    /// A clock that refuses remote timestamps more than `max_skew` ahead.
    pub fn new(max_skew: Duration) -> Self {
        HybridClock {
            last: Timestamp::default(),
            max_skew_ms: u64::try_from(max_skew.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Continues from a persisted high-water mark: every later reading is
    /// greater than `high_water`.
    pub fn resume_after(mut self, high_water: Timestamp) -> Self {
        self.last = self.last.max(high_water);
        self
    }

    /// The latest timestamp issued or observed.
    pub fn last(&self) -> Timestamp {
        self.last
    }

    /// A new timestamp for a local event at wall time `wall_ms`.
    pub fn tick(&mut self, wall_ms: u64) -> Timestamp {
        let wall = Timestamp::from_millis(wall_ms);
        self.last = if wall > self.last {
            wall
        } else {
            Timestamp(self.last.0.saturating_add(1))
        };
        self.last
    }

    /// A new timestamp for a local event, read from the system clock.
    pub fn tick_now(&mut self) -> Timestamp {
        self.tick(wall_clock_millis())
    }

    /// Takes in a timestamp received from another replica at wall time
    /// `wall_ms`, so that later local events order after it.
    pub fn observe(&mut self, remote: Timestamp, wall_ms: u64) -> Result<(), ClockSkewError> {
        let limit = wall_ms.saturating_add(self.max_skew_ms);
        if remote.millis() > limit {
            return Err(ClockSkewError {
                remote,
                wall_ms,
                ahead_ms: remote.millis() - wall_ms,
                max_skew_ms: self.max_skew_ms,
            });
        }
        self.last = self.last.max(remote);
        Ok(())
    }
}

/// Milliseconds since the Unix epoch from the system clock (0 if the clock
/// is set before 1970).
pub fn wall_clock_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> HybridClock {
        HybridClock::new(Duration::from_secs(60))
    }

    #[test]
    fn never_goes_backwards_when_wall_time_does() {
        let mut clock = clock();
        let a = clock.tick(10_000);
        let b = clock.tick(5_000);
        let c = clock.tick(5_000);
        assert!(a < b && b < c);
        assert_eq!(b.millis(), 10_000);
        assert_eq!(clock.tick(20_000), Timestamp::from_millis(20_000));
    }

    #[test]
    fn observed_remote_time_orders_later_events() {
        let mut clock = clock();
        let remote = Timestamp::from_millis(1_030_000);
        clock.observe(remote, 1_000_000).unwrap();
        assert!(clock.tick(1_000_001) > remote);
    }

    #[test]
    fn refuses_timestamps_beyond_max_skew() {
        let mut clock = clock();
        let before = clock.tick(1_000_000);
        let err = clock
            .observe(Timestamp::from_millis(1_060_001), 1_000_000)
            .unwrap_err();
        assert_eq!(err.ahead_ms, 60_001);
        assert!(err.to_string().contains("maximum clock skew"));
        assert_eq!(clock.last(), before, "a refused timestamp is not adopted");
        clock
            .observe(Timestamp::from_millis(1_060_000), 1_000_000)
            .unwrap();
    }

    #[test]
    fn resumes_after_a_high_water_mark() {
        let mark = Timestamp::from_millis(50_000);
        let mut clock = clock().resume_after(mark);
        assert!(clock.tick(1) > mark);
    }

    #[test]
    fn logical_counter_carries_into_the_millisecond() {
        let mut clock = clock();
        let mut last = clock.tick(7);
        for _ in 0..70_000 {
            let next = clock.tick(7);
            assert!(next > last);
            last = next;
        }
        assert_eq!(last.millis(), 8);
    }
}
