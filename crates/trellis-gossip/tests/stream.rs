//! Bulk streaming to an empty node: flow control (a bounded window of
//! unacknowledged chunks) and resumption after a disconnect, driven
//! message by message without a network.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::{BTreeMap, VecDeque};

use serde_json::json;
use trellis_crdt::ReplicaId;
use trellis_gossip::messages::Message;
use trellis_gossip::node::{Action, Event, Gossip, GossipConfig};
use trellis_store::index::KeyRange;
use trellis_store::{MemStore, Mutation, Store, StoreConfig};

const LEADS: &str = "leads";
const RECORDS: usize = 2_000;

struct Side {
    id: ReplicaId,
    store: MemStore,
    gossip: Gossip,
}

/// Two nodes and the messages in flight between them, in order.
struct Pair {
    sides: [Side; 2],
    wire: VecDeque<(usize, Message)>,
    now: u64,
    /// Keys carried by `Stream` messages from side 0, in order sent.
    streamed: Vec<String>,
    /// Most chunks side 0 had unacknowledged at once.
    max_unacked: usize,
    /// Side 0's unacknowledged chunks: id → records in it.
    unacked: BTreeMap<u64, usize>,
}

impl Pair {
    fn new() -> Self {
        let config = GossipConfig {
            // Small chunks: about 40 records each.
            records_bytes_per_message: 2_000,
            reconcile_every_ms: 1_000,
            jitter_ms: 0,
            ..GossipConfig::default()
        };
        let side = |id: u64| Side {
            id: ReplicaId(id),
            store: MemStore::new(ReplicaId(id), StoreConfig::default()),
            gossip: Gossip::new(ReplicaId(id), config.clone(), 0),
        };
        Pair {
            sides: [side(1), side(2)],
            wire: VecDeque::new(),
            now: 0,
            streamed: Vec::new(),
            max_unacked: 0,
            unacked: BTreeMap::new(),
        }
    }

    fn event(&mut self, at: usize, event: Event) {
        let side = &mut self.sides[at];
        let actions = side.gossip.handle(self.now, event, &side.store);
        for action in actions {
            match action {
                Action::Send { message, .. } => {
                    if at == 0 {
                        if let Message::Stream { id, records, .. } = &message {
                            self.streamed.extend(records.iter().map(|r| r.key.clone()));
                            self.unacked.insert(*id, records.len());
                            self.max_unacked = self.max_unacked.max(self.unacked.len());
                        }
                    }
                    self.wire.push_back((1 - at, message));
                }
                Action::Merge {
                    from,
                    collection,
                    key,
                    state,
                    origin,
                    kind,
                } => {
                    let merged = self.sides[at]
                        .store
                        .merge(&collection, &key, state, origin)
                        .wait()
                        .unwrap();
                    self.event(
                        at,
                        Event::Merged {
                            from,
                            kind,
                            origin,
                            grew: merged.grew,
                        },
                    );
                }
            }
        }
    }

    /// Delivers up to `limit` messages in order.
    fn deliver(&mut self, limit: usize) {
        for _ in 0..limit {
            let Some((to, message)) = self.wire.pop_front() else {
                return;
            };
            if let (0, Message::StreamAck { id }) = (to, &message) {
                self.unacked.remove(id);
            }
            let from = self.sides[1 - to].id;
            self.event(
                to,
                Event::Received {
                    from,
                    message,
                    bytes: 0,
                },
            );
        }
    }

    fn connect(&mut self) {
        let (a, b) = (self.sides[0].id, self.sides[1].id);
        self.event(0, Event::Connected(b));
        self.event(1, Event::Connected(a));
    }

    fn disconnect(&mut self) {
        self.wire.clear();
        let (a, b) = (self.sides[0].id, self.sides[1].id);
        self.event(0, Event::Disconnected(b));
        self.event(1, Event::Disconnected(a));
    }

    /// Side 0 starts a session (it is the only side with data, so the
    /// empty side 1 answers with an empty summary and side 0 streams).
    fn reconcile(&mut self) {
        self.now += 2_000;
        self.event(0, Event::Tick);
    }

    fn count(&self, at: usize) -> u64 {
        self.sides[at]
            .store
            .fingerprint(LEADS, &KeyRange::all())
            .count
    }
}

fn filled() -> Pair {
    let pair = Pair::new();
    for n in 0..RECORDS {
        let value = json!({"name": format!("lead {n}"), "note": "x".repeat(20)});
        pair.sides[0]
            .store
            .apply(LEADS, &format!("lead-{n:05}"), Mutation::Put(value))
            .wait()
            .unwrap();
    }
    pair
}

#[test]
fn a_stream_keeps_a_bounded_window_and_sends_each_record_once() {
    let mut pair = filled();
    pair.connect();
    pair.reconcile();
    pair.deliver(usize::MAX);
    assert_eq!(pair.count(1), RECORDS as u64);
    assert_eq!(pair.streamed.len(), RECORDS, "each record streamed once");
    assert!(pair.max_unacked <= 4, "window: {}", pair.max_unacked);
    assert!(
        pair.max_unacked >= 2,
        "the window is used: {}",
        pair.max_unacked
    );
}

#[test]
fn a_stream_resumes_after_a_disconnect_from_the_last_acknowledged_chunk() {
    let mut pair = filled();
    pair.connect();
    pair.reconcile();
    // Part of the stream gets through, then the connection drops with
    // chunks (and acknowledgements) in flight.
    pair.deliver(60);
    let before = pair.count(1);
    assert!(before > 0 && before < RECORDS as u64, "{before}");
    let unacknowledged: usize = pair.unacked.values().sum();
    assert!(unacknowledged > 0);
    pair.disconnect();

    pair.now += 100;
    pair.connect();
    pair.deliver(usize::MAX);
    assert_eq!(pair.count(1), RECORDS as u64);
    // Exactly what was not acknowledged is sent again.
    assert_eq!(pair.streamed.len() - RECORDS, unacknowledged);
}

#[test]
fn a_stream_with_lost_chunks_is_resent_after_the_session_timeout() {
    let mut pair = filled();
    pair.connect();
    pair.reconcile();
    pair.deliver(10);
    // Everything in flight is lost, but the connection stays up.
    pair.wire.clear();
    pair.deliver(usize::MAX);
    assert!(pair.count(1) < RECORDS as u64);
    pair.now += GossipConfig::default().session_timeout_ms + 1;
    pair.event(0, Event::Tick);
    pair.deliver(usize::MAX);
    assert_eq!(pair.count(1), RECORDS as u64);
}
