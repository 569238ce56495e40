//! Shared set-up for the QUIC tests: certificates, fast timeouts, nodes on
//! 127.0.0.1.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc::Receiver;
use trellis_crdt::ReplicaId;
use trellis_net::{
    BackoffConfig, ClusterCa, ClusterTrust, Endpoint, NetConfig, NodeIdentity, PeerConnection,
    ALPN_GOSSIP,
};

/// Timeouts short enough for quick tests, long enough for a loaded CI
/// machine. The first backoff delay is 0.5 to 1 s.
pub fn fast_config() -> NetConfig {
    NetConfig {
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(5),
        keep_alive_interval: Duration::from_secs(1),
        backoff: BackoffConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(2),
        },
        ..NetConfig::default()
    }
}

pub fn localhost() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A node serving gossip: its endpoint and its gossip receiver.
pub struct Node {
    pub endpoint: Endpoint,
    pub gossip: Receiver<PeerConnection>,
}

pub fn node_with(
    identity: NodeIdentity,
    trust: ClusterTrust,
    config: NetConfig,
    addr: SocketAddr,
) -> Node {
    let mut builder = Endpoint::builder(identity, trust, config);
    let gossip = builder.serve(ALPN_GOSSIP).unwrap();
    Node {
        endpoint: builder.bind(addr).unwrap(),
        gossip,
    }
}

pub fn node(ca: &ClusterCa, site: &str, id: u64) -> Node {
    node_with(
        ca.issue(site, ReplicaId(id)).unwrap(),
        ca.trust(),
        fast_config(),
        localhost(),
    )
}

/// Waits briefly for the next incoming connection, `None` if none comes.
pub async fn next_incoming(
    rx: &mut Receiver<PeerConnection>,
    within: Duration,
) -> Option<PeerConnection> {
    tokio::time::timeout(within, rx.recv()).await.ok().flatten()
}
