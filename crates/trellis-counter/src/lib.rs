//! # trellis-counter
//!
//! Strongly consistent counters for Trellis.

#![forbid(unsafe_code)]

mod command;
mod config;
mod error;
mod leader;
mod network;
mod rpc;
mod server;
mod service;
mod state;
pub mod storage;
mod types;

pub use command::{
    validate_idempotency_key, validate_name, Applied, CounterValue, Operation, Outcome, Proposal,
    Rejection, MAX_IDEMPOTENCY_KEY_LEN, MAX_NAME_LEN,
};
pub use config::CounterConfig;
pub use error::CounterError;
pub use rpc::Members;
pub use service::{CounterStatus, Counters};
pub use state::{
    Changes, Counter, CounterState, DedupeRecord, DedupeRetention, StateImage, DEDUPE_RETENTION,
};
pub use types::{
    CounterLogId, CounterMembership, CounterRaft, CounterSnapshotMeta, CounterVote, LogEntry,
    PeerAddress, RaftStorageError,
};
