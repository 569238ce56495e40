//! [`Counters`]: the handle the node calls. It starts the Raft group
//! member, and routes every call to the leader (itself or over the
//! network) within the request timeout.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};
use openraft::Raft;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use trellis_crdt::ReplicaId;
use trellis_net::{ConnectionPool, Endpoint, PeerConnection, ALPN_COUNTER};

use crate::command::{validate_idempotency_key, validate_name, CounterValue, Operation};
use crate::config::CounterConfig;
use crate::error::CounterError;
use crate::leader::Core;
use crate::network::{call, CallError, NetworkFactory};
use crate::rpc::{ClientAnswer, ClientReply, ClientRequest, Members, RpcRequest, RpcResponse};
use crate::server;
use crate::state::DEDUPE_RETENTION;
use crate::storage::open_store;
use crate::types::PeerAddress;

/// The pause between attempts while no leader answers.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// One node's view of its Raft state, read locally without any network
/// round trip (for metrics and health checks; not linearizable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterStatus {
    /// This node.
    pub id: ReplicaId,
    /// The leader this node believes in.
    pub leader: Option<ReplicaId>,
    /// The current Raft term.
    pub term: u64,
    /// The index of the last log entry.
    pub last_log_index: Option<u64>,
    /// The index of the last applied entry.
    pub last_applied: Option<u64>,
    /// The last log index covered by the current snapshot.
    pub snapshot: Option<u64>,
    /// The last purged log index: entries up to it are gone from the log.
    pub purged: Option<u64>,
    /// The voters, as this node knows them.
    pub voters: Vec<ReplicaId>,
}

/// The strongly consistent counters, as seen from one node.
///
/// Cheap to clone. Every call may be made on any node, voter or not: it
/// runs on the leader (forwarded over `trellis-counter/1` when this node
/// does not lead) and returns within
/// [`CounterConfig::request_timeout`], with
/// [`CounterError::NoQuorum`] if no leader with a majority answered.
///
/// Mutations take an optional idempotency key: a call retried with the
/// same key is applied at most once and answers the first outcome
/// (see [`DEDUPE_RETENTION`](crate::DEDUPE_RETENTION) for how long keys
/// are kept). Without a key, a call whose outcome became unknown in
/// flight fails rather than being retried internally.
#[derive(Clone)]
pub struct Counters {
    core: Arc<Core>,
    server: Arc<ServerTask>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("id", &self.core.id)
            .finish()
    }
}

/// Aborts the RPC server when the last handle goes.
struct ServerTask(AbortHandle);

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Counters {
    /// Opens the store in `config.data_dir`, starts this node's Raft
    /// member and serves `trellis-counter/1` connections from `incoming`
    /// (the receiver [`EndpointBuilder::serve`](trellis_net::EndpointBuilder::serve)
    /// returned for [`ALPN_COUNTER`]).
    ///
    /// A node listed in `config.voters` whose store is empty initialises
    /// the group with those voters (every voter does; that is safe). A
    /// node outside the list starts as a bystander that forwards calls
    /// until it is added with [`add_voter`](Self::add_voter).
    pub async fn start(
        config: CounterConfig,
        endpoint: Endpoint,
        incoming: mpsc::Receiver<PeerConnection>,
    ) -> Result<Counters, CounterError> {
        config.validate()?;
        let raft_config = Arc::new(config.raft_config()?);
        std::fs::create_dir_all(&config.data_dir).map_err(|err| {
            CounterError::Storage(format!(
                "could not create {}: {err}",
                config.data_dir.display()
            ))
        })?;
        let (log, state_machine) = open_store(&config.data_dir, DEDUPE_RETENTION)?;
        let state = state_machine.shared();
        let pool = Arc::new(
            ConnectionPool::new(endpoint.clone(), ALPN_COUNTER)
                .map_err(|err| CounterError::Network(err.to_string()))?,
        );
        let id = endpoint.local_id().0;
        let network = NetworkFactory {
            local: id,
            pool: pool.clone(),
        };
        let raft = Raft::new(id, raft_config, network, log, state_machine)
            .await
            .map_err(|err| CounterError::Storage(err.to_string()))?;
        let core = Arc::new(Core {
            id,
            raft,
            state,
            pool,
            config,
            stopped: AtomicBool::new(false),
        });
        let server = tokio::spawn(server::serve(incoming, core.clone())).abort_handle();
        let counters = Counters {
            core,
            server: Arc::new(ServerTask(server)),
        };
        counters.initialize_if_voter().await?;
        Ok(counters)
    }

    async fn initialize_if_voter(&self) -> Result<(), CounterError> {
        let core = &self.core;
        if !core.config.voters.contains_key(&ReplicaId(core.id)) {
            return Ok(());
        }
        let initialized = core
            .raft
            .is_initialized()
            .await
            .map_err(|_| CounterError::Stopped)?;
        if initialized {
            return Ok(());
        }
        let voters: BTreeMap<u64, PeerAddress> = core
            .config
            .voters
            .iter()
            .map(|(id, addr)| (id.0, PeerAddress { addr: *addr }))
            .collect();
        match core.raft.initialize(voters).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(RaftError::APIError(err @ InitializeError::NotInMembers(_))) => {
                Err(CounterError::Config(err.to_string()))
            }
            Err(RaftError::Fatal(_)) => Err(CounterError::Stopped),
        }
    }

    /// This node's id.
    pub fn id(&self) -> ReplicaId {
        ReplicaId(self.core.id)
    }

    /// Creates the counter `name` at `initial`; decrements may never take
    /// it below `min` (0 for stock). Fails with
    /// [`CounterError::AlreadyExists`] if it exists.
    pub async fn create(
        &self,
        name: &str,
        initial: i64,
        min: i64,
        idempotency_key: Option<&str>,
    ) -> Result<CounterValue, CounterError> {
        let operation = Operation::Create {
            name: name.to_owned(),
            initial,
            min,
        };
        self.propose(operation, idempotency_key).await
    }

    /// Adds `by` (at least 1) and answers the value after it.
    pub async fn increment(
        &self,
        name: &str,
        by: i64,
        idempotency_key: Option<&str>,
    ) -> Result<CounterValue, CounterError> {
        let operation = Operation::Increment {
            name: name.to_owned(),
            by,
        };
        self.propose(operation, idempotency_key).await
    }

    /// Takes `by` (at least 1) if the value stays at or above the
    /// minimum, decided when the leader applies it; otherwise fails with
    /// [`CounterError::Insufficient`] carrying the amount available.
    pub async fn decrement(
        &self,
        name: &str,
        by: i64,
        idempotency_key: Option<&str>,
    ) -> Result<CounterValue, CounterError> {
        let operation = Operation::Decrement {
            name: name.to_owned(),
            by,
        };
        self.propose(operation, idempotency_key).await
    }

    /// Replaces the value (at least the minimum).
    pub async fn set(
        &self,
        name: &str,
        value: i64,
        idempotency_key: Option<&str>,
    ) -> Result<CounterValue, CounterError> {
        let operation = Operation::Set {
            name: name.to_owned(),
            value,
        };
        self.propose(operation, idempotency_key).await
    }

    /// Reads one counter, linearizably: the leader confirms with a
    /// majority that it still leads (read-index) before answering.
    pub async fn read(&self, name: &str) -> Result<CounterValue, CounterError> {
        validate_name(name)?;
        match self
            .submit(ClientRequest::Read {
                name: name.to_owned(),
            })
            .await?
        {
            ClientAnswer::Value(value) => Ok(value),
            other => Err(wrong_answer(&other)),
        }
    }

    /// Every counter, sorted by name, linearizably.
    pub async fn list(&self) -> Result<Vec<CounterValue>, CounterError> {
        match self.submit(ClientRequest::List).await? {
            ClientAnswer::List(values) => Ok(values),
            other => Err(wrong_answer(&other)),
        }
    }

    /// The voters and learners as the leader sees them.
    pub async fn members(&self) -> Result<Members, CounterError> {
        self.membership(ClientRequest::Members).await
    }

    /// Adds the node `id`, listening at `addr`, as a voter: it first
    /// joins as a learner and catches up (from a snapshot if the log was
    /// purged), then becomes a voter. The node must be running its
    /// counter service. Adding a voter that exists changes nothing.
    pub async fn add_voter(
        &self,
        id: ReplicaId,
        addr: SocketAddr,
    ) -> Result<Members, CounterError> {
        self.membership(ClientRequest::AddVoter { id, addr }).await
    }

    /// Removes the voter `id` from the group. Fails with
    /// [`CounterError::NotVoter`] if it is not one, and with
    /// [`CounterError::Membership`] if it is the last one.
    pub async fn remove_voter(&self, id: ReplicaId) -> Result<Members, CounterError> {
        self.membership(ClientRequest::RemoveVoter { id }).await
    }

    /// This node's local Raft view (no network round trip).
    pub fn status(&self) -> CounterStatus {
        let metrics = self.core.raft.metrics();
        let metrics = metrics.borrow();
        CounterStatus {
            id: ReplicaId(self.core.id),
            leader: metrics.current_leader.map(ReplicaId),
            term: metrics.current_term,
            last_log_index: metrics.last_log_index,
            last_applied: metrics.last_applied.map(|id| id.index),
            snapshot: metrics.snapshot.map(|id| id.index),
            purged: metrics.purged.map(|id| id.index),
            voters: metrics
                .membership_config
                .membership()
                .voter_ids()
                .map(ReplicaId)
                .collect(),
        }
    }

    /// Stops this node's Raft member and RPC server. Calls on this handle
    /// (and its clones) then fail with [`CounterError::Stopped`].
    pub async fn shutdown(&self) {
        self.core.stopped.store(true, Ordering::SeqCst);
        self.server.0.abort();
        if let Err(err) = self.core.raft.shutdown().await {
            tracing::warn!(error = %err, "the counter raft task ended abnormally");
        }
    }

    async fn membership(&self, request: ClientRequest) -> Result<Members, CounterError> {
        match self.submit(request).await? {
            ClientAnswer::Members(members) => Ok(members),
            other => Err(wrong_answer(&other)),
        }
    }

    async fn propose(
        &self,
        operation: Operation,
        idempotency_key: Option<&str>,
    ) -> Result<CounterValue, CounterError> {
        operation.validate()?;
        if let Some(key) = idempotency_key {
            validate_idempotency_key(key)?;
        }
        let request = ClientRequest::Propose {
            operation,
            idempotency_key: idempotency_key.map(str::to_owned),
        };
        match self.submit(request).await? {
            ClientAnswer::Value(value) => Ok(value),
            other => Err(wrong_answer(&other)),
        }
    }

    /// Runs `request` on the leader, retrying (safely) until an answer or
    /// the deadline.
    async fn submit(&self, request: ClientRequest) -> Result<ClientAnswer, CounterError> {
        let core = &self.core;
        let budget = core.config.request_timeout;
        let deadline = Instant::now() + budget;
        // A change without an idempotency key must not be sent twice once
        // its fate is unknown.
        let retry_is_safe = !matches!(
            &request,
            ClientRequest::Propose {
                idempotency_key: None,
                ..
            } | ClientRequest::RemoveVoter { .. }
        );
        let mut hint: Option<(u64, SocketAddr)> = None;
        let mut last_problem = String::from("no leader has been elected");
        let mut probe = 0usize;
        loop {
            if self.core.stopped.load(Ordering::SeqCst) {
                return Err(CounterError::Stopped);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(CounterError::NoQuorum {
                    waited: budget,
                    detail: last_problem,
                });
            }
            let remaining = deadline - now;
            let target = hint.take().or_else(|| core.leader());
            let attempt = match target {
                Some((leader, _)) if leader == core.id => {
                    match tokio::time::timeout(remaining, core.execute(request.clone())).await {
                        Ok(reply) => Attempt::Reply(reply),
                        Err(_) => Attempt::Unknown(
                            "this node leads but could not commit the request with a majority in time"
                                .into(),
                        ),
                    }
                }
                Some((leader, addr)) => {
                    // Leave time for a second attempt if this leader died
                    // holding the request.
                    let limit = remaining.min(budget / 2);
                    self.forward(leader, addr, &request, limit).await
                }
                None => {
                    let candidates = core.candidates();
                    if candidates.is_empty() {
                        Attempt::NotSent("no other counter node is known".into())
                    } else {
                        let (peer, addr) = candidates[probe % candidates.len()];
                        probe += 1;
                        // A dead candidate must not eat the whole budget.
                        let limit = remaining.min(budget / 4);
                        self.forward(peer, addr, &request, limit).await
                    }
                }
            };
            match attempt {
                Attempt::Reply(ClientReply::Done(result)) => return result,
                Attempt::Reply(ClientReply::NotLeader { leader }) => {
                    let target_id = target.map(|(id, _)| id);
                    match leader {
                        Some(next) if Some(next.0) != target_id => hint = Some(next),
                        _ => {
                            last_problem = "no leader has been elected".into();
                            pause(deadline).await;
                        }
                    }
                }
                Attempt::Reply(ClientReply::Unavailable(problem)) | Attempt::Unknown(problem) => {
                    if !retry_is_safe {
                        return Err(CounterError::NoQuorum {
                            waited: budget
                                .saturating_sub(deadline.saturating_duration_since(Instant::now())),
                            detail: format!(
                                "{problem}; the change may or may not have been applied, and it \
                                 carries no idempotency key, so it was not retried"
                            ),
                        });
                    }
                    last_problem = problem;
                    pause(deadline).await;
                }
                Attempt::NotSent(problem) => {
                    last_problem = problem;
                    pause(deadline).await;
                }
            }
        }
    }

    /// Sends `request` to `peer` and classifies what came back.
    async fn forward(
        &self,
        peer: u64,
        addr: SocketAddr,
        request: &ClientRequest,
        limit: Duration,
    ) -> Attempt {
        let rpc = RpcRequest::Client(request.clone());
        match call(&self.core.pool, peer, addr, &rpc, limit).await {
            Ok(RpcResponse::Client(reply)) => Attempt::Reply(reply),
            Ok(other) => Attempt::Unknown(format!(
                "node {peer} answered a counter call with the wrong message: {other:?}"
            )),
            Err(err @ CallError::Unreachable(_)) => {
                Attempt::NotSent(format!("node {peer} is unreachable: {err}"))
            }
            Err(err) => Attempt::Unknown(format!("node {peer} did not answer: {err}")),
        }
    }
}

/// How one attempt to reach the leader went.
enum Attempt {
    /// A node answered.
    Reply(ClientReply),
    /// The request never left this node.
    NotSent(String),
    /// The request may have reached a leader; its fate is unknown.
    Unknown(String),
}

/// Sleeps a little, never past the deadline.
async fn pause(deadline: Instant) {
    let wake = (Instant::now() + RETRY_PAUSE).min(deadline);
    tokio::time::sleep_until(wake).await;
}

fn wrong_answer(answer: &ClientAnswer) -> CounterError {
    CounterError::Network(format!(
        "the leader answered with the wrong kind of result: {answer:?}; \
         are all nodes running the same version?"
    ))
}
