//! What goes into the Raft log ([`Proposal`]) and what comes out of the
//! state machine ([`Applied`]).
//!
//! These types are replicated, so their encoding (through
//! [`trellis_crdt::codec`]) is part of the counter protocol.

use serde::{Deserialize, Serialize};

use crate::error::CounterError;

/// The longest counter name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// The longest idempotency key accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;

/// A change to one counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operation {
    /// Creates `name` with the value `initial`; the value may never be
    /// taken below `min` by a decrement.
    Create {
        /// The counter.
        name: String,
        /// Its first value; at least `min`.
        initial: i64,
        /// The lowest value decrements may leave.
        min: i64,
    },
    /// Adds `by` (positive) to the value.
    Increment {
        /// The counter.
        name: String,
        /// How much to add; at least 1.
        by: i64,
    },
    /// Takes `by` (positive) from the value if the result stays at or
    /// above the counter's minimum.
    Decrement {
        /// The counter.
        name: String,
        /// How much to take; at least 1.
        by: i64,
    },
    /// Replaces the value (which must be at least the minimum).
    Set {
        /// The counter.
        name: String,
        /// The new value.
        value: i64,
    },
}

impl Operation {
    /// The counter the operation changes.
    pub fn name(&self) -> &str {
        match self {
            Operation::Create { name, .. }
            | Operation::Increment { name, .. }
            | Operation::Decrement { name, .. }
            | Operation::Set { name, .. } => name,
        }
    }

    /// Checks what can be checked without the state: the name and the
    /// amount. The rest (existence, minimum, overflow) is decided when the
    /// operation is applied.
    pub fn validate(&self) -> Result<(), CounterError> {
        validate_name(self.name())?;
        match self {
            Operation::Increment { by, .. } | Operation::Decrement { by, .. } if *by <= 0 => Err(
                CounterError::InvalidRequest(format!("the amount must be at least 1, got {by}")),
            ),
            _ => Ok(()),
        }
    }
}

/// Checks a counter name: 1 to [`MAX_NAME_LEN`] bytes, no control
/// characters.
pub fn validate_name(name: &str) -> Result<(), CounterError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(CounterError::InvalidRequest(format!(
            "a counter name must be 1 to {MAX_NAME_LEN} bytes long, got {} bytes",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(CounterError::InvalidRequest(format!(
            "the counter name {name:?} contains control characters; use printable text"
        )));
    }
    Ok(())
}

/// Checks an idempotency key: 1 to [`MAX_IDEMPOTENCY_KEY_LEN`] bytes.
pub fn validate_idempotency_key(key: &str) -> Result<(), CounterError> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(CounterError::InvalidRequest(format!(
            "an idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} bytes long, got {} bytes",
            key.len()
        )));
    }
    Ok(())
}

/// One entry of the Raft log: an operation, the caller's idempotency key
/// and the proposing leader's wall clock (used only to age out
/// idempotency keys, see [`DedupeRetention`](crate::DedupeRetention)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The change.
    pub operation: Operation,
    /// When set, the operation is applied at most once per key: a second
    /// proposal with the same key returns the first one's outcome.
    pub idempotency_key: Option<String>,
    /// Milliseconds since the Unix epoch on the leader that proposed it.
    pub proposed_at_ms: u64,
}

/// A counter and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterValue {
    /// The counter's name.
    pub name: String,
    /// Its value.
    pub value: i64,
    /// The lowest value decrements may leave.
    pub min: i64,
}

/// Why the state machine refused an operation. Deterministic: every
/// replica refuses the same operation for the same reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// The counter does not exist.
    NotFound,
    /// `Create` of a counter that exists; carries its value.
    AlreadyExists {
        /// The existing counter's value.
        value: i64,
    },
    /// A decrement would take the value below the minimum; `available`
    /// is how much could be taken (value − min, never negative).
    Insufficient {
        /// How much a decrement may take right now.
        available: i64,
    },
    /// `Create` or `Set` with a value below the minimum.
    BelowMinimum {
        /// The counter's minimum.
        min: i64,
    },
    /// The result would not fit in an `i64`.
    Overflow,
    /// The idempotency key was already used for a different operation.
    KeyReused,
}

/// The outcome of one operation: the counter after it, or why it was
/// refused.
pub type Outcome = Result<CounterValue, Rejection>;

/// What applying one log entry produced (openraft's response type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// A counter operation.
    Counter {
        /// Its outcome.
        outcome: Outcome,
        /// True when the idempotency key had been seen: nothing was
        /// applied and `outcome` is the original one.
        replayed: bool,
    },
    /// A blank or membership entry: nothing for callers.
    Internal,
}
