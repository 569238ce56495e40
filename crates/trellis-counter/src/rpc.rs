//! The messages of the `trellis-counter/1` protocol.
//!
//! Each RPC is one bidirectional QUIC stream carrying one [`RpcRequest`]
//! frame and one [`RpcResponse`] frame back, through
//! [`PeerConnection::request`](trellis_net::PeerConnection::request), so
//! both are [`trellis_crdt::codec`] encodings with the transport's frame
//! size limit. Raft messages are openraft's own types; client requests are
//! calls forwarded from the node a caller reached to the leader.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use openraft::error::SnapshotMismatch;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use trellis_crdt::ReplicaId;

use crate::command::{CounterValue, Operation};
use crate::error::CounterError;
use crate::types::CounterRaft;

/// A request on one stream.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RpcRequest {
    /// Raft log replication and heartbeats.
    AppendEntries(AppendEntriesRequest<CounterRaft>),
    /// Raft elections.
    Vote(VoteRequest<u64>),
    /// One chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<CounterRaft>),
    /// A caller's request, forwarded to the node believed to lead.
    Client(ClientRequest),
}

/// The answer on the same stream.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RpcResponse {
    /// Answer to [`RpcRequest::AppendEntries`].
    AppendEntries(AppendEntriesResponse<u64>),
    /// Answer to [`RpcRequest::Vote`].
    Vote(VoteResponse<u64>),
    /// Answer to [`RpcRequest::InstallSnapshot`].
    InstallSnapshot(InstallSnapshotResponse<u64>),
    /// The snapshot chunk does not continue the snapshot being received;
    /// the sender restarts from offset 0.
    SnapshotMismatch(SnapshotMismatch),
    /// Answer to [`RpcRequest::Client`].
    Client(ClientReply),
    /// The receiver could not handle a Raft message (its Raft stopped).
    Failed(String),
}

/// A counter call as forwarded between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum ClientRequest {
    /// Apply an operation.
    Propose {
        /// The operation.
        operation: Operation,
        /// The caller's idempotency key.
        idempotency_key: Option<String>,
    },
    /// Read one counter, linearizably.
    Read {
        /// The counter.
        name: String,
    },
    /// Read every counter, linearizably.
    List,
    /// Add a voter (first as a learner that catches up).
    AddVoter {
        /// The new voter.
        id: ReplicaId,
        /// Its QUIC endpoint address.
        addr: SocketAddr,
    },
    /// Remove a voter.
    RemoveVoter {
        /// The voter.
        id: ReplicaId,
    },
    /// The membership as the leader sees it.
    Members,
}

/// What a node answers to a forwarded call.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ClientReply {
    /// The node led and handled the call.
    Done(Result<ClientAnswer, CounterError>),
    /// The node does not lead; the leader it knows of, if any.
    NotLeader {
        /// The leader's id and address.
        leader: Option<(u64, SocketAddr)>,
    },
    /// The node leads but could not finish (no quorum, shutting down).
    Unavailable(String),
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ClientAnswer {
    /// One counter after the call.
    Value(CounterValue),
    /// Every counter.
    List(Vec<CounterValue>),
    /// The membership.
    Members(Members),
}

/// The counter group's membership as its leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Members {
    /// The leader, if one is known.
    pub leader: Option<ReplicaId>,
    /// The voters and their addresses.
    pub voters: BTreeMap<ReplicaId, SocketAddr>,
    /// Nodes receiving the log without voting (voters being added).
    pub learners: BTreeMap<ReplicaId, SocketAddr>,
}
