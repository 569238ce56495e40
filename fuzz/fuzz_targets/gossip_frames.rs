//! Arbitrary bytes as the stream of a gossip connection: framed by
//! `trellis-net`'s `FrameDecoder`, decoded as gossip `Message`s, and
//! handled by a `Gossip` node over a small store, merges included.
//!
//! Nothing may panic; malformed frames and reconciliation rounds must
//! come back as errors. The first input byte sets how the rest is split
//! into pushes (to exercise partial frames).

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use trellis_crdt::ReplicaId;
use trellis_gossip::messages::Message;
use trellis_gossip::node::{Action, Event, Gossip, GossipConfig};
use trellis_net::FrameDecoder;
use trellis_store::{MemStore, Mutation, Store, StoreConfig};

fuzz_target!(|input: &[u8]| {
    let Some((&chunk, stream)) = input.split_first() else {
        return;
    };
    let store = MemStore::with_wall_clock(
        ReplicaId(1),
        StoreConfig::default(),
        std::sync::Arc::new(|| 1_000_000),
    );
    for i in 0..20 {
        let doc = json!({"n": i, "tags": ["a", "b"]});
        if store
            .apply("leads", &format!("lead-{i:02}"), Mutation::Put(doc))
            .wait()
            .is_err()
        {
            return;
        }
    }
    let mut node = Gossip::new(ReplicaId(1), GossipConfig::default(), 1_000_000);
    let peer = ReplicaId(2);
    node.handle(1_000_000, Event::Connected(peer), &store);

    let mut decoder = FrameDecoder::new(64 << 10);
    for piece in stream.chunks(usize::from(chunk).max(1)) {
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
            // Carry out merges, as a driver would, a bounded number of times.
            for _ in 0..64 {
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
                    if let Ok(merged) = store.merge(&collection, &key, state, origin).wait() {
                        pending.extend(node.handle(
                            1_000_200,
                            Event::Merged {
                                from,
                                kind,
                                origin,
                                grew: merged.grew,
                            },
                            &store,
                        ));
                    }
                }
            }
        }
    }
});
