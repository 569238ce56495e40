//! The stable-toolchain counterpart of the `gossip_frames` fuzz target:
//! real gossip messages (hellos, pushes, reconciliation rounds, shipped
//! records, stream chunks), corrupted at random (bytes flipped, cut
//! short, garbage appended), go through `trellis-net`'s frame decoder and
//! the codec into a node's message handler, merges included. Nothing may
//! panic. `TRELLIS_PROPTEST_CASES` sets the number of cases.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::json;
use trellis_crdt::ReplicaId;
use trellis_gossip::messages::Message;
use trellis_gossip::node::{Action, Event, Gossip, GossipConfig};
use trellis_gossip::pair::{Pair, Seen};
use trellis_net::{encode_frame, FrameDecoder};
use trellis_store::{MemStore, Mutation, Store, StoreConfig};

fn store(id: u64, records: std::ops::Range<u32>, tag: &str) -> MemStore {
    let store = MemStore::with_wall_clock(
        ReplicaId(id),
        StoreConfig::default(),
        Arc::new(|| 1_000_000),
    );
    for n in records {
        let doc = json!({"n": n, "tag": tag, "tags": ["a", "b"]});
        store
            .apply("leads", &format!("lead-{n:03}"), Mutation::Put(doc))
            .wait()
            .unwrap();
    }
    store
}

/// Every message two nodes send while one bootstraps the other and they
/// reconcile a few differences, encoded as frames.
fn real_frames() -> Vec<Vec<u8>> {
    let config = GossipConfig {
        records_bytes_per_message: 1_500,
        jitter_ms: 0,
        ..GossipConfig::default()
    };
    let mut pair = Pair::new([store(1, 0..60, "a"), store(2, 0..0, "b")], &config);
    let frames = Rc::new(RefCell::new(Vec::new()));
    let seen = Rc::clone(&frames);
    pair.observe(move |when, message| {
        if let Seen::Sent { .. } = when {
            seen.borrow_mut().push(encode_frame(message).unwrap());
        }
    });
    pair.connect();
    pair.deliver(usize::MAX);
    pair.advance(5_000);
    pair.event(1, Event::Tick);
    pair.deliver(usize::MAX);
    // A few differences, reconciled item by item.
    for n in 0..5u32 {
        pair.store(1)
            .apply(
                "leads",
                &format!("lead-{n:03}"),
                Mutation::Put(json!({"changed": n})),
            )
            .wait()
            .unwrap();
    }
    pair.advance(5_000);
    pair.event(0, Event::Tick);
    pair.deliver(usize::MAX);
    let frames = frames.borrow().clone();
    assert!(frames.len() > 10, "{} frames", frames.len());
    frames
}

/// Feeds `stream` to a node over a small store, carrying out a bounded
/// number of merges, as a driver would.
fn handle_stream(stream: &[u8], chunk: usize) {
    let store = store(7, 0..20, "c");
    let mut node = Gossip::new(ReplicaId(7), GossipConfig::default(), 1_000_000);
    let peer = ReplicaId(1);
    node.handle(1_000_000, Event::Connected(peer), &store);
    let mut decoder = FrameDecoder::new(64 << 10);
    for piece in stream.chunks(chunk.max(1)) {
        decoder.push(piece);
        loop {
            let message = match decoder.next_frame::<Message>() {
                Ok(Some(message)) => message,
                Ok(None) | Err(_) => break,
            };
            let mut pending = node.handle(
                1_000_100,
                Event::Received {
                    from: peer,
                    message,
                    bytes: 0,
                },
                &store,
            );
            for _ in 0..256 {
                let Some(action) = pending.pop() else { break };
                if let Action::Merge {
                    from,
                    collection,
                    key,
                    state,
                    origin,
                    kind,
                } = action
                {
                    let result = store.merge(&collection, &key, state, origin).wait();
                    pending.extend(node.handle(
                        1_000_200,
                        Event::merge_outcome(from, kind, origin, result),
                        &store,
                    ));
                }
            }
        }
    }
}

thread_local! {
    static FRAMES: Vec<Vec<u8>> = real_frames();
}

#[derive(Debug, Clone)]
enum Damage {
    Flip { at: usize, xor: u8 },
    Cut { at: usize },
    Append(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (any::<usize>(), 1u8..=255).prop_map(|(at, xor)| Damage::Flip { at, xor }),
        1 => any::<usize>().prop_map(|at| Damage::Cut { at }),
        1 => proptest::collection::vec(any::<u8>(), 1..32).prop_map(Damage::Append),
    ]
}

proptest! {
    #![proptest_config(trellis_crdt::testing::config())]

    #[test]
    fn corrupted_real_frames_never_panic_the_handler(
        picks in proptest::collection::vec(any::<usize>(), 1..6),
        damages in proptest::collection::vec(damage(), 0..6),
        chunk in 1usize..200,
    ) {
        let mut stream: Vec<u8> = FRAMES.with(|frames| {
            picks.iter().flat_map(|pick| frames[pick % frames.len()].clone()).collect()
        });
        for damage in &damages {
            match damage {
                Damage::Flip { at, xor } => {
                    let len = stream.len();
                    stream[at % len] ^= xor;
                }
                Damage::Cut { at } => {
                    let len = stream.len();
                    stream.truncate(at % len);
                }
                Damage::Append(bytes) => stream.extend(bytes),
            }
            if stream.is_empty() {
                break;
            }
        }
        handle_stream(&stream, chunk);
    }

    #[test]
    fn random_bytes_never_panic_the_handler(
        stream in proptest::collection::vec(any::<u8>(), 0..2048),
        chunk in 1usize..200,
    ) {
        handle_stream(&stream, chunk);
    }
}
