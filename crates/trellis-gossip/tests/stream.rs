//! Bulk streaming to an empty node: flow control (a bounded window of
//! unacknowledged chunks) and resumption after a disconnect, driven
//! message by message without a network.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::json;
use trellis_crdt::ReplicaId;
use trellis_gossip::messages::Message;
use trellis_gossip::node::{Event, GossipConfig};
use trellis_gossip::pair::{Pair, Seen};
use trellis_store::index::KeyRange;
use trellis_store::{MemStore, Mutation, Store, StoreConfig};

const LEADS: &str = "leads";
const RECORDS: usize = 2_000;

/// What side 0 streamed, seen as it was sent.
#[derive(Default)]
struct Log {
    /// Records sent in `Stream` messages.
    streamed: usize,
    /// Unacknowledged chunks: id → records in it.
    unacked: BTreeMap<u64, usize>,
    /// Most chunks unacknowledged at once.
    max_unacked: usize,
}

/// Side 0 holds `RECORDS` leads, side 1 nothing; chunks are small (about
/// 40 records each).
fn filled() -> (Pair<MemStore>, Rc<RefCell<Log>>) {
    let stores = [1, 2].map(|id| MemStore::new(ReplicaId(id), StoreConfig::default()));
    for n in 0..RECORDS {
        let value = json!({"name": format!("lead {n}"), "note": "x".repeat(20)});
        stores[0]
            .apply(LEADS, &format!("lead-{n:05}"), Mutation::Put(value))
            .wait()
            .unwrap();
    }
    let config = GossipConfig {
        records_bytes_per_message: 2_000,
        jitter_ms: 0,
        ..GossipConfig::default()
    };
    let mut pair = Pair::new(stores, &config);
    let log = Rc::new(RefCell::new(Log::default()));
    let seen = Rc::clone(&log);
    pair.observe(move |when, message| {
        let mut log = seen.borrow_mut();
        match (when, message) {
            (Seen::Sent { from: 0 }, Message::Stream { id, records, .. }) => {
                log.streamed += records.len();
                log.unacked.insert(*id, records.len());
                log.max_unacked = log.max_unacked.max(log.unacked.len());
            }
            (Seen::Delivered { to: 0 }, Message::StreamAck { id }) => {
                log.unacked.remove(id);
            }
            _ => {}
        }
    });
    pair.connect();
    (pair, log)
}

/// Side 0 starts a session; side 1 answers with an empty summary, so
/// side 0 streams.
fn reconcile(pair: &mut Pair<MemStore>) {
    pair.advance(2_000);
    pair.event(0, Event::Tick);
}

fn count(pair: &Pair<MemStore>, side: usize) -> u64 {
    pair.store(side).fingerprint(LEADS, &KeyRange::all()).count
}

#[test]
fn a_stream_keeps_a_bounded_window_and_sends_each_record_once() {
    let (mut pair, log) = filled();
    reconcile(&mut pair);
    pair.deliver(usize::MAX);
    assert_eq!(count(&pair, 1), RECORDS as u64);
    let log = log.borrow();
    assert_eq!(log.streamed, RECORDS, "each record streamed once");
    assert!(log.max_unacked <= 4, "window: {}", log.max_unacked);
    assert!(
        log.max_unacked >= 2,
        "the window is used: {}",
        log.max_unacked
    );
}

#[test]
fn a_stream_resumes_after_a_disconnect_from_the_last_acknowledged_chunk() {
    let (mut pair, log) = filled();
    reconcile(&mut pair);
    // Part of the stream gets through, then the connection drops with
    // chunks (and acknowledgements) in flight.
    pair.deliver(60);
    let before = count(&pair, 1);
    assert!(before > 0 && before < RECORDS as u64, "{before}");
    let unacknowledged: usize = log.borrow().unacked.values().sum();
    assert!(unacknowledged > 0);
    pair.disconnect();
    log.borrow_mut().unacked.clear();

    pair.advance(100);
    pair.connect();
    pair.deliver(usize::MAX);
    assert_eq!(count(&pair, 1), RECORDS as u64);
    // Exactly what was not acknowledged is sent again.
    assert_eq!(log.borrow().streamed - RECORDS, unacknowledged);
}

#[test]
fn a_stream_with_lost_chunks_is_resent_after_the_session_timeout() {
    let (mut pair, _log) = filled();
    reconcile(&mut pair);
    pair.deliver(10);
    // Everything in flight is lost, but the connection stays up.
    pair.lose_in_flight();
    pair.deliver(usize::MAX);
    assert!(count(&pair, 1) < RECORDS as u64);
    pair.advance(GossipConfig::default().session_timeout_ms + 1);
    pair.event(0, Event::Tick);
    pair.deliver(usize::MAX);
    assert_eq!(count(&pair, 1), RECORDS as u64);
}
