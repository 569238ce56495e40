//! [`PeerConnection`]: an authenticated QUIC connection to one node.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use trellis_crdt::ReplicaId;

use crate::codes;
use crate::error::{FrameError, NetError};
use crate::frame;
use crate::protocol::protocol_text;

/// A mutually authenticated connection to the node [`peer`](Self::peer),
/// speaking the protocol [`protocol`](Self::protocol).
///
/// Cheap to clone; all clones share the connection. The peer id was read
/// from the peer's verified certificate, never from what the peer says.
/// The underlying [`quinn::Connection`] is available for anything not
/// wrapped here.
#[derive(Clone)]
pub struct PeerConnection {
    connection: quinn::Connection,
    peer: ReplicaId,
    protocol: Arc<[u8]>,
    max_frame_size: usize,
}

impl fmt::Debug for PeerConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerConnection")
            .field("peer", &self.peer)
            .field("protocol", &protocol_text(&self.protocol))
            .field("remote", &self.connection.remote_address())
            .finish()
    }
}

impl PeerConnection {
    pub(crate) fn new(
        connection: quinn::Connection,
        peer: ReplicaId,
        protocol: &[u8],
        max_frame_size: usize,
    ) -> PeerConnection {
        PeerConnection {
            connection,
            peer,
            protocol: protocol.into(),
            max_frame_size,
        }
    }

    /// The peer's node id, from its certificate.
    pub fn peer(&self) -> ReplicaId {
        self.peer
    }

    /// The negotiated ALPN protocol.
    pub fn protocol(&self) -> &[u8] {
        &self.protocol
    }

    /// The peer's UDP address.
    pub fn remote_address(&self) -> SocketAddr {
        self.connection.remote_address()
    }

    /// The largest frame payload this node accepts (from its
    /// [`NetConfig`](crate::NetConfig)).
    pub fn max_frame_size(&self) -> usize {
        self.max_frame_size
    }

    /// The underlying quinn connection.
    pub fn connection(&self) -> &quinn::Connection {
        &self.connection
    }

    /// Opens a bidirectional stream. The peer sees it only once something
    /// is written on it.
    pub async fn open_bi(&self) -> Result<(quinn::SendStream, quinn::RecvStream), NetError> {
        self.connection
            .open_bi()
            .await
            .map_err(|err| self.lost(err))
    }

    /// Waits for the peer to open a bidirectional stream.
    pub async fn accept_bi(&self) -> Result<(quinn::SendStream, quinn::RecvStream), NetError> {
        self.connection
            .accept_bi()
            .await
            .map_err(|err| self.lost(err))
    }

    /// Opens a unidirectional stream.
    pub async fn open_uni(&self) -> Result<quinn::SendStream, NetError> {
        self.connection
            .open_uni()
            .await
            .map_err(|err| self.lost(err))
    }

    /// Waits for the peer to open a unidirectional stream.
    pub async fn accept_uni(&self) -> Result<quinn::RecvStream, NetError> {
        self.connection
            .accept_uni()
            .await
            .map_err(|err| self.lost(err))
    }

    /// Sends one request frame on a new stream, finishes it, and reads one
    /// response frame: the shape of an RPC.
    ///
    /// There is no timeout here beyond the connection's idle timeout; wrap
    /// the call in `tokio::time::timeout` for a deadline.
    pub async fn request<Req, Resp>(&self, request: &Req) -> Result<Resp, NetError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let (mut send, mut recv) = self.open_bi().await?;
        let frame_err = |err: FrameError| NetError::Frame {
            peer: self.peer,
            source: err,
        };
        frame::write_frame(&mut send, request)
            .await
            .map_err(frame_err)?;
        // Finishing can only fail if the stream is already closed, which the
        // read below reports.
        let _ = send.finish();
        match self.read_frame(&mut recv).await.map_err(frame_err)? {
            Some(response) => Ok(response),
            None => Err(frame_err(FrameError::Truncated {
                expected: frame::HEADER_LEN as u64,
                got: 0,
            })),
        }
    }

    /// Reads one frame from `recv` with this node's frame size limit; see
    /// [`read_frame`](crate::read_frame).
    pub async fn read_frame<T: DeserializeOwned>(
        &self,
        recv: &mut quinn::RecvStream,
    ) -> Result<Option<T>, FrameError> {
        frame::read_frame_from(recv, self.max_frame_size, Some(self.peer)).await
    }

    /// Like [`read_frame`](Self::read_frame), also returning the frame's
    /// size on the wire (header included).
    pub async fn read_sized_frame<T: DeserializeOwned>(
        &self,
        recv: &mut quinn::RecvStream,
    ) -> Result<Option<(T, usize)>, FrameError> {
        frame::read_sized_frame_from(recv, self.max_frame_size, Some(self.peer)).await
    }

    /// Whether the connection has closed (by either side, or timed out).
    pub fn is_closed(&self) -> bool {
        self.connection.close_reason().is_some()
    }

    /// Waits until the connection closes and returns why.
    pub async fn closed(&self) -> quinn::ConnectionError {
        self.connection.closed().await
    }

    /// Closes the connection normally ([`codes::NORMAL`]).
    pub fn close(&self) {
        self.connection.close(codes::NORMAL, b"closed");
    }

    fn lost(&self, source: quinn::ConnectionError) -> NetError {
        NetError::ConnectionLost {
            peer: self.peer,
            source,
        }
    }
}
