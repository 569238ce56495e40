//! `Gossip`: one node's replication protocol as a plain state machine.
//!
//! Events go in (a peer connected, a message arrived, a local write, a
//! merge finished, a timer tick) with the current time; actions come out
//! (send this message, merge this state durably). The caller owns the
//! sockets, the clock and the store's asynchronous writes, which makes the
//! protocol easy to drive from a deterministic simulation as well as from
//! the tokio driver.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use trellis_crdt::{codec, Record, ReplicaId, Timestamp};
use trellis_store::index::KeyRange;
use trellis_store::{Merged, Origin, Store, StoreError};

use crate::messages::{Message, Shipped};
use crate::reconcile::{respond, start, Tuning};
use crate::stream::{successor, OutStream};
use crate::StoreCollection;

/// How a node gossips.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipConfig {
    /// How often a node starts a reconciliation session. Default 1000 ms.
    pub reconcile_every_ms: u64,
    /// Random extra delay added to each interval, up to this. Default 250 ms.
    pub jitter_ms: u64,
    /// How many connected peers a local write is pushed to (all when
    /// there are fewer). Default 8.
    pub push_fanout: usize,
    /// A session with no answer for this long is abandoned. Default 10 s.
    pub session_timeout_ms: u64,
    /// The most encoded record bytes in one `Records` message. Default 1 MiB.
    pub records_bytes_per_message: usize,
    /// Range splitting.
    pub tuning: Tuning,
    /// Seeds the node's random choices (peer order, jitter).
    pub seed: u64,
}

impl Default for GossipConfig {
    fn default() -> Self {
        GossipConfig {
            reconcile_every_ms: 1000,
            jitter_ms: 250,
            push_fanout: 8,
            session_timeout_ms: 10_000,
            records_bytes_per_message: 1 << 20,
            tuning: Tuning::default(),
            seed: 0,
        }
    }
}

/// Why a remote state is being merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeKind {
    /// An eagerly pushed delta; acknowledged once merged.
    Push {
        /// The push's id, for the acknowledgement.
        id: u64,
    },
    /// A full state shipped by reconciliation.
    Repair,
    /// A full state from chunk `chunk` of a bulk stream; the chunk is
    /// acknowledged once all its records are merged.
    Streamed {
        /// The chunk's id.
        chunk: u64,
    },
}

impl MergeKind {
    /// Whether the state came from reconciliation (a repair) rather than
    /// an eager push.
    pub fn is_repair(self) -> bool {
        !matches!(self, MergeKind::Push { .. })
    }
}

/// Something that happened to the node.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A connection to `peer` is up (the transport verified its identity).
    Connected(ReplicaId),
    /// The connection to `peer` is gone.
    Disconnected(ReplicaId),
    /// A message arrived from `from`; `bytes` is its size on the wire.
    Received {
        /// The sender.
        from: ReplicaId,
        /// The message.
        message: Message,
        /// Its encoded size.
        bytes: usize,
    },
    /// A local write was made durable; its delta should reach the peers.
    LocalWrite {
        /// Collection.
        collection: String,
        /// Key.
        key: String,
        /// The write's delta.
        delta: Record,
        /// This node and the write's time.
        origin: Origin,
    },
    /// A merge asked for by [`Action::Merge`] finished durably.
    Merged {
        /// Who sent the state.
        from: ReplicaId,
        /// Why it was merged.
        kind: MergeKind,
        /// Where the change came from.
        origin: Origin,
        /// Whether local state grew.
        grew: bool,
    },
    /// A merge asked for by [`Action::Merge`] was refused by the store
    /// (the caller logs why). A push is then not acknowledged; a stream
    /// chunk still is, so the stream moves on (reconciliation retries the
    /// record later).
    MergeFailed {
        /// Who sent the state.
        from: ReplicaId,
        /// Why it was being merged.
        kind: MergeKind,
    },
    /// Time passed; the node may start a reconciliation.
    Tick,
}

impl Event {
    /// What to report once an [`Action::Merge`] finished: `Merged`, or
    /// `MergeFailed` if the store refused it.
    pub fn merge_outcome(
        from: ReplicaId,
        kind: MergeKind,
        origin: Origin,
        result: Result<Merged, StoreError>,
    ) -> Event {
        match result {
            Ok(merged) => Event::Merged {
                from,
                kind,
                origin,
                grew: merged.grew,
            },
            Err(_) => Event::MergeFailed { from, kind },
        }
    }
}

/// Something the caller must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send `message` to `to`.
    Send {
        /// The peer.
        to: ReplicaId,
        /// The message.
        message: Message,
    },
    /// Merge `state` into the store durably, then report
    /// [`Event::Merged`].
    Merge {
        /// Who sent it.
        from: ReplicaId,
        /// Collection.
        collection: String,
        /// Key.
        key: String,
        /// The delta or full state.
        state: Record,
        /// Where the change came from.
        origin: Origin,
        /// Why.
        kind: MergeKind,
    },
}

/// What a node knows about one peer: the figures behind consistency-window
/// reporting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Whether a connection is up.
    pub connected: bool,
    /// When (local milliseconds) the last fully completed reconciliation
    /// with this peer started: everything the peer held then is here.
    pub last_reconciled_ms: Option<u64>,
    /// Bytes received from the peer.
    pub bytes_in: u64,
    /// Bytes sent to the peer.
    pub bytes_out: u64,
    /// Records reconciliation repaired here from this peer.
    pub records_repaired: u64,
    /// Remote changes from this peer that grew local state.
    pub changes_applied: u64,
    /// Propagation delays (origin time → applied here) of the latest
    /// changes, in milliseconds, newest last; at most
    /// [`DELAY_SAMPLES`].
    pub delays_ms: VecDeque<u64>,
    /// Every propagation delay since the node started, counted in
    /// buckets (for metrics).
    pub delay_histogram: DelayHistogram,
    /// Reconciliation sessions with this peer that completed (every
    /// collection settled).
    pub sessions_completed: u64,
}

/// How many propagation delays a peer keeps.
pub const DELAY_SAMPLES: usize = 1024;

/// Upper bounds, in milliseconds, of the propagation-delay buckets.
pub const DELAY_BUCKETS_MS: [u64; 14] = [
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 5_000, 30_000, 60_000, 300_000,
];

/// A histogram of propagation delays over [`DELAY_BUCKETS_MS`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DelayHistogram {
    /// Delays in each bucket: `counts[i]` are those `<= DELAY_BUCKETS_MS[i]`
    /// and above the bucket before; the last entry counts the rest.
    pub counts: [u64; DELAY_BUCKETS_MS.len() + 1],
    /// Every delay added up, in milliseconds.
    pub sum_ms: u64,
}

impl DelayHistogram {
    /// Counts one delay.
    pub fn observe(&mut self, delay_ms: u64) {
        let bucket = DELAY_BUCKETS_MS
            .iter()
            .position(|bound| delay_ms <= *bound)
            .unwrap_or(DELAY_BUCKETS_MS.len());
        self.counts[bucket] += 1;
        self.sum_ms = self.sum_ms.saturating_add(delay_ms);
    }

    /// How many delays were counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[derive(Debug, Default)]
struct Peer {
    stats: PeerStats,
    collections: BTreeSet<String>,
    session: Option<Session>,
    /// Ranges being streamed to the peer, by collection.
    streams_out: BTreeMap<String, OutStream>,
    /// Chunks received from the peer, with how many of their records
    /// are still being merged.
    chunks_in: BTreeMap<u64, usize>,
    /// Collections the peer is streaming here and has not finished.
    streaming_in: BTreeSet<String>,
    /// A session that completed while a stream from the peer was still
    /// arriving: its start time, recorded once the stream is merged.
    reconciled_after_stream: Option<u64>,
}

impl Peer {
    /// Whether bulk streaming with the peer is under way, either way.
    fn is_streaming(&self) -> bool {
        !self.streams_out.is_empty() || !self.streaming_in.is_empty() || !self.chunks_in.is_empty()
    }
}

#[derive(Debug)]
struct Session {
    id: u64,
    started_ms: u64,
    last_heard_ms: u64,
    open: BTreeSet<String>,
}

/// One node's gossip protocol.
pub struct Gossip {
    me: ReplicaId,
    config: GossipConfig,
    peers: BTreeMap<ReplicaId, Peer>,
    rng: SmallRng,
    next_reconcile_ms: u64,
    next_id: u64,
}

impl Gossip {
    /// A node `me` starting at time `now_ms`.
    pub fn new(me: ReplicaId, config: GossipConfig, now_ms: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(config.seed ^ me.0);
        let first = now_ms + rng.random_range(0..=config.reconcile_every_ms.max(1));
        Gossip {
            me,
            config,
            peers: BTreeMap::new(),
            rng,
            next_reconcile_ms: first,
            next_id: 1,
        }
    }

    /// This node.
    pub fn id(&self) -> ReplicaId {
        self.me
    }

    /// Every peer heard of, with its figures.
    pub fn peers(&self) -> impl Iterator<Item = (ReplicaId, &PeerStats)> {
        self.peers.iter().map(|(id, peer)| (*id, &peer.stats))
    }

    /// Records that `bytes` were sent to `peer` (the caller knows the
    /// size on the wire).
    pub fn note_sent(&mut self, peer: ReplicaId, bytes: usize) {
        self.peers.entry(peer).or_default().stats.bytes_out += bytes as u64;
    }

    /// Handles one event at time `now_ms`, reading `store` as needed.
    pub fn handle(&mut self, now_ms: u64, event: Event, store: &impl Store) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            Event::Connected(peer) => {
                self.peers.entry(peer).or_default().stats.connected = true;
                let collections = collection_names(store);
                actions.push(Action::Send {
                    to: peer,
                    message: Message::Hello {
                        replica: self.me,
                        collections,
                    },
                });
                self.pump_all(now_ms, peer, store, &mut actions);
            }
            Event::Disconnected(peer) => {
                let peer = self.peers.entry(peer).or_default();
                peer.stats.connected = false;
                peer.session = None;
                peer.streaming_in.clear();
                for stream in peer.streams_out.values_mut() {
                    stream.rewind(now_ms);
                }
            }
            Event::Received {
                from,
                message,
                bytes,
            } => {
                self.peers.entry(from).or_default().stats.bytes_in += bytes as u64;
                self.receive(now_ms, from, message, store, &mut actions);
            }
            Event::LocalWrite {
                collection,
                key,
                delta,
                origin,
            } => self.push(collection, key, delta, origin, &mut actions),
            Event::Merged {
                from,
                kind,
                origin,
                grew,
            } => {
                let stats = &mut self.peers.entry(from).or_default().stats;
                if grew {
                    stats.changes_applied += 1;
                    if stats.delays_ms.len() == DELAY_SAMPLES {
                        stats.delays_ms.pop_front();
                    }
                    let delay = now_ms.saturating_sub(origin.time.millis());
                    stats.delays_ms.push_back(delay);
                    stats.delay_histogram.observe(delay);
                    if kind.is_repair() {
                        stats.records_repaired += 1;
                    }
                }
                match kind {
                    MergeKind::Push { id } => actions.push(Action::Send {
                        to: from,
                        message: Message::PushAck { id },
                    }),
                    MergeKind::Streamed { chunk } => self.chunk_merged(from, chunk, &mut actions),
                    MergeKind::Repair => {}
                }
            }
            Event::MergeFailed { from, kind } => {
                if let MergeKind::Streamed { chunk } = kind {
                    self.chunk_merged(from, chunk, &mut actions);
                }
            }
            Event::Tick => self.tick(now_ms, store, &mut actions),
        }
        actions
    }

    fn receive(
        &mut self,
        now_ms: u64,
        from: ReplicaId,
        message: Message,
        store: &impl Store,
        actions: &mut Vec<Action>,
    ) {
        match message {
            Message::Hello { collections, .. } => {
                self.peers.entry(from).or_default().collections = collections.into_iter().collect();
            }
            Message::Push {
                id,
                collection,
                key,
                delta,
                origin,
            } => actions.push(Action::Merge {
                from,
                collection,
                key,
                state: delta,
                origin,
                kind: MergeKind::Push { id },
            }),
            Message::PushAck { .. } => {}
            Message::Reconcile { session, round } => {
                let view = StoreCollection::new(store, &round.collection);
                let step = match respond(&view, &round, self.config.tuning) {
                    Ok(step) => step,
                    Err(err) => {
                        // A peer speaking nonsense loses this round only.
                        tracing::warn!(peer = %from, %err, "dropping a malformed reconciliation round");
                        return;
                    }
                };
                self.ship(from, &round.collection, step.ship, store, actions);
                if !step.ship_ranges.is_empty() {
                    let peer = self.peers.entry(from).or_default();
                    for range in step.ship_ranges {
                        match peer.streams_out.get_mut(&round.collection) {
                            Some(stream) => stream.add(range),
                            None => {
                                let stream = OutStream::new(range, now_ms);
                                peer.streams_out.insert(round.collection.clone(), stream);
                            }
                        }
                    }
                    self.pump(now_ms, from, &round.collection, store, actions);
                }
                let finished = match &step.reply {
                    None => true,
                    Some(reply) => reply.is_done(),
                };
                if finished {
                    self.finish(from, session, &round.collection);
                } else if let Some(open) = self.session_mut(from, session) {
                    open.last_heard_ms = now_ms;
                }
                if let Some(reply) = step.reply {
                    actions.push(Action::Send {
                        to: from,
                        message: Message::Reconcile {
                            session,
                            round: reply,
                        },
                    });
                }
            }
            Message::Records {
                collection,
                records,
            } => merge_shipped(from, &collection, records, MergeKind::Repair, actions),
            Message::Stream {
                id,
                collection,
                records,
                last,
            } => {
                let peer = self.peers.entry(from).or_default();
                if last {
                    peer.streaming_in.remove(&collection);
                } else {
                    peer.streaming_in.insert(collection.clone());
                }
                if records.is_empty() {
                    self.chunk_merged_all(from, id, actions);
                    return;
                }
                *peer.chunks_in.entry(id).or_default() += records.len();
                let kind = MergeKind::Streamed { chunk: id };
                merge_shipped(from, &collection, records, kind, actions);
            }
            Message::StreamAck { id } => {
                let Some(peer) = self.peers.get_mut(&from) else {
                    return;
                };
                let mut acked = None;
                for (collection, stream) in &mut peer.streams_out {
                    if stream.ack(id, now_ms) {
                        acked = Some(collection.clone());
                        break;
                    }
                }
                if let Some(collection) = acked {
                    self.pump(now_ms, from, &collection, store, actions);
                }
            }
        }
    }

    /// One record of chunk `chunk` from `from` is merged (or refused).
    fn chunk_merged(&mut self, from: ReplicaId, chunk: u64, actions: &mut Vec<Action>) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        let Some(left) = peer.chunks_in.get_mut(&chunk) else {
            return;
        };
        *left = left.saturating_sub(1);
        if *left == 0 {
            peer.chunks_in.remove(&chunk);
            self.chunk_merged_all(from, chunk, actions);
        }
    }

    /// Every record of chunk `chunk` from `from` is merged: acknowledge
    /// it, and if that ends the peer's streams, count the session that
    /// was waiting for them as complete.
    fn chunk_merged_all(&mut self, from: ReplicaId, chunk: u64, actions: &mut Vec<Action>) {
        actions.push(Action::Send {
            to: from,
            message: Message::StreamAck { id: chunk },
        });
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        if peer.streaming_in.is_empty() && peer.chunks_in.is_empty() {
            if let Some(started) = peer.reconciled_after_stream.take() {
                peer.stats.last_reconciled_ms = Some(started);
            }
        }
    }

    /// Sends the next chunks of the stream of `collection` to `to`, as far
    /// as its window allows; forgets the stream once it is all
    /// acknowledged.
    fn pump(
        &mut self,
        now_ms: u64,
        to: ReplicaId,
        collection: &str,
        store: &impl Store,
        actions: &mut Vec<Action>,
    ) {
        let byte_limit = self.config.records_bytes_per_message;
        let Some(peer) = self.peers.get_mut(&to) else {
            return;
        };
        if !peer.stats.connected {
            return;
        }
        let Some(stream) = peer.streams_out.get_mut(collection) else {
            return;
        };
        loop {
            let id = self.next_id + 1;
            let Some(chunk) = stream.next_chunk(store, collection, byte_limit, id, now_ms) else {
                break;
            };
            self.next_id = id;
            actions.push(Action::Send {
                to,
                message: Message::Stream {
                    id,
                    collection: collection.to_owned(),
                    records: chunk.records,
                    last: chunk.last,
                },
            });
        }
        if stream.is_finished() {
            peer.streams_out.remove(collection);
        }
    }

    /// Resumes every stream to `peer`.
    fn pump_all(
        &mut self,
        now_ms: u64,
        peer: ReplicaId,
        store: &impl Store,
        actions: &mut Vec<Action>,
    ) {
        let collections: Vec<String> = self
            .peers
            .get(&peer)
            .map(|state| state.streams_out.keys().cloned().collect())
            .unwrap_or_default();
        for collection in collections {
            self.pump(now_ms, peer, &collection, store, actions);
        }
    }

    /// Pushes a local write's delta to up to `push_fanout` connected peers.
    fn push(
        &mut self,
        collection: String,
        key: String,
        delta: Record,
        origin: Origin,
        actions: &mut Vec<Action>,
    ) {
        let mut targets: Vec<ReplicaId> = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.stats.connected)
            .map(|(id, _)| *id)
            .collect();
        while targets.len() > self.config.push_fanout {
            let drop = self.rng.random_range(0..targets.len());
            targets.swap_remove(drop);
        }
        let id = self.fresh_id();
        for to in targets {
            actions.push(Action::Send {
                to,
                message: Message::Push {
                    id,
                    collection: collection.clone(),
                    key: key.clone(),
                    delta: delta.clone(),
                    origin,
                },
            });
        }
    }

    /// Starts a session with the peer synced least recently, when due.
    fn tick(&mut self, now_ms: u64, store: &impl Store, actions: &mut Vec<Action>) {
        let timeout = self.config.session_timeout_ms;
        let mut stalled = Vec::new();
        for (id, peer) in &mut self.peers {
            if peer
                .session
                .as_ref()
                .is_some_and(|session| now_ms.saturating_sub(session.last_heard_ms) > timeout)
            {
                peer.session = None;
            }
            for stream in peer.streams_out.values_mut() {
                if stream.is_waiting() && now_ms.saturating_sub(stream.last_progress_ms) > timeout {
                    // Chunks or their acknowledgements were lost: send again.
                    stream.rewind(now_ms);
                    stalled.push(*id);
                }
            }
        }
        for peer in stalled {
            self.pump_all(now_ms, peer, store, actions);
        }
        if now_ms < self.next_reconcile_ms {
            return;
        }
        self.next_reconcile_ms = now_ms
            + self.config.reconcile_every_ms
            + self.rng.random_range(0..=self.config.jitter_ms);
        let candidates: Vec<(Option<u64>, ReplicaId)> = self
            .peers
            .iter()
            .filter(|(_, peer)| {
                peer.stats.connected && peer.session.is_none() && !peer.is_streaming()
            })
            .map(|(id, peer)| (peer.stats.last_reconciled_ms, *id))
            .collect();
        let Some(oldest) = candidates.iter().map(|(last, _)| *last).min() else {
            return;
        };
        let tied: Vec<ReplicaId> = candidates
            .iter()
            .filter(|(last, _)| *last == oldest)
            .map(|(_, id)| *id)
            .collect();
        let target = tied[self.rng.random_range(0..tied.len())];
        let id = self.fresh_id();
        let mut collections: BTreeSet<String> = collection_names(store).into_iter().collect();
        if let Some(peer) = self.peers.get(&target) {
            collections.extend(peer.collections.iter().cloned());
        }
        for collection in &collections {
            let view = StoreCollection::new(store, collection);
            actions.push(Action::Send {
                to: target,
                message: Message::Reconcile {
                    session: id,
                    round: start(&view, collection),
                },
            });
        }
        let peer = self.peers.entry(target).or_default();
        if collections.is_empty() {
            peer.stats.last_reconciled_ms = Some(now_ms);
            peer.stats.sessions_completed += 1;
        } else {
            peer.session = Some(Session {
                id,
                started_ms: now_ms,
                last_heard_ms: now_ms,
                open: collections,
            });
        }
    }

    /// Sends the records of `keys` as full states, in messages of bounded
    /// size.
    fn ship(
        &mut self,
        to: ReplicaId,
        collection: &str,
        keys: Vec<String>,
        store: &impl Store,
        actions: &mut Vec<Action>,
    ) {
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        for key in keys {
            let Ok(Some(record)) = store.get(collection, &key) else {
                continue;
            };
            let time = last_change(store, collection, &key);
            let size = codec::encode(&record).len() + key.len();
            if !batch.is_empty() && batch_bytes + size > self.config.records_bytes_per_message {
                actions.push(records(to, collection, std::mem::take(&mut batch)));
                batch_bytes = 0;
            }
            batch_bytes += size;
            batch.push(Shipped { key, record, time });
        }
        if !batch.is_empty() {
            actions.push(records(to, collection, batch));
        }
    }

    /// Marks `collection` of `peer`'s session `session` reconciled.
    fn finish(&mut self, peer: ReplicaId, session: u64, collection: &str) {
        let Some(state) = self.peers.get_mut(&peer) else {
            return;
        };
        let Some(open) = state.session.as_mut().filter(|open| open.id == session) else {
            return;
        };
        open.open.remove(collection);
        if open.open.is_empty() {
            state.stats.sessions_completed += 1;
            if state.streaming_in.is_empty() && state.chunks_in.is_empty() {
                state.stats.last_reconciled_ms = Some(open.started_ms);
            } else {
                state.reconciled_after_stream = Some(open.started_ms);
            }
            state.session = None;
        }
    }

    fn session_mut(&mut self, peer: ReplicaId, session: u64) -> Option<&mut Session> {
        self.peers
            .get_mut(&peer)?
            .session
            .as_mut()
            .filter(|open| open.id == session)
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// Asks for durable merges of the full states `from` shipped.
fn merge_shipped(
    from: ReplicaId,
    collection: &str,
    records: Vec<Shipped>,
    kind: MergeKind,
    actions: &mut Vec<Action>,
) {
    for shipped in records {
        actions.push(Action::Merge {
            from,
            collection: collection.to_owned(),
            key: shipped.key,
            state: shipped.record,
            origin: Origin {
                replica: from,
                time: shipped.time,
                full_state: true,
            },
            kind,
        });
    }
}

fn records(to: ReplicaId, collection: &str, records: Vec<Shipped>) -> Action {
    Action::Send {
        to,
        message: Message::Records {
            collection: collection.to_owned(),
            records,
        },
    }
}

/// When `key` last changed here, from its index entry.
fn last_change(store: &impl Store, collection: &str, key: &str) -> Timestamp {
    // The range from `key` to `key` + NUL holds exactly `key`.
    let just_key = KeyRange::new(key, successor(key));
    store
        .index_entries(collection, &just_key, 1)
        .first()
        .map(|(_, entry)| entry.hlc)
        .unwrap_or_default()
}

fn collection_names(store: &impl Store) -> Vec<String> {
    store
        .collections()
        .map(|infos| infos.into_iter().map(|info| info.name).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_land_in_their_buckets() {
        let mut histogram = DelayHistogram::default();
        for delay in [0, 1, 2, 3, 300_000, 300_001] {
            histogram.observe(delay);
        }
        assert_eq!(histogram.counts[0], 2); // 0 and 1 ms
        assert_eq!(histogram.counts[1], 1); // 2 ms
        assert_eq!(histogram.counts[2], 1); // 3 ms, in the 5 ms bucket
        assert_eq!(histogram.counts[DELAY_BUCKETS_MS.len() - 1], 1);
        assert_eq!(histogram.counts[DELAY_BUCKETS_MS.len()], 1);
        assert_eq!(histogram.count(), 6);
        assert_eq!(histogram.sum_ms, 600_007);
    }
}
