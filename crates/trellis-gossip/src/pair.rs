//! Two [`Gossip`] nodes wired back to back in one process: messages go
//! through an in-order queue (encoded, so sizes are real), merges are
//! applied at once. Tests step it message by message; benchmarks count
//! what crosses the "wire". The multi-node simulation with faults lives
//! in the crate's tests.

use std::collections::VecDeque;

use trellis_crdt::codec;

use crate::messages::Message;
use crate::node::{Action, Event, Gossip, GossipConfig};
use trellis_store::Store;

/// A message on its way.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// The receiving side: 0 or 1.
    pub to: usize,
    /// The message.
    pub message: Message,
    /// Its encoded size.
    pub bytes: usize,
}

/// A moment in a message's life, for [`Pair::observe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Side `from` sent it.
    Sent {
        /// The sender: 0 or 1.
        from: usize,
    },
    /// It is being delivered to side `to`.
    Delivered {
        /// The receiver: 0 or 1.
        to: usize,
    },
}

/// What one side sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Messages.
    pub messages: u64,
    /// Encoded bytes of every message.
    pub bytes: u64,
    /// Encoded bytes of `Stream` and `Records` messages.
    pub record_bytes: u64,
}

/// What [`Pair::observe`] installs.
type Observer = Box<dyn FnMut(Seen, &Message)>;

/// Two nodes and the queue between them.
pub struct Pair<S> {
    stores: [S; 2],
    nodes: [Gossip; 2],
    wire: VecDeque<Envelope>,
    sent: [Traffic; 2],
    now_ms: u64,
    observer: Option<Observer>,
}

impl<S: Store> Pair<S> {
    /// Nodes over `stores`, each named by its store's replica id.
    pub fn new(stores: [S; 2], config: &GossipConfig) -> Self {
        let nodes = [
            Gossip::new(stores[0].replica_id(), config.clone(), 0),
            Gossip::new(stores[1].replica_id(), config.clone(), 0),
        ];
        Pair {
            stores,
            nodes,
            wire: VecDeque::new(),
            sent: [Traffic::default(); 2],
            now_ms: 0,
            observer: None,
        }
    }

    /// Calls `observer` for every message sent and every message
    /// delivered.
    pub fn observe(&mut self, observer: impl FnMut(Seen, &Message) + 'static) {
        self.observer = Some(Box::new(observer));
    }

    /// Side `side`'s store.
    pub fn store(&self, side: usize) -> &S {
        &self.stores[side]
    }

    /// Side `side`'s protocol state.
    pub fn node(&self, side: usize) -> &Gossip {
        &self.nodes[side]
    }

    /// What side `side` has sent so far.
    pub fn sent(&self, side: usize) -> Traffic {
        self.sent[side]
    }

    /// Messages not delivered yet, oldest first.
    pub fn wire(&self) -> &VecDeque<Envelope> {
        &self.wire
    }

    /// The current time.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Moves time forward.
    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
    }

    /// Feeds `event` to side `side`, merging at once and queueing what it
    /// sends.
    pub fn event(&mut self, side: usize, event: Event) {
        let actions = self.nodes[side].handle(self.now_ms, event, &self.stores[side]);
        for action in actions {
            match action {
                Action::Send { message, .. } => {
                    let bytes = codec::encode(&message).len();
                    let traffic = &mut self.sent[side];
                    traffic.messages += 1;
                    traffic.bytes += bytes as u64;
                    if matches!(message, Message::Stream { .. } | Message::Records { .. }) {
                        traffic.record_bytes += bytes as u64;
                    }
                    if let Some(observer) = &mut self.observer {
                        observer(Seen::Sent { from: side }, &message);
                    }
                    self.wire.push_back(Envelope {
                        to: 1 - side,
                        message,
                        bytes,
                    });
                }
                Action::Merge {
                    from,
                    collection,
                    key,
                    state,
                    origin,
                    kind,
                } => {
                    let result = self.stores[side]
                        .merge(&collection, &key, state, origin)
                        .wait();
                    let event = Event::merge_outcome(from, kind, origin, result);
                    self.event(side, event);
                }
            }
        }
    }

    /// Delivers the oldest message; returns whether there was one.
    pub fn deliver_one(&mut self) -> bool {
        let Some(envelope) = self.wire.pop_front() else {
            return false;
        };
        if let Some(observer) = &mut self.observer {
            observer(Seen::Delivered { to: envelope.to }, &envelope.message);
        }
        let from = self.stores[1 - envelope.to].replica_id();
        self.event(
            envelope.to,
            Event::Received {
                from,
                message: envelope.message,
                bytes: envelope.bytes,
            },
        );
        true
    }

    /// Delivers up to `limit` messages; returns how many were delivered.
    pub fn deliver(&mut self, limit: usize) -> usize {
        let mut delivered = 0;
        while delivered < limit && self.deliver_one() {
            delivered += 1;
        }
        delivered
    }

    /// Both sides see the connection come up.
    pub fn connect(&mut self) {
        let (a, b) = (self.stores[0].replica_id(), self.stores[1].replica_id());
        self.event(0, Event::Connected(b));
        self.event(1, Event::Connected(a));
    }

    /// The connection drops: messages in flight are lost.
    pub fn disconnect(&mut self) {
        self.wire.clear();
        let (a, b) = (self.stores[0].replica_id(), self.stores[1].replica_id());
        self.event(0, Event::Disconnected(b));
        self.event(1, Event::Disconnected(a));
    }

    /// Loses every message in flight, the connection staying up.
    pub fn lose_in_flight(&mut self) {
        self.wire.clear();
    }
}
