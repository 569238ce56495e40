//! # trellis-counter
//!
//! Strongly consistent counters for Trellis: stock levels and other counts
//! that must never go below a minimum. One Raft group
//! ([openraft](https://docs.rs/openraft/0.9.25)) of 1, 3 or 5 voter sites
//! holds every counter; any node accepts calls and forwards them to the
//! leader over the node's QUIC endpoint (ALPN `trellis-counter/1`).
//!
//! ```
//! use std::collections::BTreeMap;
//! use trellis_counter::{CounterConfig, CounterError, Counters};
//! use trellis_crdt::ReplicaId;
//! use trellis_net::{ClusterCa, Endpoint, NetConfig, ALPN_COUNTER};
//!
//! # let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
//! # runtime.block_on(async {
//! // One voter site; a real cluster lists 3 or 5, the same list on every node.
//! let ca = ClusterCa::generate("acme")?;
//! let mut builder = Endpoint::builder(ca.issue("berlin", ReplicaId(1))?, ca.trust(), NetConfig::default());
//! let incoming = builder.serve(ALPN_COUNTER)?;
//! let endpoint = builder.bind("127.0.0.1:0".parse()?)?;
//! let voters = BTreeMap::from([(ReplicaId(1), endpoint.local_addr())]);
//! let data_dir = std::env::temp_dir().join(format!("counter-doc-{}", std::process::id()));
//! let counters = Counters::start(CounterConfig::new(voters, &data_dir), endpoint, incoming).await?;
//!
//! counters.create("sku-42", 2, 0, None).await?;
//! // The order id is the idempotency key: a retry after a timeout is applied once.
//! let after = counters.decrement("sku-42", 2, Some("order-1001")).await?;
//! assert_eq!(after.value, 0);
//! match counters.decrement("sku-42", 1, Some("order-1002")).await {
//!     Err(CounterError::Insufficient { available, .. }) => assert_eq!(available, 0),
//!     other => panic!("sold stock that was not there: {other:?}"),
//! }
//! assert_eq!(counters.read("sku-42").await?.value, 0);
//! counters.shutdown().await;
//! # std::fs::remove_dir_all(&data_dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Guarantees
//!
//! - **Linearizable.** Changes commit through the Raft log; reads confirm
//!   leadership with a majority (read-index, no leases) before answering.
//! - **Never oversold.** A decrement is checked against the minimum when
//!   the leader applies it, in log order, so concurrent decrements from
//!   every site can never take a counter below its minimum.
//! - **Durable before acknowledged.** The log, the vote and the state
//!   machine live in redb; every write is fsynced before openraft (and so
//!   the caller) hears of it.
//! - **At most once with a key.** A change carrying an idempotency key is
//!   applied at most once while the key is remembered
//!   ([`DEDUPE_RETENTION`]); a retry answers the first outcome.
//! - **Bounded time.** Every call answers within
//!   [`CounterConfig::request_timeout`]; without a reachable majority it
//!   fails with [`CounterError::NoQuorum`].
//! - **Bounded log.** Snapshots every [`CounterConfig::snapshot_every`]
//!   entries purge the log; a restarted or new voter catches up from the
//!   snapshot.
//!
//! See `docs/counters.md` for the operator's view.
//!
//! ## Map
//!
//! - `service.rs`: [`Counters`], the handle the node calls, and the
//!   routing of calls to the leader. `leader.rs`: what the leader does
//!   with a call.
//! - `command.rs`: [`Operation`], [`Proposal`], [`Applied`];
//!   `state.rs`: [`CounterState`], the apply rule and the idempotency
//!   table.
//! - [`storage`]: the redb log store and state machine.
//! - `rpc.rs`, `network.rs`, `server.rs`: the `trellis-counter/1`
//!   messages, outgoing RPCs and the incoming server.
//! - `config.rs`: [`CounterConfig`]; `types.rs`: [`CounterRaft`];
//!   `error.rs`: [`CounterError`].

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
