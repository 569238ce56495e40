//! The crate's error types: one for certificates and files, one for the
//! endpoint and connections, one for frames.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use trellis_crdt::{DecodeError, ReplicaId};

/// Why a certificate, key or PEM file could not be made, read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// Key or certificate generation failed inside `rcgen`.
    #[error("could not generate the {what}: {reason}")]
    Generate {
        /// What was being generated ("cluster CA certificate", ...).
        what: &'static str,
        /// The underlying error.
        reason: String,
    },
    /// A cluster or site name is unusable in a certificate.
    #[error("invalid {what} {name:?}: {reason}")]
    InvalidName {
        /// "cluster name" or "site name".
        what: &'static str,
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The text holds no PEM block of the expected kind, or a broken one.
    #[error(
        "could not read the {what} from PEM: {reason}; expected a `-----BEGIN {label}-----` block"
    )]
    Pem {
        /// What was being read ("CA certificate", "node private key", ...).
        what: &'static str,
        /// The PEM label expected ("CERTIFICATE", "PRIVATE KEY").
        label: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The DER inside the PEM is not a certificate we can parse.
    #[error("the {what} is not a valid X.509 certificate: {reason}")]
    Parse {
        /// What was being parsed.
        what: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// The private key could not be loaded.
    #[error("the {what} is not a usable private key: {reason}; pass the PKCS#8 key written by `trellis cert`")]
    Key {
        /// What was being loaded.
        what: &'static str,
        /// The underlying error.
        reason: String,
    },
    /// A certificate passed as the cluster CA is not a CA certificate.
    #[error(
        "the CA certificate {subject:?} is not a certificate authority (basicConstraints cA is not set); \
         pass the cluster CA certificate created by `trellis cert ca`, not a node certificate"
    )]
    NotACa {
        /// The certificate's subject, for the operator.
        subject: String,
    },
    /// A private key does not match the certificate it was loaded with.
    #[error(
        "the private key does not belong to the {what}; \
         pass the key file that was generated together with that certificate"
    )]
    KeyMismatch {
        /// Which certificate ("cluster CA certificate", "node certificate").
        what: &'static str,
    },
    /// The certificate carries no node id.
    #[error(
        "the certificate names no Trellis node: expected exactly one DNS name \
         `<16 lowercase hex digits>.node.trellis`; issue node certificates with `trellis cert node`"
    )]
    NoNodeId,
    /// The certificate carries more than one node id.
    #[error(
        "the certificate names several Trellis nodes ({names:?}); a node certificate must name \
         exactly one, re-issue it with `trellis cert node`"
    )]
    AmbiguousNodeId {
        /// The node names found.
        names: Vec<String>,
    },
    /// Reading a file failed.
    #[error("could not read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing a file failed.
    #[error("could not write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Saving would overwrite an existing file.
    #[error(
        "{} already exists; refusing to overwrite it (move it away first if you really mean to replace it)",
        path.display()
    )]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The contents of a file were unusable.
    #[error("{}: {source}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What was wrong with its contents.
        source: Box<CertError>,
    },
}

/// Why the endpoint could not be set up or a connection could not be
/// made or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A [`NetConfig`](crate::NetConfig) value is out of range.
    #[error("invalid network configuration: {0}")]
    Config(String),
    /// An ALPN protocol name is unusable or registered twice.
    #[error("invalid protocol {protocol:?}: {reason}")]
    Protocol {
        /// The protocol name, lossily as text.
        protocol: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The endpoint was created outside a tokio runtime.
    #[error("the QUIC endpoint needs a tokio runtime: create it from inside one (e.g. in `#[tokio::main]`)")]
    NoRuntime,
    /// The UDP socket could not be bound.
    #[error("could not bind UDP {addr}: {source}; is another process using this port?")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TLS configuration could not be built from this node's identity.
    #[error("could not set up TLS: {0}")]
    Tls(String),
    /// The connection attempt could not even start.
    #[error("could not connect to {addr}: {source}")]
    Connect {
        /// The peer address.
        addr: SocketAddr,
        /// quinn's reason.
        source: quinn::ConnectError,
    },
    /// The QUIC/TLS handshake failed (certificate refused, wrong node,
    /// unknown protocol, peer gone).
    #[error(
        "handshake with {addr} failed: {source}; check that both nodes' certificates are issued \
         by this cluster's CA, that the address belongs to the expected node, and that the peer \
         serves this protocol"
    )]
    Handshake {
        /// The peer address.
        addr: SocketAddr,
        /// quinn's reason.
        source: quinn::ConnectionError,
    },
    /// The handshake did not finish in time.
    #[error(
        "no answer from {addr} within {after:?}; check that the peer is running and that UDP \
         traffic reaches it"
    )]
    ConnectTimeout {
        /// The peer address.
        addr: SocketAddr,
        /// The connect timeout in force.
        after: Duration,
    },
    /// The peer presented no certificate (cannot happen with mutual TLS
    /// unless the connection is still handshaking).
    #[error("the peer presented no certificate; only mutually authenticated connections carry a node id")]
    NoPeerCertificate,
    /// The peer's certificate does not carry a usable node id.
    #[error("the peer's certificate carries no usable node id: {0}")]
    PeerIdentity(#[source] CertError),
    /// The peer's certificate names another node than the one dialed.
    /// (TLS name verification already refuses this; kept as a second check.)
    #[error("expected node {expected} but the peer's certificate names node {found}; check the peer's address")]
    UnexpectedPeer {
        /// The node dialed.
        expected: ReplicaId,
        /// The node the certificate names.
        found: ReplicaId,
    },
    /// A frame on a request stream could not be written, read or decoded.
    #[error("request to {peer} failed: {source}")]
    Frame {
        /// The peer.
        peer: ReplicaId,
        /// What went wrong with the frame.
        source: FrameError,
    },
    /// The connection pool is backing off from a peer after failures.
    #[error(
        "peer {peer} is down after {failures} failed attempt(s) (last: {last_error}); \
         the next attempt is allowed in {retry_in:?}"
    )]
    PeerDown {
        /// The peer.
        peer: ReplicaId,
        /// Consecutive failures so far.
        failures: u32,
        /// How long until the next attempt is allowed.
        retry_in: Duration,
        /// The last failure, as text.
        last_error: String,
    },
    /// An established connection was lost or closed.
    #[error("connection to {peer} lost: {source}")]
    ConnectionLost {
        /// The peer.
        peer: ReplicaId,
        /// quinn's reason.
        source: quinn::ConnectionError,
    },
}

/// Why a frame could not be read, decoded or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame's version byte names a framing this build does not read.
    #[error(
        "unsupported frame version {found} (this build reads version {supported}); \
         upgrade this node to talk to newer peers"
    )]
    UnsupportedVersion {
        /// The version byte received.
        found: u8,
        /// The version this build reads and writes.
        supported: u8,
    },
    /// The length prefix exceeds the receiver's limit.
    #[error(
        "frame of {len} bytes exceeds the limit of {limit} bytes; raise `max_frame_size` on the \
         receiving node if such frames are legitimate"
    )]
    TooLarge {
        /// The claimed payload length.
        len: u64,
        /// The limit in force.
        limit: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("the stream ended in the middle of a frame ({got} of {expected} bytes)")]
    Truncated {
        /// Bytes the frame needed.
        expected: u64,
        /// Bytes that arrived.
        got: u64,
    },
    /// The payload is not a valid encoding of the expected type.
    #[error("malformed frame payload: {0}")]
    Decode(#[source] DecodeError),
    /// Reading from the stream failed (reset by the peer, connection lost).
    #[error("could not read a frame: {0}")]
    Read(#[source] quinn::ReadError),
    /// Writing to the stream failed (stopped by the peer, connection lost).
    #[error("could not write a frame: {0}")]
    Write(#[source] quinn::WriteError),
    /// A [`FrameDecoder`](crate::FrameDecoder) was used after it reported
    /// an error; the stream it decodes must be closed.
    #[error("the frame decoder failed earlier ({0}); close the stream and open a new one")]
    Failed(Box<FrameError>),
}

impl FrameError {
    /// The application error code a reader sends to the peer (as
    /// `STOP_SENDING`) when it drops a stream because of this error, or
    /// `None` when the stream is already gone (read errors).
    pub fn stream_code(&self) -> Option<quinn::VarInt> {
        use crate::codes;
        match self {
            FrameError::UnsupportedVersion { .. } => Some(codes::UNSUPPORTED_FRAME_VERSION),
            FrameError::TooLarge { .. } => Some(codes::FRAME_TOO_LARGE),
            FrameError::Truncated { .. } | FrameError::Decode(_) => Some(codes::MALFORMED_FRAME),
            FrameError::Failed(inner) => inner.stream_code(),
            FrameError::Read(_) | FrameError::Write(_) => None,
        }
    }
}
