//! Real QUIC on 127.0.0.1: malformed frames close their stream with an
//! application error code; the connection and endpoint keep working.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{fast_config, localhost, node, node_with};
use trellis_crdt::{codec, DecodeError, ReplicaId};
use trellis_net::{
    codes, write_frame, ClusterCa, FrameError, NetConfig, PeerConnection, ALPN_GOSSIP,
    FRAME_VERSION,
};

const LIMIT: usize = 1024;

/// A connected pair: (client side, server side), the server with a 1 KiB
/// frame limit.
async fn pair() -> (PeerConnection, PeerConnection, Vec<common::Node>) {
    let ca = ClusterCa::generate("test").unwrap();
    let config = NetConfig {
        max_frame_size: LIMIT,
        ..fast_config()
    };
    let mut server = node_with(
        ca.issue("server", ReplicaId(1)).unwrap(),
        ca.trust(),
        config,
        localhost(),
    );
    let client = node(&ca, "client", 2);
    let to_server = client
        .endpoint
        .connect(server.endpoint.local_addr(), ALPN_GOSSIP, ReplicaId(1))
        .await
        .unwrap();
    let from_client = server.gossip.recv().await.unwrap();
    (to_server, from_client, vec![server, client])
}

/// Sends raw bytes on a new stream; the server reads one `Vec<String>`
/// frame. Returns the server's error and the stop code the client saw.
async fn send_raw(
    client: &PeerConnection,
    server: &PeerConnection,
    bytes: &[u8],
    finish: bool,
) -> (FrameError, Option<quinn::VarInt>) {
    let (mut send, _recv) = client.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    if finish {
        send.finish().unwrap();
    }
    let (_server_send, mut recv) = server.accept_bi().await.unwrap();
    let err = server
        .read_frame::<Vec<String>>(&mut recv)
        .await
        .unwrap_err();
    let stopped = tokio::time::timeout(Duration::from_secs(3), send.stopped())
        .await
        .expect("the client hears about the stopped stream")
        .ok()
        .flatten();
    (err, stopped)
}

/// A good frame on a fresh stream still goes through.
async fn still_works(client: &PeerConnection, server: &PeerConnection) {
    let (mut send, _recv) = client.open_bi().await.unwrap();
    write_frame(&mut send, &vec!["still".to_owned(), "fine".to_owned()])
        .await
        .unwrap();
    send.finish().unwrap();
    let (_send, mut recv) = server.accept_bi().await.unwrap();
    let value: Vec<String> = server.read_frame(&mut recv).await.unwrap().unwrap();
    assert_eq!(value, ["still", "fine"]);
    assert!(!client.is_closed() && !server.is_closed());
}

#[tokio::test]
async fn bad_version_byte_stops_the_stream_only() {
    let (client, server, _nodes) = pair().await;
    let mut bytes = trellis_net::encode_frame(&vec!["x".to_owned()]).unwrap();
    bytes[0] = FRAME_VERSION + 7;
    let (err, code) = send_raw(&client, &server, &bytes, false).await;
    assert_eq!(
        err,
        FrameError::UnsupportedVersion {
            found: FRAME_VERSION + 7,
            supported: FRAME_VERSION
        }
    );
    assert_eq!(code, Some(codes::UNSUPPORTED_FRAME_VERSION));
    still_works(&client, &server).await;
}

#[tokio::test]
async fn length_over_the_limit_is_refused_before_the_payload() {
    let (client, server, _nodes) = pair().await;
    // Claims 4 GiB and sends nothing more: refused from the header alone.
    let (err, code) = send_raw(
        &client,
        &server,
        &[FRAME_VERSION, 0xff, 0xff, 0xff, 0xff],
        false,
    )
    .await;
    assert_eq!(
        err,
        FrameError::TooLarge {
            len: u64::from(u32::MAX),
            limit: LIMIT
        }
    );
    assert_eq!(code, Some(codes::FRAME_TOO_LARGE));
    // A real frame one byte over the limit.
    let big = vec!["y".repeat(LIMIT)];
    let bytes = trellis_net::encode_frame(&big).unwrap();
    let (err, code) = send_raw(&client, &server, &bytes, false).await;
    assert!(
        matches!(err, FrameError::TooLarge { limit: LIMIT, .. }),
        "{err}"
    );
    assert_eq!(code, Some(codes::FRAME_TOO_LARGE));
    still_works(&client, &server).await;
}

#[tokio::test]
async fn garbage_and_truncated_payloads_are_malformed() {
    let (client, server, _nodes) = pair().await;
    // Unknown codec version inside a well-formed frame.
    let (err, code) = send_raw(
        &client,
        &server,
        &[FRAME_VERSION, 3, 0, 0, 0, 0xee, 1, 2],
        false,
    )
    .await;
    assert_eq!(
        err,
        FrameError::Decode(DecodeError::UnsupportedVersion { found: 0xee })
    );
    assert_eq!(code, Some(codes::MALFORMED_FRAME));
    // Right codec version, bytes that are not a Vec<String>.
    let (err, code) = send_raw(
        &client,
        &server,
        &[
            FRAME_VERSION,
            4,
            0,
            0,
            0,
            codec::FORMAT_VERSION,
            0xfb,
            0xff,
            0xff,
        ],
        false,
    )
    .await;
    assert!(matches!(err, FrameError::Decode(_)), "{err}");
    assert_eq!(code, Some(codes::MALFORMED_FRAME));
    // The stream ends halfway through a frame.
    let (err, _) = send_raw(&client, &server, &[FRAME_VERSION, 9, 0, 0, 0, 1, 2], true).await;
    assert_eq!(
        err,
        FrameError::Truncated {
            expected: 14,
            got: 7
        }
    );
    let (err, _) = send_raw(&client, &server, &[FRAME_VERSION, 9], true).await;
    assert_eq!(
        err,
        FrameError::Truncated {
            expected: 5,
            got: 2
        }
    );
    still_works(&client, &server).await;
}

#[tokio::test]
async fn a_reset_stream_is_a_read_error_not_a_frame_error() {
    let (client, server, _nodes) = pair().await;
    let (mut send, _recv) = client.open_bi().await.unwrap();
    send.write_all(&[FRAME_VERSION, 100, 0]).await.unwrap();
    send.reset(quinn::VarInt::from_u32(77)).unwrap();
    let (_send, mut recv) = server.accept_bi().await.unwrap();
    let err = server
        .read_frame::<Vec<String>>(&mut recv)
        .await
        .unwrap_err();
    assert!(matches!(err, FrameError::Read(_)), "{err}");
    assert_eq!(err.stream_code(), None);
    still_works(&client, &server).await;
}
