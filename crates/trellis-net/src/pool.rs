//! [`ConnectionPool`]: one cached outgoing connection per peer for one
//! protocol, with reconnect backoff.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use trellis_crdt::ReplicaId;

use crate::backoff::{random_jitter, Backoff};
use crate::connection::PeerConnection;
use crate::endpoint::Endpoint;
use crate::error::NetError;
use crate::protocol::{check_protocol, protocol_text};

/// How the pool sees one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerStatus {
    /// The pool has never dialed this peer.
    Unknown,
    /// A live connection is cached.
    Connected,
    /// No live connection, but nothing failed either (the connection was
    /// closed normally); the next [`ConnectionPool::get`] dials at once.
    Disconnected,
    /// The last attempt failed; the pool refuses to dial again for
    /// `retry_in` and reports the peer down until an attempt succeeds.
    Down {
        /// Consecutive failures.
        failures: u32,
        /// Time until the next attempt is allowed (zero: allowed now).
        retry_in: Duration,
        /// The last failure, as text.
        last_error: String,
    },
}

impl PeerStatus {
    /// Whether the peer is currently considered down.
    pub fn is_down(&self) -> bool {
        matches!(self, PeerStatus::Down { .. })
    }
}

/// Outgoing connections for one protocol, one per peer, reused while they
/// live and re-dialed with exponential backoff and jitter after failures
/// (settings in [`NetConfig::backoff`](crate::NetConfig::backoff)).
///
/// Concurrent [`get`](Self::get)s for the same peer share one dial. A
/// failed dial, or a cached connection that died abnormally (timed out,
/// reset, refused by TLS), counts as a failure; [`status`](Self::status)
/// shows the backoff so callers can tell a peer is down. Incoming
/// connections are not pooled: they arrive on the protocol's receiver.
///
/// Gossip and counters each keep their own pool over the same
/// [`Endpoint`].
pub struct ConnectionPool {
    endpoint: Endpoint,
    protocol: Arc<[u8]>,
    peers: Mutex<HashMap<ReplicaId, PeerSlot>>,
}

impl fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("protocol", &protocol_text(&self.protocol))
            .field(
                "peers",
                &self.peers.try_lock().map(|peers| peers.len()).ok(),
            )
            .finish()
    }
}

#[derive(Default)]
struct PeerSlot {
    /// Held while dialing, so concurrent callers share one attempt.
    dial: Arc<tokio::sync::Mutex<()>>,
    connection: Option<PeerConnection>,
    backoff: Backoff,
    last_error: String,
    dialed: bool,
}

impl PeerSlot {
    /// The cached connection if it is alive. A dead one is dropped; if it
    /// died abnormally that counts as a failure.
    fn live(&mut self, peer: ReplicaId, pool: &ConnectionPool) -> Option<PeerConnection> {
        let connection = self.connection.as_ref()?;
        let Some(reason) = connection.connection().close_reason() else {
            return Some(connection.clone());
        };
        self.connection = None;
        if !closed_normally(&reason) {
            self.fail(peer, pool, &format!("connection lost: {reason}"));
        }
        None
    }

    fn fail(&mut self, peer: ReplicaId, pool: &ConnectionPool, error: &str) {
        let delay = self.backoff.record_failure(
            Instant::now(),
            &pool.endpoint.config().backoff,
            random_jitter(),
        );
        self.last_error = error.to_owned();
        tracing::warn!(
            %peer,
            protocol = %protocol_text(&pool.protocol),
            failures = self.backoff.failures(),
            retry_in = ?delay,
            error,
            "peer unreachable; backing off"
        );
    }

    fn status(&self) -> PeerStatus {
        let alive = self
            .connection
            .as_ref()
            .is_some_and(|c| c.connection().close_reason().is_none());
        if alive {
            PeerStatus::Connected
        } else if self.backoff.is_failing() {
            PeerStatus::Down {
                failures: self.backoff.failures(),
                retry_in: self.backoff.retry_in(Instant::now()).unwrap_or_default(),
                last_error: self.last_error.clone(),
            }
        } else if self.dialed {
            PeerStatus::Disconnected
        } else {
            PeerStatus::Unknown
        }
    }
}

/// A close that says nothing about the peer's health: one side closed the
/// connection on purpose. (An application close sent while the peer still
/// had handshake keys arrives as the transport error `APPLICATION_ERROR`.)
fn closed_normally(reason: &quinn::ConnectionError) -> bool {
    match reason {
        quinn::ConnectionError::ApplicationClosed(_) | quinn::ConnectionError::LocallyClosed => {
            true
        }
        quinn::ConnectionError::ConnectionClosed(close) => {
            close.error_code == quinn::TransportErrorCode::APPLICATION_ERROR
        }
        _ => false,
    }
}

impl ConnectionPool {
    /// A pool dialing `protocol` through `endpoint`.
    pub fn new(endpoint: Endpoint, protocol: &[u8]) -> Result<ConnectionPool, NetError> {
        check_protocol(protocol)?;
        Ok(ConnectionPool {
            endpoint,
            protocol: protocol.into(),
            peers: Mutex::new(HashMap::new()),
        })
    }

    /// The protocol this pool dials.
    pub fn protocol(&self) -> &[u8] {
        &self.protocol
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ReplicaId, PeerSlot>> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The live connection to `peer`, dialing `addr` if there is none
    /// (`addr` is only used for dialing).
    ///
    /// While the peer is backing off after failures this returns
    /// [`NetError::PeerDown`] at once, without dialing. A failed dial
    /// returns its own error and starts (or extends) the backoff.
    pub async fn get(&self, peer: ReplicaId, addr: SocketAddr) -> Result<PeerConnection, NetError> {
        let dial = {
            let mut peers = self.lock();
            let slot = peers.entry(peer).or_default();
            if let Some(connection) = slot.live(peer, self) {
                return Ok(connection);
            }
            slot.dial.clone()
        };
        let _dialing = dial.lock().await;
        {
            let mut peers = self.lock();
            let slot = peers.entry(peer).or_default();
            // Another caller may have dialed while we waited.
            if let Some(connection) = slot.live(peer, self) {
                return Ok(connection);
            }
            if let Some(retry_in) = slot.backoff.retry_in(Instant::now()) {
                return Err(NetError::PeerDown {
                    peer,
                    failures: slot.backoff.failures(),
                    retry_in,
                    last_error: slot.last_error.clone(),
                });
            }
            slot.dialed = true;
        }
        let result = self.endpoint.connect(addr, &self.protocol, peer).await;
        let mut peers = self.lock();
        let slot = peers.entry(peer).or_default();
        match &result {
            Ok(connection) => {
                if slot.backoff.is_failing() {
                    tracing::info!(%peer, protocol = %protocol_text(&self.protocol), "peer reachable again");
                }
                slot.backoff.record_success();
                slot.last_error.clear();
                slot.connection = Some(connection.clone());
            }
            Err(err) => slot.fail(peer, self, &err.to_string()),
        }
        result
    }

    /// The cached connection to `peer`, if it is alive. Never dials.
    pub fn cached(&self, peer: ReplicaId) -> Option<PeerConnection> {
        let mut peers = self.lock();
        peers.get_mut(&peer)?.live(peer, self)
    }

    /// How the pool sees `peer` right now.
    pub fn status(&self, peer: ReplicaId) -> PeerStatus {
        let mut peers = self.lock();
        match peers.get_mut(&peer) {
            None => PeerStatus::Unknown,
            Some(slot) => {
                // Notice a connection that died since the last call.
                slot.live(peer, self);
                slot.status()
            }
        }
    }

    /// Every peer the pool knows, with its status, sorted by id.
    pub fn statuses(&self) -> Vec<(ReplicaId, PeerStatus)> {
        let mut all: Vec<_> = self
            .lock()
            .iter_mut()
            .map(|(peer, slot)| {
                slot.live(*peer, self);
                (*peer, slot.status())
            })
            .collect();
        all.sort_by_key(|(peer, _)| *peer);
        all
    }

    /// Tells the pool that the connection to `peer` is unusable (for
    /// example, its hello exchange failed): closes and drops it and counts
    /// a failure, so the next [`get`](Self::get) backs off.
    pub fn report_failure(&self, peer: ReplicaId, error: &dyn fmt::Display) {
        let mut peers = self.lock();
        let slot = peers.entry(peer).or_default();
        if let Some(connection) = slot.connection.take() {
            connection.close();
        }
        slot.dialed = true;
        slot.fail(peer, self, &error.to_string());
    }

    /// Forgets `peer` (it left the cluster): closes any cached connection
    /// and drops its backoff state.
    pub fn remove(&self, peer: ReplicaId) {
        if let Some(slot) = self.lock().remove(&peer) {
            if let Some(connection) = slot.connection {
                connection.close();
            }
        }
    }
}
