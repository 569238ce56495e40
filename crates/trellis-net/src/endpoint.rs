//! The node's one QUIC endpoint: one UDP port, mutual TLS, incoming
//! connections routed by ALPN to a queue per protocol.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use trellis_crdt::ReplicaId;

use crate::certs::{ClusterTrust, NodeIdentity};
use crate::codes;
use crate::config::NetConfig;
use crate::connection::PeerConnection;
use crate::error::NetError;
use crate::identity::{node_dns_name, peer_id};
use crate::protocol::{check_protocol, protocol_text};
use crate::tls::{ServerCheck, TlsContext, ANY_NODE_SERVER_NAME};

/// Sets up an [`Endpoint`]: register the protocols this node serves, then
/// bind.
///
/// ```no_run
/// # async fn example(identity: trellis_net::NodeIdentity, trust: trellis_net::ClusterTrust)
/// # -> Result<(), trellis_net::NetError> {
/// use trellis_net::{EndpointBuilder, NetConfig, ALPN_COUNTER, ALPN_GOSSIP};
///
/// let mut builder = EndpointBuilder::new(identity, trust, NetConfig::default());
/// let mut gossip = builder.serve(ALPN_GOSSIP)?;
/// let mut counter = builder.serve(ALPN_COUNTER)?;
/// let endpoint = builder.bind(([0, 0, 0, 0], 7400).into())?;
/// while let Some(peer) = gossip.recv().await {
///     println!("node {} connected for gossip", peer.peer());
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct EndpointBuilder {
    identity: NodeIdentity,
    trust: ClusterTrust,
    config: NetConfig,
    routes: Vec<(Vec<u8>, mpsc::Sender<PeerConnection>)>,
}

impl EndpointBuilder {
    /// Starts an endpoint for the node `identity`, trusting the CA
    /// certificates in `trust`.
    pub fn new(identity: NodeIdentity, trust: ClusterTrust, config: NetConfig) -> EndpointBuilder {
        EndpointBuilder {
            identity,
            trust,
            config,
            routes: Vec::new(),
        }
    }

    /// Serves the ALPN protocol `protocol` (e.g.
    /// [`ALPN_GOSSIP`](crate::ALPN_GOSSIP)): incoming connections that
    /// negotiate it arrive on the returned receiver, at most
    /// [`NetConfig::accept_queue`] waiting at a time.
    ///
    /// Dropping the receiver makes the endpoint close new connections for
    /// the protocol with [`codes::UNKNOWN_PROTOCOL`].
    pub fn serve(&mut self, protocol: &[u8]) -> Result<mpsc::Receiver<PeerConnection>, NetError> {
        check_protocol(protocol)?;
        if self.routes.iter().any(|(known, _)| known == protocol) {
            return Err(NetError::Protocol {
                protocol: protocol_text(protocol),
                reason: "this protocol is already served by this endpoint",
            });
        }
        let (tx, rx) = mpsc::channel(self.config.accept_queue.max(1));
        self.routes.push((protocol.to_vec(), tx));
        Ok(rx)
    }

    /// Binds the UDP socket at `addr` (port 0 picks a free port) and
    /// starts accepting connections. Must be called inside a tokio runtime.
    ///
    /// Fails if the configuration is invalid or this node's certificate
    /// does not verify against the trusted CA.
    pub fn bind(self, addr: SocketAddr) -> Result<Endpoint, NetError> {
        self.config.validate()?;
        let socket =
            std::net::UdpSocket::bind(addr).map_err(|source| NetError::Bind { addr, source })?;
        self.bind_socket(socket)
    }

    /// Like [`bind`](Self::bind), on a socket the caller bound.
    pub fn bind_socket(self, socket: std::net::UdpSocket) -> Result<Endpoint, NetError> {
        self.config.validate()?;
        let runtime = quinn::default_runtime().ok_or(NetError::NoRuntime)?;
        let addr = socket.local_addr().map_err(|source| NetError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })?;
        let tls = TlsContext::new(self.identity.clone(), &self.trust)?;
        let transport = Arc::new(self.config.transport()?);

        let protocols = self.routes.iter().map(|(p, _)| p.clone()).collect();
        let server_crypto = QuicServerConfig::try_from(tls.server_config(protocols)?)
            .map_err(|err| NetError::Tls(err.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
        server.transport_config(transport.clone());
        server.max_incoming(self.config.max_incoming_connections);

        let quinn_endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server),
            socket,
            runtime,
        )
        .map_err(|source| NetError::Bind { addr, source })?;
        let local_addr = quinn_endpoint
            .local_addr()
            .map_err(|source| NetError::Bind { addr, source })?;

        let acceptor = Acceptor {
            endpoint: quinn_endpoint.clone(),
            routes: Arc::new(self.routes.into_iter().collect()),
            slots: Arc::new(Semaphore::new(self.config.max_incoming_connections)),
            max_incoming: self.config.max_incoming_connections,
            handshake_timeout: self.config.connect_timeout,
            max_frame_size: self.config.max_frame_size,
        };
        let accept_task = tokio::spawn(acceptor.run()).abort_handle();
        tracing::info!(
            node = %self.identity.id(),
            addr = %local_addr,
            "QUIC endpoint listening"
        );
        Ok(Endpoint {
            inner: Arc::new(Inner {
                quinn: quinn_endpoint,
                tls,
                transport,
                config: self.config,
                local_id: self.identity.id(),
                local_addr,
                client_configs: Mutex::new(HashMap::new()),
                accept_task,
            }),
        })
    }
}

/// One node's QUIC endpoint: a UDP port that accepts connections for the
/// protocols it serves and dials other nodes.
///
/// Cheap to clone; clones share the endpoint. Dropping the last clone
/// stops accepting; [`close`](Self::close) also closes every connection.
#[derive(Clone, Debug)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    quinn: quinn::Endpoint,
    tls: TlsContext,
    transport: Arc<quinn::TransportConfig>,
    config: NetConfig,
    local_id: ReplicaId,
    local_addr: SocketAddr,
    client_configs: Mutex<HashMap<(Vec<u8>, ServerCheck), quinn::ClientConfig>>,
    accept_task: tokio::task::AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl Endpoint {
    /// Shorthand for [`EndpointBuilder::new`].
    pub fn builder(
        identity: NodeIdentity,
        trust: ClusterTrust,
        config: NetConfig,
    ) -> EndpointBuilder {
        EndpointBuilder::new(identity, trust, config)
    }

    /// The bound UDP address (with the real port if 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// This node's id, from its certificate.
    pub fn local_id(&self) -> ReplicaId {
        self.inner.local_id
    }

    /// The configuration in force.
    pub fn config(&self) -> &NetConfig {
        &self.inner.config
    }

    /// Connects to node `expected` at `addr` for `protocol`.
    ///
    /// The server's certificate must chain to the cluster CA **and** name
    /// `expected`; a valid certificate for any other node fails the
    /// handshake. Takes at most [`NetConfig::connect_timeout`].
    ///
    /// In TLS 1.3 the server checks this node's certificate after the
    /// client considers the handshake done, so if the peer refuses this
    /// node's certificate, `connect` may succeed and the connection then
    /// closes with a TLS error that surfaces on the first stream operation.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        protocol: &[u8],
        expected: ReplicaId,
    ) -> Result<PeerConnection, NetError> {
        let name = node_dns_name(expected);
        let connection = self
            .dial(addr, protocol, ServerCheck::Expected, &name)
            .await?;
        if connection.peer() != expected {
            connection
                .connection()
                .close(codes::BAD_IDENTITY, b"unexpected node");
            return Err(NetError::UnexpectedPeer {
                expected,
                found: connection.peer(),
            });
        }
        Ok(connection)
    }

    /// Connects to whichever node of the cluster answers at `addr` (a seed
    /// address whose node id is not known yet); the id is read from its
    /// certificate ([`PeerConnection::peer`]). Same caveat as
    /// [`connect`](Self::connect).
    pub async fn connect_any(
        &self,
        addr: SocketAddr,
        protocol: &[u8],
    ) -> Result<PeerConnection, NetError> {
        self.dial(addr, protocol, ServerCheck::AnyNode, ANY_NODE_SERVER_NAME)
            .await
    }

    async fn dial(
        &self,
        addr: SocketAddr,
        protocol: &[u8],
        check: ServerCheck,
        server_name: &str,
    ) -> Result<PeerConnection, NetError> {
        let client_config = self.client_config(protocol, check)?;
        let connecting = self
            .inner
            .quinn
            .connect_with(client_config, addr, server_name)
            .map_err(|source| NetError::Connect { addr, source })?;
        let after = self.inner.config.connect_timeout;
        let connection = match tokio::time::timeout(after, connecting).await {
            Err(_) => return Err(NetError::ConnectTimeout { addr, after }),
            Ok(Err(source)) => return Err(NetError::Handshake { addr, source }),
            Ok(Ok(connection)) => connection,
        };
        let peer = match peer_id(&connection) {
            Ok(peer) => peer,
            Err(err) => {
                connection.close(codes::BAD_IDENTITY, b"no node id in certificate");
                return Err(err);
            }
        };
        tracing::debug!(%peer, %addr, protocol = %protocol_text(protocol), "connected");
        Ok(PeerConnection::new(
            connection,
            peer,
            protocol,
            self.inner.config.max_frame_size,
        ))
    }

    fn client_config(
        &self,
        protocol: &[u8],
        check: ServerCheck,
    ) -> Result<quinn::ClientConfig, NetError> {
        check_protocol(protocol)?;
        let key = (protocol.to_vec(), check);
        let mut cache = self
            .inner
            .client_configs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(config) = cache.get(&key) {
            return Ok(config.clone());
        }
        let crypto = QuicClientConfig::try_from(self.inner.tls.client_config(protocol, check)?)
            .map_err(|err| NetError::Tls(err.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(self.inner.transport.clone());
        cache.insert(key, config.clone());
        Ok(config)
    }

    /// The number of open connections, incoming and outgoing.
    pub fn open_connections(&self) -> usize {
        self.inner.quinn.open_connections()
    }

    /// Stops accepting and closes every connection with
    /// [`codes::SHUTDOWN`]. Pair with [`wait_idle`](Self::wait_idle) to
    /// let the peers hear about it.
    ///
    /// The UDP port is released once every clone of the endpoint and every
    /// [`PeerConnection`] (and stream) of it has been dropped.
    pub fn close(&self) {
        self.inner.accept_task.abort();
        self.inner
            .quinn
            .close(codes::SHUTDOWN, b"node shutting down");
    }

    /// Waits until every connection has finished closing.
    pub async fn wait_idle(&self) {
        self.inner.quinn.wait_idle().await;
    }
}

/// The accept loop's state: routes incoming connections to protocols.
struct Acceptor {
    endpoint: quinn::Endpoint,
    routes: Arc<HashMap<Vec<u8>, mpsc::Sender<PeerConnection>>>,
    slots: Arc<Semaphore>,
    max_incoming: usize,
    handshake_timeout: std::time::Duration,
    max_frame_size: usize,
}

impl Acceptor {
    async fn run(self) {
        while let Some(incoming) = self.endpoint.accept().await {
            let remote = incoming.remote_address();
            let Ok(slot) = self.slots.clone().try_acquire_owned() else {
                tracing::warn!(
                    %remote,
                    limit = self.max_incoming,
                    "refusing an incoming connection: too many open; raise max_incoming_connections if this is legitimate load"
                );
                incoming.refuse();
                continue;
            };
            tokio::spawn(handle_incoming(
                incoming,
                slot,
                self.routes.clone(),
                self.handshake_timeout,
                self.max_frame_size,
            ));
        }
    }
}

/// Completes one incoming handshake, identifies the peer and hands the
/// connection to its protocol's queue; holds the connection slot until
/// the connection closes.
async fn handle_incoming(
    incoming: quinn::Incoming,
    slot: OwnedSemaphorePermit,
    routes: Arc<HashMap<Vec<u8>, mpsc::Sender<PeerConnection>>>,
    handshake_timeout: std::time::Duration,
    max_frame_size: usize,
) {
    let remote = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(connecting) => connecting,
        Err(err) => {
            tracing::debug!(%remote, error = %err, "incoming connection failed");
            return;
        }
    };
    let connection = match tokio::time::timeout(handshake_timeout, connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(err)) => {
            tracing::warn!(%remote, error = %err, "refused an incoming connection: handshake failed");
            return;
        }
        Err(_) => {
            tracing::warn!(%remote, timeout = ?handshake_timeout, "dropped an incoming connection: handshake timed out");
            return;
        }
    };
    let peer = match peer_id(&connection) {
        Ok(peer) => peer,
        Err(err) => {
            tracing::warn!(%remote, error = %err, "refused an incoming connection");
            connection.close(codes::BAD_IDENTITY, b"no node id in certificate");
            return;
        }
    };
    let protocol = connection
        .handshake_data()
        .and_then(|data| data.downcast::<HandshakeData>().ok())
        .and_then(|data| data.protocol)
        .unwrap_or_default();
    let Some(route) = routes.get(&protocol) else {
        // TLS only negotiates protocols we serve; this is a second check.
        tracing::warn!(%remote, %peer, protocol = %protocol_text(&protocol), "refused a connection for a protocol this node does not serve");
        connection.close(codes::UNKNOWN_PROTOCOL, b"protocol not served");
        return;
    };
    let peer_connection = PeerConnection::new(connection.clone(), peer, &protocol, max_frame_size);
    match route.try_send(peer_connection) {
        Ok(()) => {
            tracing::debug!(%remote, %peer, protocol = %protocol_text(&protocol), "accepted a connection");
        }
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::warn!(%remote, %peer, protocol = %protocol_text(&protocol), "refused a connection: the protocol's accept queue is full");
            connection.close(codes::BUSY, b"busy, try again later");
            return;
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            tracing::debug!(%remote, %peer, protocol = %protocol_text(&protocol), "refused a connection: the protocol is no longer served");
            connection.close(codes::UNKNOWN_PROTOCOL, b"protocol not served");
            return;
        }
    }
    connection.closed().await;
    drop(slot);
}
