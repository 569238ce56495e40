//! Outgoing Raft RPCs over trellis-net: openraft's
//! [`RaftNetworkFactory`] and [`RaftNetwork`] on a [`ConnectionPool`] for
//! [`ALPN_COUNTER`](trellis_net::ALPN_COUNTER), one stream per RPC, each
//! bounded by the deadline openraft gives.

// openraft's `RPCError` is over 200 bytes and is what its trait returns.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, RPCTypes, RaftNetwork, RaftNetworkFactory};
use trellis_crdt::ReplicaId;
use trellis_net::{ConnectionPool, NetError};

use crate::rpc::{RpcRequest, RpcResponse};
use crate::types::{CounterRaft, PeerAddress};

/// Why one RPC to a peer failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// No connection could be had (down, refused, backing off).
    Unreachable(NetError),
    /// The stream failed or the answer did not decode.
    Network(NetError),
    /// No answer before the deadline.
    Timeout(Duration),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(err) | CallError::Network(err) => err.fmt(f),
            CallError::Timeout(after) => write!(f, "no answer within {after:?}"),
        }
    }
}

/// Sends one request to `peer` at `addr` and waits at most `ttl` for the
/// answer.
pub(crate) async fn call(
    pool: &ConnectionPool,
    peer: u64,
    addr: SocketAddr,
    request: &RpcRequest,
    ttl: Duration,
) -> Result<RpcResponse, CallError> {
    let exchange = async {
        let connection = pool
            .get(ReplicaId(peer), addr)
            .await
            .map_err(CallError::Unreachable)?;
        connection
            .request::<RpcRequest, RpcResponse>(request)
            .await
            .map_err(CallError::Network)
    };
    tokio::time::timeout(ttl, exchange)
        .await
        .map_err(|_| CallError::Timeout(ttl))?
}

/// Makes a [`PeerClient`] per target for openraft.
#[derive(Debug, Clone)]
pub(crate) struct NetworkFactory {
    /// This node's id, for timeout reports.
    pub(crate) local: u64,
    /// Outgoing `trellis-counter/1` connections.
    pub(crate) pool: Arc<ConnectionPool>,
}

impl RaftNetworkFactory<CounterRaft> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &PeerAddress) -> PeerClient {
        PeerClient {
            local: self.local,
            target,
            addr: node.addr,
            pool: self.pool.clone(),
        }
    }
}

/// Sends Raft RPCs to one peer.
#[derive(Debug)]
pub(crate) struct PeerClient {
    local: u64,
    target: u64,
    addr: SocketAddr,
    pool: Arc<ConnectionPool>,
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<u64, PeerAddress, RaftError<u64, E>>>;

impl PeerClient {
    /// One RPC with openraft's error mapping; `pick` takes the expected
    /// answer out of the response.
    async fn rpc<T, E>(
        &self,
        action: RPCTypes,
        request: RpcRequest,
        option: &RPCOption,
        pick: impl FnOnce(RpcResponse) -> Result<T, RPCError<u64, PeerAddress, RaftError<u64, E>>>,
    ) -> RpcResult<T, E>
    where
        E: std::error::Error,
    {
        let ttl = option.hard_ttl();
        match call(&self.pool, self.target, self.addr, &request, ttl).await {
            Ok(response) => pick(response),
            Err(CallError::Unreachable(err)) => Err(RPCError::Unreachable(Unreachable::new(&err))),
            Err(CallError::Network(err)) => Err(RPCError::Network(NetworkError::new(&err))),
            Err(CallError::Timeout(timeout)) => Err(RPCError::Timeout(Timeout {
                action,
                id: self.local,
                target: self.target,
                timeout,
            })),
        }
    }
}

/// The error for an answer of the wrong kind or a remote failure.
fn unexpected<E: std::error::Error>(
    response: RpcResponse,
) -> RPCError<u64, PeerAddress, RaftError<u64, E>> {
    let message = match response {
        RpcResponse::Failed(reason) => format!("the peer could not handle the request: {reason}"),
        other => format!("the peer answered with the wrong message: {other:?}"),
    };
    RPCError::Network(NetworkError::new(&AnyError::error(message)))
}

impl RaftNetwork<CounterRaft> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<CounterRaft>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>> {
        self.rpc(
            RPCTypes::AppendEntries,
            RpcRequest::AppendEntries(rpc),
            &option,
            |response| match response {
                RpcResponse::AppendEntries(answer) => Ok(answer),
                other => Err(unexpected(other)),
            },
        )
        .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<CounterRaft>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        let target = self.target;
        self.rpc(
            RPCTypes::InstallSnapshot,
            RpcRequest::InstallSnapshot(rpc),
            &option,
            |response| match response {
                RpcResponse::InstallSnapshot(answer) => Ok(answer),
                RpcResponse::SnapshotMismatch(mismatch) => {
                    Err(RPCError::RemoteError(RemoteError::new(
                        target,
                        RaftError::APIError(InstallSnapshotError::SnapshotMismatch(mismatch)),
                    )))
                }
                other => Err(unexpected(other)),
            },
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>> {
        self.rpc(
            RPCTypes::Vote,
            RpcRequest::Vote(rpc),
            &option,
            |response| match response {
                RpcResponse::Vote(answer) => Ok(answer),
                other => Err(unexpected(other)),
            },
        )
        .await
    }
}
