//! Exponential reconnect backoff with jitter, as a plain state machine:
//! time and randomness are passed in.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::BackoffConfig;

/// The reconnect state of one peer: how many attempts failed in a row and
/// when the next one is allowed.
///
/// After the `n`-th consecutive failure the next attempt waits a random
/// time in `[d/2, d)` where `d = min(initial * 2^(n-1), max)`. The jitter
/// keeps nodes that lost the same peer at the same moment from retrying in
/// lockstep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
    retry_at: Option<Instant>,
}

impl Backoff {
    /// A peer with no failures: attempts are allowed at once.
    pub fn new() -> Backoff {
        Backoff::default()
    }

    /// Consecutive failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether the last attempt failed.
    pub fn is_failing(&self) -> bool {
        self.failures > 0
    }

    /// How long until the next attempt is allowed, or `None` if it is
    /// allowed now.
    pub fn retry_in(&self, now: Instant) -> Option<Duration> {
        self.retry_at
            .and_then(|at| at.checked_duration_since(now))
            .filter(|wait| !wait.is_zero())
    }

    /// Records a failed attempt at `now` and returns the delay before the
    /// next one. `jitter` in `[0, 1)` picks the point in the jitter range
    /// (values outside are clamped); [`random_jitter`] gives one.
    pub fn record_failure(
        &mut self,
        now: Instant,
        config: &BackoffConfig,
        jitter: f64,
    ) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let doublings = (self.failures - 1).min(31);
        let full = config
            .initial
            .checked_mul(1u32 << doublings)
            .map_or(config.max, |delay| delay.min(config.max));
        let delay = full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        self.retry_at = Some(now + delay);
        delay
    }

    /// Records a successful attempt: back to no failures.
    pub fn record_success(&mut self) {
        *self = Backoff::default();
    }
}

/// A uniformly distributed number in `[0, 1)`, from std's randomly keyed
/// hasher (no extra dependency; not for cryptography).
pub fn random_jitter() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        }
    }

    #[test]
    fn doubles_up_to_the_cap_within_the_jitter_range() {
        let now = Instant::now();
        let mut backoff = Backoff::new();
        assert_eq!(backoff.retry_in(now), None);
        let expected_full = [100, 200, 400, 800, 1000, 1000];
        for full in expected_full {
            let low = backoff.clone().record_failure(now, &config(), 0.0);
            let high = backoff.clone().record_failure(now, &config(), 0.999_999);
            assert_eq!(low, Duration::from_millis(full / 2));
            assert!(
                high < Duration::from_millis(full) && high > Duration::from_millis(full * 99 / 100)
            );
            backoff.record_failure(now, &config(), 0.5);
        }
        assert_eq!(backoff.failures(), 6);
        assert!(backoff.is_failing());
    }

    #[test]
    fn retry_time_passes_and_success_resets() {
        let now = Instant::now();
        let mut backoff = Backoff::new();
        let delay = backoff.record_failure(now, &config(), 0.0);
        assert_eq!(backoff.retry_in(now), Some(delay));
        assert_eq!(backoff.retry_in(now + delay), None);
        backoff.record_success();
        assert_eq!(backoff, Backoff::new());
    }

    #[test]
    fn survives_huge_failure_counts() {
        let now = Instant::now();
        let mut backoff = Backoff {
            failures: u32::MAX - 1,
            retry_at: None,
        };
        for _ in 0..3 {
            let delay = backoff.record_failure(now, &config(), 1.0);
            assert_eq!(delay, Duration::from_secs(1));
        }
    }

    #[test]
    fn jitter_is_in_range_and_varies() {
        let samples: Vec<f64> = (0..64).map(|_| random_jitter()).collect();
        assert!(samples.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(samples.windows(2).any(|w| w[0] != w[1]));
    }
}
