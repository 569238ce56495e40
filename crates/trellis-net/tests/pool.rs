//! Real QUIC on 127.0.0.1: the connection pool reuses connections, backs
//! off while a peer is down and reconnects when it comes back.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{fast_config, localhost, next_incoming, node, node_with, Node};
use trellis_crdt::ReplicaId;
use trellis_net::{
    write_frame, ClusterCa, ConnectionPool, Endpoint, NetConfig, NetError, NodeIdentity,
    PeerStatus, ALPN_GOSSIP,
};

/// Binds a node on `addr`, retrying while the old socket is released.
async fn bind_again(identity: &NodeIdentity, ca: &ClusterCa, addr: SocketAddr) -> Node {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut builder = Endpoint::builder(identity.clone(), ca.trust(), fast_config());
        let gossip = builder.serve(ALPN_GOSSIP).unwrap();
        match builder.bind(addr) {
            Ok(endpoint) => return Node { endpoint, gossip },
            Err(err @ NetError::Bind { .. }) => {
                assert!(Instant::now() < deadline, "could not bind again: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => panic!("{err}"),
        }
    }
}

#[tokio::test]
async fn reuses_one_connection_per_peer() {
    let ca = ClusterCa::generate("test").unwrap();
    let mut server = node(&ca, "server", 1);
    let client = node(&ca, "client", 2);
    let pool = Arc::new(ConnectionPool::new(client.endpoint.clone(), ALPN_GOSSIP).unwrap());
    assert_eq!(pool.status(ReplicaId(1)), PeerStatus::Unknown);
    let addr = server.endpoint.local_addr();

    // Concurrent first calls share one dial.
    let (a, b) = tokio::join!(pool.get(ReplicaId(1), addr), pool.get(ReplicaId(1), addr));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.connection().stable_id(), b.connection().stable_id());
    let c = pool.get(ReplicaId(1), addr).await.unwrap();
    assert_eq!(a.connection().stable_id(), c.connection().stable_id());
    assert_eq!(pool.status(ReplicaId(1)), PeerStatus::Connected);
    assert!(next_incoming(&mut server.gossip, Duration::from_secs(5))
        .await
        .is_some());
    assert!(
        next_incoming(&mut server.gossip, Duration::from_millis(200))
            .await
            .is_none()
    );

    // A connection the caller found unusable is dropped and backed off from.
    pool.report_failure(ReplicaId(1), &"hello exchange failed");
    assert!(pool.status(ReplicaId(1)).is_down());
    assert!(pool.cached(ReplicaId(1)).is_none());
    assert!(matches!(
        pool.get(ReplicaId(1), addr).await,
        Err(NetError::PeerDown { .. })
    ));
    pool.remove(ReplicaId(1));
    assert_eq!(pool.status(ReplicaId(1)), PeerStatus::Unknown);
}

#[tokio::test]
async fn reconnects_after_the_server_restarts_and_shows_backoff_meanwhile() {
    let ca = ClusterCa::generate("test").unwrap();
    let identity = ca.issue("server", ReplicaId(1)).unwrap();
    let mut server = node_with(identity.clone(), ca.trust(), fast_config(), localhost());
    let addr = server.endpoint.local_addr();
    // Dialing the stopped server waits out the whole connect timeout.
    let config = NetConfig {
        connect_timeout: Duration::from_secs(1),
        ..fast_config()
    };
    let client = node_with(
        ca.issue("client", ReplicaId(2)).unwrap(),
        ca.trust(),
        config,
        localhost(),
    );
    let pool = ConnectionPool::new(client.endpoint.clone(), ALPN_GOSSIP).unwrap();

    let first = pool.get(ReplicaId(1), addr).await.unwrap();
    assert_eq!(pool.status(ReplicaId(1)), PeerStatus::Connected);
    // Some traffic, so both sides have settled RTT estimates and the
    // server's shutdown drains quickly.
    let mut send = first.open_uni().await.unwrap();
    write_frame(&mut send, "before").await.unwrap();
    send.finish().unwrap();
    let incoming = next_incoming(&mut server.gossip, Duration::from_secs(5))
        .await
        .unwrap();
    let mut recv = incoming.accept_uni().await.unwrap();
    assert_eq!(
        incoming
            .read_frame::<String>(&mut recv)
            .await
            .unwrap()
            .as_deref(),
        Some("before")
    );

    // The server goes away (a clean shutdown).
    server.endpoint.close();
    server.endpoint.wait_idle().await;
    // A restart: nothing of the old server survives.
    drop((server, incoming, recv));
    tokio::time::timeout(Duration::from_secs(3), first.closed())
        .await
        .unwrap();
    assert_eq!(pool.status(ReplicaId(1)), PeerStatus::Disconnected);

    // Dialing now fails, and the pool backs off.
    let err = pool.get(ReplicaId(1), addr).await.unwrap_err();
    assert!(
        matches!(
            err,
            NetError::ConnectTimeout { .. } | NetError::Handshake { .. }
        ),
        "{err}"
    );
    let PeerStatus::Down {
        failures,
        retry_in,
        last_error,
    } = pool.status(ReplicaId(1))
    else {
        panic!("expected the peer to be down");
    };
    assert_eq!(failures, 1);
    assert!(
        retry_in > Duration::ZERO && retry_in <= Duration::from_secs(1),
        "{retry_in:?}"
    );
    assert!(!last_error.is_empty());
    match pool.get(ReplicaId(1), addr).await {
        Err(NetError::PeerDown { failures: 1, .. }) => {}
        other => panic!("expected PeerDown while backing off, got {other:?}"),
    }

    // The server comes back on the same port; the pool reconnects once
    // the backoff allows.
    let mut restarted = bind_again(&identity, &ca, addr).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        match pool.get(ReplicaId(1), addr).await {
            Ok(connection) => break connection,
            Err(NetError::PeerDown { retry_in, .. }) => tokio::time::sleep(retry_in).await,
            Err(err) => assert!(Instant::now() < deadline, "never reconnected: {err}"),
        }
    };
    assert_ne!(
        again.connection().stable_id(),
        first.connection().stable_id()
    );
    assert_eq!(pool.status(ReplicaId(1)), PeerStatus::Connected);

    let (mut send, _recv) = again.open_bi().await.unwrap();
    write_frame(&mut send, "back").await.unwrap();
    send.finish().unwrap();
    let incoming = next_incoming(&mut restarted.gossip, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(incoming.peer(), ReplicaId(2));
    let (_send, mut recv) = incoming.accept_bi().await.unwrap();
    assert_eq!(
        incoming
            .read_frame::<String>(&mut recv)
            .await
            .unwrap()
            .as_deref(),
        Some("back")
    );
}
