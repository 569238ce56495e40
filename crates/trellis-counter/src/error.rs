//! [`CounterError`]: everything a counter call can answer besides success.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a counter call failed.
///
/// The variants map onto HTTP answers: `InvalidRequest` is a 400,
/// `NotFound` a 404, `AlreadyExists`, `Insufficient`, `BelowMinimum`,
/// `Overflow` and `IdempotencyKeyReused` are 409s, `NoQuorum` and
/// `Stopped` are 503s, `NotVoter` a 404, the rest 500s.
///
/// After `NoQuorum` a **mutation's outcome is unknown**: it may have been
/// applied, or may still be. Retry it with the same idempotency key to
/// learn the outcome without applying it twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CounterError {
    /// The request itself is malformed (bad name, amount or key).
    #[error("invalid counter request: {0}")]
    InvalidRequest(String),
    /// The counter does not exist.
    #[error("counter {name:?} does not exist; create it first")]
    NotFound {
        /// The counter.
        name: String,
    },
    /// A create found the counter already there.
    #[error("counter {name:?} already exists (value {value}); use set or increment to change it")]
    AlreadyExists {
        /// The counter.
        name: String,
        /// Its current value.
        value: i64,
    },
    /// A decrement would take the counter below its minimum.
    #[error("insufficient: counter {name:?} has only {available} available above its minimum")]
    Insufficient {
        /// The counter.
        name: String,
        /// How much could be taken (value − min).
        available: i64,
    },
    /// A create or set asked for a value below the minimum.
    #[error("counter {name:?} cannot be set below its minimum {min}")]
    BelowMinimum {
        /// The counter.
        name: String,
        /// Its minimum.
        min: i64,
    },
    /// The result would not fit in a signed 64-bit integer.
    #[error("counter {name:?} would overflow a signed 64-bit integer; use a smaller amount")]
    Overflow {
        /// The counter.
        name: String,
    },
    /// The idempotency key was used before for a different operation.
    #[error(
        "idempotency key {key:?} was already used for a different operation; \
         use a fresh key for each distinct operation"
    )]
    IdempotencyKeyReused {
        /// The key.
        key: String,
    },
    /// No leader with a quorum answered within the request timeout: the
    /// call was bounded in time instead of hanging.
    #[error(
        "no quorum: no counter leader with a majority of voters answered within {waited:?} ({detail}); \
         check that a majority of the voter sites are running and reachable, then retry \
         (with the same idempotency key, if the call was a change)"
    )]
    NoQuorum {
        /// How long the call waited.
        waited: Duration,
        /// The last thing that went wrong.
        detail: String,
    },
    /// The voter to remove is not a voter.
    #[error("node {id} is not a voter of the counter group; `members` lists the voters")]
    NotVoter {
        /// The node.
        id: u64,
    },
    /// A membership change was refused.
    #[error("membership change refused: {0}")]
    Membership(String),
    /// The configuration is unusable.
    #[error("invalid counter configuration: {0}")]
    Config(String),
    /// Local storage failed.
    #[error(
        "counter storage failed: {0}; check the disk and the data directory, then restart the node"
    )]
    Storage(String),
    /// The network endpoint could not be used.
    #[error("counter network error: {0}")]
    Network(String),
    /// The counter service has stopped on this node.
    #[error("the counter service on this node has stopped; restart the node")]
    Stopped,
}
