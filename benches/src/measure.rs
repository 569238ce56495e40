//! What the benchmarks measure: the CPU time of the benchmarking thread,
//! or wall-clock time.
//!
//! The development machine is shared: with other jobs running, a
//! 50-millisecond merge is descheduled several times, and wall-clock
//! samples vary by 2–5× with the load of the moment. Benchmarks of one
//! group run one after the other, so that noise lands on each side of a
//! comparison differently. The time the thread actually spent on a CPU
//! (`CLOCK_THREAD_CPUTIME_ID`) leaves the waiting out, so by default the
//! benchmarks measure it. It still includes page faults and cache misses
//! (and the effect of other jobs on the caches); everything measured here
//! runs on the benchmarking thread. Set `TRELLIS_BENCH_CLOCK=wall` to
//! measure wall-clock time instead.
//!
//! Reading the CPU clock is a system call: about 0.7 µs per reading on the
//! development VM, against 30 ns for the wall clock. That is negligible for
//! the merges (tens of milliseconds) but would swamp sub-microsecond
//! operations, so the single-operation benchmarks (`set_ops`) always
//! measure wall-clock time.

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput};

/// The environment variable that selects the clock: `cpu` (default) or
/// `wall`.
pub const CLOCK_VAR: &str = "TRELLIS_BENCH_CLOCK";

/// The CPU time the calling thread has used so far.
#[cfg(target_os = "linux")]
pub fn thread_cpu_time() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// The CPU time the calling thread has used so far. Off Linux this falls
/// back to wall-clock time since the first call.
#[cfg(not(target_os = "linux"))]
pub fn thread_cpu_time() -> Duration {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}

/// A criterion measurement of the benchmarking thread's CPU time.
#[derive(Clone, Copy, Debug, Default)]
pub struct ThreadCpuTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        thread_cpu_time()
    }

    fn end(&self, started: Duration) -> Duration {
        thread_cpu_time().saturating_sub(started)
    }

    fn add(&self, v1: &Duration, v2: &Duration) -> Duration {
        *v1 + *v2
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanoseconds
    }
}

/// Formats nanosecond values as criterion's wall clock does.
struct Nanoseconds;

impl ValueFormatter for Nanoseconds {
    fn scale_values(&self, typical_value: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = match typical_value {
            ns if ns < 1e3 => (1.0, "ns"),
            ns if ns < 1e6 => (1e-3, "µs"),
            ns if ns < 1e9 => (1e-6, "ms"),
            _ => (1e-9, "s"),
        };
        values.iter_mut().for_each(|value| *value *= factor);
        unit
    }

    fn scale_throughputs(
        &self,
        _typical_value: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per_iteration = match *throughput {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) | Throughput::Elements(n) => n,
        } as f64;
        values
            .iter_mut()
            .for_each(|value| *value = per_iteration * 1e9 / *value);
        "per s"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

/// The criterion settings every benchmark here uses: 10 samples, 1 s of
/// warm-up and 3 s of measurement per benchmark, so that the whole suite
/// runs in a few minutes; then the command line's options.
pub fn configured<M: Measurement>(criterion: Criterion<M>) -> Criterion<M> {
    criterion
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

/// Runs `benchmarks` with the clock that [`CLOCK_VAR`] selects, then
/// prints criterion's summary: the body of a benchmark binary's `main`.
///
/// # Panics
///
/// If [`CLOCK_VAR`] holds something other than `cpu` or `wall`.
pub fn run(benchmarks: Benchmarks) {
    match std::env::var(CLOCK_VAR).as_deref() {
        Ok("wall") => {
            let mut criterion = configured(Criterion::default().with_measurement(WallTime));
            (benchmarks.wall)(&mut criterion);
            criterion.final_summary();
        }
        Ok("cpu") | Err(_) => {
            let mut criterion = configured(Criterion::default().with_measurement(ThreadCpuTime));
            (benchmarks.cpu)(&mut criterion);
            criterion.final_summary();
        }
        Ok(other) => panic!("{CLOCK_VAR}={other:?}: expected `cpu` (the default) or `wall`"),
    }
}

/// One benchmark binary's benchmarks, instantiated for each clock (a
/// benchmark function is generic over criterion's measurement).
#[derive(Clone, Copy, Debug)]
pub struct Benchmarks {
    /// The benchmarks measuring thread CPU time.
    pub cpu: fn(&mut Criterion<ThreadCpuTime>),
    /// The benchmarks measuring wall-clock time.
    pub wall: fn(&mut Criterion<WallTime>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_advances_with_work() {
        let before = thread_cpu_time();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(thread_cpu_time() > before, "{x}");
    }
}
