//! # trellis-crdt
//!
//! Delta-state CRDTs for Trellis, usable on their own: causal contexts, a
//! hybrid logical clock, registers, counters, sets, flags, maps, and the
//! [`Record`] that the Trellis engine replicates, with a deterministic
//! codec and blake3 digests. There is no I/O, no async runtime and no
//! global state.
//!
//! Every type is a [`Lattice`]: state only changes by [`Lattice::merge`],
//! which is idempotent, commutative and associative. Mutators return a
//! *delta*, itself a valid state, that can be shipped and merged anywhere.
//!
//! ```
//! use serde_json::json;
//! use trellis_crdt::{Lattice, Op, FieldPath, Record, ReplicaId, Timestamp};
//!
//! let (berlin, lisbon) = (ReplicaId(1), ReplicaId(2));
//! let mut a = Record::from_json(&json!({"name": "Ada", "stage": "new"}), berlin, Timestamp(1))?;
//! let mut b = a.clone();
//!
//! // Concurrent edits at two sites.
//! let stage = FieldPath::top("stage")?;
//! let delta_a = a.apply(&Op::Set { path: stage.clone(), value: "qualified".into() }, berlin, Timestamp(5))?;
//! let delta_b = b.apply(&Op::Increment { path: FieldPath::top("visits")?, by: 1 }, lisbon, Timestamp(4))?;
//!
//! // Exchange deltas, in any order, any number of times.
//! a.merge(delta_b);
//! b.merge(delta_a.clone());
//! b.merge(delta_a);
//! assert_eq!(a, b);
//! assert_eq!(a.digest(), b.digest());
//! assert_eq!(a.to_json(), json!({"name": "Ada", "stage": "qualified", "visits": 1}));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The types compose: a [`Causal`] wraps a [`DotStore`] (such as
//! [`AwSet`], [`MvReg`], [`EwFlag`], [`ResetCounter`], or an [`OrMap`] of
//! any of them) with its [`CausalContext`]. [`GCounter`] and [`PnCounter`]
//! are plain lattices. With the `proptest` feature, the `testing` module
//! checks the lattice laws and convergence of your own compositions.
//!
//! See `docs/crdt.md` in the repository for each type's semantics and what
//! wins when operations are concurrent.

#![forbid(unsafe_code)]

mod atom;
mod causal;
pub mod codec;
mod context;
mod counter;
mod digest;
mod dotstore;
mod field;
mod flag;
mod hlc;
pub mod json;
mod lattice;
mod map;
mod path;
mod record;
mod register;
mod replica;
mod reset_counter;
mod set;
#[cfg(feature = "proptest")]
pub mod testing;

pub use atom::{Atom, F64};
pub use causal::Causal;
pub use codec::DecodeError;
pub use context::CausalContext;
pub use counter::{GCounter, PnCounter};
pub use digest::Digest;
pub use dotstore::{DotFun, DotMap, DotSet, DotStore};
pub use field::{Field, FieldKind};
pub use flag::EwFlag;
pub use hlc::{wall_clock_millis, ClockSkewError, HybridClock, Timestamp};
pub use lattice::Lattice;
pub use map::OrMap;
pub use path::{FieldPath, PathError, MAX_DEPTH};
pub use record::{Fields, Op, Record, RecordError};
pub use register::{MvReg, Stamped};
pub use replica::{Dot, ReplicaId, MAX_COUNTER};
pub use reset_counter::{ResetCounter, Totals};
pub use set::AwSet;
