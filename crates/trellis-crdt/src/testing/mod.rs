//! Property-testing kit (feature `proptest`): strategies for every type,
//! random operation schedules, and the checks Trellis itself runs.
//!
//! A user who composes these types can check that their data converges in
//! a few lines: describe the operations, and let [`assert_converges`] play
//! random schedules (concurrent edits, deltas and full states delivered
//! out of order, duplicated, or not at all until the end) across 2–5
//! replicas.
//!
//! ```
//! use proptest::prelude::*;
//! use trellis_crdt::testing::{assert_converges, config, schedule, Operation};
//! use trellis_crdt::{Causal, Lattice, MvReg, OrMap, ReplicaId, Timestamp};
//!
//! /// A user's own type: a map of named registers.
//! type Settings = Causal<OrMap<String, MvReg<u32>>>;
//!
//! #[derive(Clone, Debug)]
//! enum SettingsOp { Put(String, u32), Drop(String) }
//!
//! impl Operation<Settings> for SettingsOp {
//!     fn apply_to(&self, state: &mut Settings, replica: ReplicaId, time: Timestamp) -> Settings {
//!         match self {
//!             SettingsOp::Put(key, value) => state.apply(|map, cx| {
//!                 map.update(cx, key.clone(), |reg, cx| reg.write(cx, replica, time, *value))
//!             }),
//!             SettingsOp::Drop(key) => state.apply(|map, _| map.remove(key)),
//!         }
//!     }
//! }
//!
//! let op = prop_oneof![
//!     ("[ab]", any::<u32>()).prop_map(|(k, v)| SettingsOp::Put(k, v)),
//!     "[ab]".prop_map(SettingsOp::Drop),
//! ];
//! proptest!(config(), |(plan in schedule(op, 2..=5))| {
//!     assert_converges::<Settings, _>(&plan)?;
//! });
//! ```
//!
//! The number of cases comes from the `TRELLIS_PROPTEST_CASES` environment
//! variable (default 256); a soak run sets it to 100000.

mod laws;
mod schedule;
mod strategies;

pub use laws::{assert_codec_round_trip, assert_lattice_laws};
pub use schedule::{assert_converges, schedule, Operation, Schedule, Step};
pub use strategies::*;

use proptest::test_runner::Config;

/// The environment variable that sets the number of proptest cases.
pub const CASES_ENV: &str = "TRELLIS_PROPTEST_CASES";

/// How many cases each property runs: `TRELLIS_PROPTEST_CASES`, or 256.
pub fn cases() -> u32 {
    std::env::var(CASES_ENV)
        .ok()
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(256)
}

/// A proptest configuration running [`cases()`] cases.
pub fn config() -> Config {
    Config {
        cases: cases(),
        ..Config::default()
    }
}
