//! The incoming side of `trellis-counter/1`: accepts connections from the
//! endpoint, reads one request per stream, answers it.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use trellis_net::PeerConnection;

use crate::leader::Core;
use crate::rpc::{ClientReply, RpcRequest, RpcResponse};

/// How long a peer may take to send its request once it opened a stream.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves every connection that arrives on `incoming` until the endpoint
/// closes or the task is aborted (which aborts the connection tasks too).
pub(crate) async fn serve(mut incoming: mpsc::Receiver<PeerConnection>, core: Arc<Core>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            connection = incoming.recv() => match connection {
                Some(connection) => {
                    connections.spawn(serve_connection(connection, core.clone()));
                }
                None => break,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    while connections.join_next().await.is_some() {}
}

/// Answers every stream the peer opens until the connection ends.
async fn serve_connection(connection: PeerConnection, core: Arc<Core>) {
    let mut streams = JoinSet::new();
    loop {
        tokio::select! {
            stream = connection.accept_bi() => match stream {
                Ok((send, recv)) => {
                    streams.spawn(serve_stream(connection.clone(), send, recv, core.clone()));
                }
                Err(err) => {
                    tracing::debug!(peer = %connection.peer(), error = %err, "counter connection ended");
                    break;
                }
            },
            Some(_) = streams.join_next(), if !streams.is_empty() => {}
        }
    }
}

/// Reads one request, handles it and writes the answer.
async fn serve_stream(
    connection: PeerConnection,
    mut send: trellis_net::quinn::SendStream,
    mut recv: trellis_net::quinn::RecvStream,
    core: Arc<Core>,
) {
    let peer = connection.peer();
    let request = match tokio::time::timeout(
        REQUEST_READ_TIMEOUT,
        connection.read_frame::<RpcRequest>(&mut recv),
    )
    .await
    {
        Ok(Ok(Some(request))) => request,
        Ok(Ok(None)) => return,
        Ok(Err(err)) => {
            tracing::warn!(%peer, error = %err, "dropping a counter stream with a bad request");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, timeout = ?REQUEST_READ_TIMEOUT, "dropping a counter stream: the request did not arrive in time");
            return;
        }
    };
    let response = handle(request, &core).await;
    if let Err(err) = trellis_net::write_frame(&mut send, &response).await {
        tracing::debug!(%peer, error = %err, "could not answer a counter request");
        return;
    }
    // The peer may already have gone; nothing to do then.
    let _ = send.finish();
}

/// Hands a request to Raft or to the leader logic.
async fn handle(request: RpcRequest, core: &Core) -> RpcResponse {
    match request {
        RpcRequest::AppendEntries(rpc) => match core.raft.append_entries(rpc).await {
            Ok(answer) => RpcResponse::AppendEntries(answer),
            Err(err) => RpcResponse::Failed(err.to_string()),
        },
        RpcRequest::Vote(rpc) => match core.raft.vote(rpc).await {
            Ok(answer) => RpcResponse::Vote(answer),
            Err(err) => RpcResponse::Failed(err.to_string()),
        },
        RpcRequest::InstallSnapshot(rpc) => match core.raft.install_snapshot(rpc).await {
            Ok(answer) => RpcResponse::InstallSnapshot(answer),
            Err(RaftError::APIError(InstallSnapshotError::SnapshotMismatch(mismatch))) => {
                RpcResponse::SnapshotMismatch(mismatch)
            }
            Err(err) => RpcResponse::Failed(err.to_string()),
        },
        RpcRequest::Client(request) => {
            let limit = core.config.request_timeout;
            match tokio::time::timeout(limit, core.execute(request)).await {
                Ok(reply) => RpcResponse::Client(reply),
                Err(_) => RpcResponse::Client(ClientReply::Unavailable(format!(
                    "the leader did not finish the request within {limit:?}"
                ))),
            }
        }
    }
}
