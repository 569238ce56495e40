//! Real QUIC on 127.0.0.1: mutual TLS against the cluster CA, node ids
//! from certificates, ALPN routing and the endpoint's limits.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{fast_config, localhost, next_incoming, node, node_with};
use trellis_crdt::ReplicaId;
use trellis_net::{
    codes, peer_id, read_frame, write_frame, ClusterCa, ClusterTrust, Endpoint, NetConfig,
    NetError, ALPN_COUNTER, ALPN_GOSSIP,
};

#[tokio::test]
async fn same_ca_nodes_connect_learn_ids_and_exchange_frames() {
    let ca = ClusterCa::generate("test").unwrap();
    let mut berlin = node(&ca, "berlin", 1);
    let lisbon = node(&ca, "lisbon", 2);

    let to_berlin = lisbon
        .endpoint
        .connect(berlin.endpoint.local_addr(), ALPN_GOSSIP, ReplicaId(1))
        .await
        .unwrap();
    assert_eq!(to_berlin.peer(), ReplicaId(1));
    assert_eq!(to_berlin.protocol(), ALPN_GOSSIP);
    assert_eq!(peer_id(to_berlin.connection()).unwrap(), ReplicaId(1));

    let server = tokio::spawn(async move {
        let from_lisbon = berlin.gossip.recv().await.unwrap();
        assert_eq!(from_lisbon.peer(), ReplicaId(2));
        assert_eq!(from_lisbon.protocol(), ALPN_GOSSIP);
        assert_eq!(peer_id(from_lisbon.connection()).unwrap(), ReplicaId(2));
        // Echo every frame back with its length, until the client finishes.
        let (mut send, mut recv) = from_lisbon.accept_bi().await.unwrap();
        let mut seen = 0;
        while let Some(text) = from_lisbon.read_frame::<String>(&mut recv).await.unwrap() {
            write_frame(&mut send, &(text.len() as u64, text))
                .await
                .unwrap();
            seen += 1;
        }
        send.finish().unwrap();
        // An RPC-shaped exchange on a second stream.
        let (mut send, mut recv) = from_lisbon.accept_bi().await.unwrap();
        let numbers: Vec<u32> = from_lisbon.read_frame(&mut recv).await.unwrap().unwrap();
        write_frame(&mut send, &numbers.iter().sum::<u32>())
            .await
            .unwrap();
        send.finish().unwrap();
        let _ = send.stopped().await;
        (seen, berlin)
    });

    let (mut send, mut recv) = to_berlin.open_bi().await.unwrap();
    let texts = ["lead", "", "contact with ünïcode"];
    for text in texts {
        write_frame(&mut send, text).await.unwrap();
    }
    send.finish().unwrap();
    for text in texts {
        let echoed: (u64, String) = read_frame(&mut recv, 1 << 20).await.unwrap().unwrap();
        assert_eq!(echoed, (text.len() as u64, text.to_owned()));
    }
    assert_eq!(
        read_frame::<(u64, String)>(&mut recv, 1 << 20)
            .await
            .unwrap(),
        None
    );

    let sum: u32 = to_berlin.request(&vec![1u32, 2, 3]).await.unwrap();
    assert_eq!(sum, 6);
    let (seen, _berlin) = server.await.unwrap();
    assert_eq!(seen, texts.len());
}

#[tokio::test]
async fn connect_any_learns_the_id_from_the_certificate() {
    let ca = ClusterCa::generate("test").unwrap();
    let mut seed = node(&ca, "seed", 0xdead_beef);
    let newcomer = node(&ca, "newcomer", 7);
    let connection = newcomer
        .endpoint
        .connect_any(seed.endpoint.local_addr(), ALPN_GOSSIP)
        .await
        .unwrap();
    assert_eq!(connection.peer(), ReplicaId(0xdead_beef));
    let incoming = next_incoming(&mut seed.gossip, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(incoming.peer(), ReplicaId(7));
}

#[tokio::test]
async fn dialing_an_expected_id_fails_if_the_server_is_another_node() {
    let ca = ClusterCa::generate("test").unwrap();
    let mut server = node(&ca, "server", 1);
    let client = node(&ca, "client", 2);
    // The server's certificate is valid, but for node 1, not node 3.
    let err = client
        .endpoint
        .connect(server.endpoint.local_addr(), ALPN_GOSSIP, ReplicaId(3))
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Handshake { .. }), "{err}");
    assert!(err.to_string().contains("not valid for name"), "{err}");
    assert!(
        next_incoming(&mut server.gossip, Duration::from_millis(300))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn server_with_a_foreign_ca_certificate_is_refused() {
    let ca = ClusterCa::generate("ours").unwrap();
    let rogue_ca = ClusterCa::generate("theirs").unwrap();
    let rogue = node(&rogue_ca, "rogue", 1);
    let client = node(&ca, "client", 2);
    let addr = rogue.endpoint.local_addr();
    let err = client
        .endpoint
        .connect(addr, ALPN_GOSSIP, ReplicaId(1))
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Handshake { .. }), "{err}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    let err = client
        .endpoint
        .connect_any(addr, ALPN_GOSSIP)
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Handshake { .. }), "{err}");
}

#[tokio::test]
async fn client_with_a_foreign_ca_certificate_is_refused() {
    let ca = ClusterCa::generate("ours").unwrap();
    let rogue_ca = ClusterCa::generate("theirs").unwrap();
    let mut server = node(&ca, "server", 1);
    // The rogue trusts our CA (so it accepts our server) but presents a
    // certificate from its own CA, claiming id 2.
    let mut rogue_trust = rogue_ca.trust();
    rogue_trust.extend(&ca.trust());
    let rogue = node_with(
        rogue_ca.issue("rogue", ReplicaId(2)).unwrap(),
        rogue_trust,
        fast_config(),
        localhost(),
    );
    // TLS 1.3: the client may finish its side before the server checks its
    // certificate, so the refusal shows either here or as a closed connection.
    match rogue
        .endpoint
        .connect(server.endpoint.local_addr(), ALPN_GOSSIP, ReplicaId(1))
        .await
    {
        Err(err) => assert!(matches!(err, NetError::Handshake { .. }), "{err}"),
        Ok(connection) => {
            let reason = tokio::time::timeout(Duration::from_secs(3), connection.closed())
                .await
                .expect("the server closes the rogue's connection");
            assert!(
                matches!(
                    reason,
                    quinn::ConnectionError::ConnectionClosed(_)
                        | quinn::ConnectionError::TransportError(_)
                ),
                "{reason}"
            );
            assert!(connection.open_bi().await.is_err());
        }
    }
    assert!(
        next_incoming(&mut server.gossip, Duration::from_millis(300))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn connections_are_routed_by_alpn_and_unknown_protocols_refused() {
    let ca = ClusterCa::generate("test").unwrap();
    let mut builder = Endpoint::builder(
        ca.issue("both", ReplicaId(1)).unwrap(),
        ca.trust(),
        fast_config(),
    );
    let mut gossip = builder.serve(ALPN_GOSSIP).unwrap();
    let mut counter = builder.serve(ALPN_COUNTER).unwrap();
    assert!(matches!(
        builder.serve(ALPN_GOSSIP),
        Err(NetError::Protocol { .. })
    ));
    let both = builder.bind(localhost()).unwrap();
    let gossip_only = node(&ca, "gossip-only", 2);
    let client = node(&ca, "client", 3);

    let c = client
        .endpoint
        .connect(both.local_addr(), ALPN_COUNTER, ReplicaId(1))
        .await
        .unwrap();
    assert_eq!(c.protocol(), ALPN_COUNTER);
    let arrived = next_incoming(&mut counter, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        (arrived.peer(), arrived.protocol()),
        (ReplicaId(3), ALPN_COUNTER)
    );
    assert!(next_incoming(&mut gossip, Duration::from_millis(200))
        .await
        .is_none());

    let g = client
        .endpoint
        .connect(both.local_addr(), ALPN_GOSSIP, ReplicaId(1))
        .await
        .unwrap();
    assert_eq!(g.protocol(), ALPN_GOSSIP);
    let arrived = next_incoming(&mut gossip, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(arrived.protocol(), ALPN_GOSSIP);

    // A node that does not serve counters refuses them in the handshake.
    let err = client
        .endpoint
        .connect(
            gossip_only.endpoint.local_addr(),
            ALPN_COUNTER,
            ReplicaId(2),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Handshake { .. }), "{err}");
    let err = client
        .endpoint
        .connect(both.local_addr(), b"trellis-unknown/9", ReplicaId(1))
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Handshake { .. }), "{err}");
}

#[tokio::test]
async fn streams_per_connection_and_accept_queues_are_bounded() {
    let ca = ClusterCa::generate("test").unwrap();
    let config = NetConfig {
        max_bidi_streams: 1,
        accept_queue: 1,
        ..fast_config()
    };
    let server = node_with(
        ca.issue("server", ReplicaId(1)).unwrap(),
        ca.trust(),
        config,
        localhost(),
    );
    let addr = server.endpoint.local_addr();
    let (a, b) = (node(&ca, "a", 2), node(&ca, "b", 3));

    // First connection: queued for the application (which is not reading).
    let first = a
        .endpoint
        .connect(addr, ALPN_GOSSIP, ReplicaId(1))
        .await
        .unwrap();
    // One stream at a time: the second open waits for credit.
    let _stream = first.open_bi().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), first.open_bi())
            .await
            .is_err()
    );

    // Second connection: the queue holds one, so it is closed as busy.
    let second = b
        .endpoint
        .connect(addr, ALPN_GOSSIP, ReplicaId(1))
        .await
        .unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(3), second.closed())
        .await
        .unwrap();
    match reason {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, codes::BUSY)
        }
        other => panic!("expected a busy close, got {other}"),
    }
    assert!(!first.is_closed());
}

#[tokio::test]
async fn incoming_connection_limit_refuses_extra_connections_until_one_closes() {
    let ca = ClusterCa::generate("test").unwrap();
    let config = NetConfig {
        max_incoming_connections: 1,
        ..fast_config()
    };
    let mut server = node_with(
        ca.issue("server", ReplicaId(1)).unwrap(),
        ca.trust(),
        config,
        localhost(),
    );
    let addr = server.endpoint.local_addr();
    let (a, b) = (node(&ca, "a", 2), node(&ca, "b", 3));

    let first = a
        .endpoint
        .connect(addr, ALPN_GOSSIP, ReplicaId(1))
        .await
        .unwrap();
    let held = next_incoming(&mut server.gossip, Duration::from_secs(5))
        .await
        .unwrap();
    let err = b
        .endpoint
        .connect(addr, ALPN_GOSSIP, ReplicaId(1))
        .await
        .unwrap_err();
    match &err {
        NetError::Handshake { source, .. } => assert!(
            matches!(source, quinn::ConnectionError::ConnectionClosed(_)),
            "{source}"
        ),
        other => panic!("expected a refused handshake, got {other}"),
    }

    // Once the first connection closes its slot is free again.
    first.close();
    held.closed().await;
    let mut again = None;
    for _ in 0..20 {
        match b.endpoint.connect(addr, ALPN_GOSSIP, ReplicaId(1)).await {
            Ok(connection) => {
                again = Some(connection);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(again.expect("a slot frees up").peer(), ReplicaId(1));
    assert!(next_incoming(&mut server.gossip, Duration::from_secs(5))
        .await
        .is_some());
}

#[tokio::test]
async fn bind_refuses_an_identity_the_trust_does_not_cover() {
    let ca = ClusterCa::generate("ours").unwrap();
    let other = ClusterCa::generate("theirs").unwrap();
    let identity = other.issue("lost", ReplicaId(1)).unwrap();
    let err = Endpoint::builder(identity, ca.trust(), NetConfig::default())
        .bind(localhost())
        .unwrap_err();
    assert!(matches!(err, NetError::Tls(_)), "{err}");
    assert!(
        err.to_string()
            .contains("does not verify against the cluster CA"),
        "{err}"
    );
    let _ = ClusterTrust::from_pem(ca.cert_pem()).unwrap();
}

#[test]
fn bind_outside_a_runtime_says_so() {
    let ca = ClusterCa::generate("test").unwrap();
    let err = Endpoint::builder(
        ca.issue("x", ReplicaId(1)).unwrap(),
        ca.trust(),
        NetConfig::default(),
    )
    .bind(localhost())
    .unwrap_err();
    assert!(matches!(err, NetError::NoRuntime), "{err}");
}
