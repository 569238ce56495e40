//! Many idle or slow HTTP clients do not exhaust the node: API
//! connections are bounded (`api.max_connections`) and idle ones are
//! closed (`api.idle_timeout`), while the node keeps serving.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{start_node, Http};

/// Whether the server has closed `stream`: a read sees EOF or a reset
/// within `within`.
fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(err) => !matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn connections_over_the_limit_are_closed_and_the_node_keeps_serving() {
    let test = start_node("bounded", |config| {
        config.api.max_connections = 8;
        config.api.idle_timeout = Duration::from_secs(2);
    });
    let addr = test.node.api_addr();
    // Eight idle clients take every slot.
    let mut idle: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    // A ninth is closed at once, without an answer.
    let mut extra = TcpStream::connect(addr).unwrap();
    let _ = extra.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n");
    assert!(
        closed_by_server(&mut extra, Duration::from_secs(1)),
        "a connection over the limit was served"
    );
    // Idle clients are closed after the idle timeout, freeing the slots.
    let started = Instant::now();
    for stream in &mut idle {
        assert!(
            closed_by_server(stream, Duration::from_secs(10)),
            "an idle connection stayed open"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // And the node answers again.
    let http = Http::new(&test.node.api_url(), None);
    let health = http.get("/health");
    assert_eq!(health.status, 200, "{health:?}");
}

#[test]
fn a_slow_client_that_never_finishes_its_request_is_closed() {
    let test = start_node("slowloris", |config| {
        config.api.idle_timeout = Duration::from_secs(1);
    });
    let mut slow = TcpStream::connect(test.node.api_addr()).unwrap();
    // Half a request line, then nothing.
    slow.write_all(b"GET /hea").unwrap();
    assert!(
        closed_by_server(&mut slow, Duration::from_secs(10)),
        "a stalled request held its connection"
    );
    let http = Http::new(&test.node.api_url(), None);
    assert_eq!(http.get("/health").status, 200);
}
