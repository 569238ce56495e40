//! [`Core`]: the parts of a node's counter service shared by its public
//! handle and its RPC server, and how a node that leads handles a counter
//! call (commit through Raft, or read after a read-index check).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use openraft::{ChangeMembers, Membership, Raft};
use trellis_crdt::{wall_clock_millis, ReplicaId};
use trellis_net::ConnectionPool;

use crate::command::{Applied, Operation, Proposal, Rejection};
use crate::config::CounterConfig;
use crate::error::CounterError;
use crate::rpc::{ClientAnswer, ClientReply, ClientRequest, Members};
use crate::state::CounterState;
use crate::storage::SharedState;
use crate::types::{CounterRaft, PeerAddress};

/// One node's counter machinery.
pub(crate) struct Core {
    /// This node's id.
    pub(crate) id: u64,
    /// The node's Raft instance.
    pub(crate) raft: Raft<CounterRaft>,
    /// The applied state, read after read-index checks.
    pub(crate) state: Arc<SharedState>,
    /// Outgoing `trellis-counter/1` connections.
    pub(crate) pool: Arc<ConnectionPool>,
    /// The settings.
    pub(crate) config: CounterConfig,
    /// Set by [`Counters::shutdown`](crate::Counters::shutdown).
    pub(crate) stopped: AtomicBool,
}

impl Core {
    /// The leader this node believes in, with its address.
    pub(crate) fn leader(&self) -> Option<(u64, SocketAddr)> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let leader = metrics.current_leader?;
        let addr = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|node| node.addr)
            .or_else(|| self.config.voters.get(&ReplicaId(leader)).copied())?;
        Some((leader, addr))
    }

    /// Every other node that may know the leader: the members this node
    /// knows of and the configured voters.
    pub(crate) fn candidates(&self) -> Vec<(u64, SocketAddr)> {
        let mut all: BTreeMap<u64, SocketAddr> = self
            .config
            .voters
            .iter()
            .map(|(id, addr)| (id.0, *addr))
            .collect();
        let metrics = self.raft.metrics();
        for (id, node) in metrics.borrow().membership_config.membership().nodes() {
            all.insert(*id, node.addr);
        }
        all.remove(&self.id);
        all.into_iter().collect()
    }

    /// The membership as this node sees it.
    pub(crate) fn members(&self) -> Members {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        members_of(
            metrics.membership_config.membership(),
            metrics.current_leader,
        )
    }

    /// Handles a call as the leader; answers `NotLeader` if this node
    /// does not lead.
    pub(crate) async fn execute(&self, request: ClientRequest) -> ClientReply {
        match request {
            ClientRequest::Propose {
                operation,
                idempotency_key,
            } => self.propose(operation, idempotency_key).await,
            ClientRequest::Read { name } => {
                self.read(|state| {
                    state
                        .get(&name)
                        .map(ClientAnswer::Value)
                        .ok_or_else(|| CounterError::NotFound { name: name.clone() })
                })
                .await
            }
            ClientRequest::List => {
                self.read(|state| Ok(ClientAnswer::List(state.list())))
                    .await
            }
            ClientRequest::Members => {
                self.read(|_| Ok(ClientAnswer::Members(self.members())))
                    .await
            }
            ClientRequest::AddVoter { id, addr } => self.add_voter(id, addr).await,
            ClientRequest::RemoveVoter { id } => self.remove_voter(id).await,
        }
    }

    async fn propose(&self, operation: Operation, idempotency_key: Option<String>) -> ClientReply {
        let name = operation.name().to_owned();
        let key = idempotency_key.clone();
        let proposal = Proposal {
            operation,
            idempotency_key,
            proposed_at_ms: wall_clock_millis(),
        };
        match self.raft.client_write(proposal).await {
            Ok(response) => match response.data {
                Applied::Counter { outcome, .. } => ClientReply::Done(
                    outcome
                        .map(ClientAnswer::Value)
                        .map_err(|rejection| rejection_error(&name, key.as_deref(), rejection)),
                ),
                Applied::Internal => ClientReply::Unavailable(
                    "the state machine answered a counter operation with an internal result".into(),
                ),
            },
            Err(err) => write_failure(err),
        }
    }

    /// Confirms leadership with a quorum (read-index, no leases), waits
    /// until the state machine has applied the read index, then reads.
    async fn read(
        &self,
        read: impl FnOnce(&CounterState) -> Result<ClientAnswer, CounterError>,
    ) -> ClientReply {
        match self.raft.ensure_linearizable().await {
            Ok(_) => ClientReply::Done(read(&self.state.read())),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => {
                not_leader(forward)
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(quorum))) => {
                ClientReply::Unavailable(format!("the leader could not confirm a quorum: {quorum}"))
            }
            Err(RaftError::Fatal(fatal)) => stopped(&fatal),
        }
    }

    async fn add_voter(&self, id: ReplicaId, addr: SocketAddr) -> ClientReply {
        let node = PeerAddress { addr };
        if let Err(err) = self.raft.add_learner(id.0, node, true).await {
            return write_failure(err);
        }
        let voters = BTreeSet::from([id.0]);
        match self
            .raft
            .change_membership(ChangeMembers::AddVoterIds(voters), false)
            .await
        {
            Ok(response) => self.changed(response.membership.as_ref()),
            Err(err) => write_failure(err),
        }
    }

    async fn remove_voter(&self, id: ReplicaId) -> ClientReply {
        if let Some(forward) = self.forward_unless_leading() {
            return forward;
        }
        if !self.members().voters.contains_key(&id) {
            return ClientReply::Done(Err(CounterError::NotVoter { id: id.0 }));
        }
        let voters = BTreeSet::from([id.0]);
        match self
            .raft
            .change_membership(ChangeMembers::RemoveVoters(voters), false)
            .await
        {
            Ok(response) => self.changed(response.membership.as_ref()),
            Err(err) => write_failure(err),
        }
    }

    /// The answer to a committed membership change: the membership it
    /// committed (the metrics may not show it yet).
    fn changed(&self, membership: Option<&Membership<u64, PeerAddress>>) -> ClientReply {
        let members = match membership {
            Some(membership) => {
                // A leader that removed itself steps down.
                let leading = membership.voter_ids().any(|voter| voter == self.id);
                members_of(membership, leading.then_some(self.id))
            }
            None => self.members(),
        };
        ClientReply::Done(Ok(ClientAnswer::Members(members)))
    }

    /// `NotLeader` if the metrics say another node (or none) leads.
    fn forward_unless_leading(&self) -> Option<ClientReply> {
        match self.leader() {
            Some((leader, _)) if leader == self.id => None,
            leader => Some(ClientReply::NotLeader { leader }),
        }
    }
}

/// A membership as callers see it.
fn members_of(membership: &Membership<u64, PeerAddress>, leader: Option<u64>) -> Members {
    let address = |id: u64| {
        membership
            .get_node(&id)
            .map_or_else(|| PeerAddress::default().addr, |node| node.addr)
    };
    Members {
        leader: leader.map(ReplicaId),
        voters: membership
            .voter_ids()
            .map(|id| (ReplicaId(id), address(id)))
            .collect(),
        learners: membership
            .learner_ids()
            .map(|id| (ReplicaId(id), address(id)))
            .collect(),
    }
}

/// The reply for a failed Raft write.
fn write_failure(err: RaftError<u64, ClientWriteError<u64, PeerAddress>>) -> ClientReply {
    match err {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => not_leader(forward),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(err)) => {
            ClientReply::Done(Err(CounterError::Membership(err.to_string())))
        }
        RaftError::Fatal(fatal) => stopped(&fatal),
    }
}

/// The reply of a node whose Raft stopped: another node may still serve
/// the call, so this is not the call's final answer.
fn stopped(fatal: &openraft::error::Fatal<u64>) -> ClientReply {
    tracing::warn!(error = %fatal, "counter raft stopped");
    ClientReply::Unavailable(format!("the node's counter raft stopped: {fatal}"))
}

fn not_leader(forward: ForwardToLeader<u64, PeerAddress>) -> ClientReply {
    ClientReply::NotLeader {
        leader: forward
            .leader_id
            .zip(forward.leader_node.map(|node| node.addr)),
    }
}

/// The caller-facing error for a refused operation.
pub(crate) fn rejection_error(name: &str, key: Option<&str>, rejection: Rejection) -> CounterError {
    let name = name.to_owned();
    match rejection {
        Rejection::NotFound => CounterError::NotFound { name },
        Rejection::AlreadyExists { value } => CounterError::AlreadyExists { name, value },
        Rejection::Insufficient { available } => CounterError::Insufficient { name, available },
        Rejection::BelowMinimum { min } => CounterError::BelowMinimum { name, min },
        Rejection::Overflow => CounterError::Overflow { name },
        Rejection::KeyReused => CounterError::IdempotencyKeyReused {
            key: key.unwrap_or_default().to_owned(),
        },
    }
}
