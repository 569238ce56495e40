//! The driver task: owns the protocol state machine, the links and the
//! membership view, and turns [`Input`]s into protocol events and the
//! protocol's actions into I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use trellis_crdt::ReplicaId;
use trellis_net::{
    encode_frame, Backoff, ConnectionPool, Endpoint, PeerConnection, PeerStatus, ALPN_GOSSIP,
};
use trellis_store::{Origin, Store};

use super::link::{self, Link};
use super::{inbound, DriverConfig, DriverError, GossipStatus, Input, PeerInfo};
use crate::membership::{members, Member};
use crate::messages::Message;
use crate::node::{Action, Event, Gossip};

/// The longest a writer is told about acknowledgements of its push.
const ACK_WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Wall-clock milliseconds: the protocol's time, on the same scale as the
/// hybrid clock's physical part (propagation delays compare the two).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// A seed address and when to try it again.
struct Seed {
    addr: SocketAddr,
    /// The node found there, once known.
    found: Option<ReplicaId>,
    probing: bool,
    backoff: Backoff,
}

pub(super) struct Driver<S> {
    me: ReplicaId,
    store: Arc<S>,
    endpoint: Endpoint,
    pool: Arc<ConnectionPool>,
    config: DriverConfig,
    gossip: Gossip,
    inputs: mpsc::Sender<Input>,
    /// Membership entries, refreshed from the store.
    members: BTreeMap<ReplicaId, Member>,
    /// Addresses learned without an entry yet: seeds and incoming
    /// connections.
    hints: BTreeMap<ReplicaId, SocketAddr>,
    seeds: Vec<Seed>,
    links: BTreeMap<ReplicaId, Link>,
    next_generation: u64,
    merges: Arc<Semaphore>,
    /// Writers waiting to hear which peers acknowledged their push, by
    /// push id, with when the push went out.
    ack_waiters: BTreeMap<u64, (Instant, mpsc::UnboundedSender<ReplicaId>)>,
    tasks: JoinSet<()>,
    dropped_messages: u64,
    refused_merges: u64,
}

impl<S: Store> Driver<S> {
    pub fn new(
        store: Arc<S>,
        endpoint: Endpoint,
        config: DriverConfig,
        inputs: mpsc::Sender<Input>,
    ) -> Result<Self, DriverError> {
        let me = endpoint.local_id();
        let pool = Arc::new(ConnectionPool::new(endpoint.clone(), ALPN_GOSSIP)?);
        let seeds = config
            .seeds
            .iter()
            .filter(|addr| **addr != config.advertise && **addr != endpoint.local_addr())
            .map(|addr| Seed {
                addr: *addr,
                found: None,
                probing: false,
                backoff: Backoff::new(),
            })
            .collect();
        Ok(Driver {
            me,
            gossip: Gossip::new(me, config.gossip.clone(), now_ms()),
            merges: Arc::new(Semaphore::new(config.max_merges_in_flight)),
            store,
            endpoint,
            pool,
            config,
            inputs,
            members: BTreeMap::new(),
            hints: BTreeMap::new(),
            seeds,
            links: BTreeMap::new(),
            next_generation: 0,
            ack_waiters: BTreeMap::new(),
            tasks: JoinSet::new(),
            dropped_messages: 0,
            refused_merges: 0,
        })
    }

    /// Runs until told to stop (returning who to tell once the driver,
    /// and with it its hold on the store, is gone) or until every sender
    /// of inputs is dropped.
    pub async fn run(
        mut self,
        mut receiver: mpsc::Receiver<Input>,
        incoming: mpsc::Receiver<PeerConnection>,
    ) -> Option<oneshot::Sender<()>> {
        self.tasks
            .spawn(inbound::accept(incoming, self.inputs.clone()));
        let mut tick = tokio::time::interval(self.config.tick);
        let mut dial = tokio::time::interval(self.config.dial_every);
        for timer in [&mut tick, &mut dial] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            tokio::select! {
                input = receiver.recv() => {
                    let Some(input) = input else { break };
                    if let Input::Shutdown(done) = input {
                        self.stop().await;
                        return Some(done);
                    }
                    self.on_input(input).await;
                }
                _ = tick.tick() => {
                    self.protocol(Event::Tick).await;
                    while self.tasks.try_join_next().is_some() {}
                    self.forget_old_waiters();
                }
                _ = dial.tick() => self.dial(),
            }
        }
        self.stop().await;
        None
    }

    /// Ends every task: links finish their streams, readers stop.
    async fn stop(&mut self) {
        self.links.clear();
        self.tasks.shutdown().await;
    }

    async fn on_input(&mut self, input: Input) {
        match input {
            Input::Received {
                from,
                message,
                bytes,
            } => {
                if let Message::PushAck { id } = &message {
                    let gone = self
                        .ack_waiters
                        .get(id)
                        .is_some_and(|(_, waiter)| waiter.send(from).is_err());
                    if gone {
                        self.ack_waiters.remove(id);
                    }
                }
                self.protocol(Event::Received {
                    from,
                    message,
                    bytes,
                })
                .await;
            }
            Input::Dialed { peer, addr } => self.learn_peer(peer, Some(addr)),
            Input::SeedFound { addr, peer } => {
                if let Some(seed) = self.seeds.iter_mut().find(|seed| seed.addr == addr) {
                    seed.probing = false;
                    seed.found = Some(peer);
                    seed.backoff.record_success();
                }
                self.learn_peer(peer, Some(addr));
                self.dial();
            }
            Input::SeedFailed { addr } => {
                let backoff = self.endpoint.config().backoff.clone();
                if let Some(seed) = self.seeds.iter_mut().find(|seed| seed.addr == addr) {
                    seed.probing = false;
                    seed.backoff.record_failure(
                        Instant::now(),
                        &backoff,
                        trellis_net::random_jitter(),
                    );
                }
            }
            Input::LinkUp { peer, generation } => {
                let Some(link) = self.links.get_mut(&peer) else {
                    return;
                };
                if link.generation == generation {
                    link.up = true;
                    tracing::info!(%peer, addr = %link.addr, "gossip link up");
                    self.protocol(Event::Connected(peer)).await;
                }
            }
            Input::LinkDown {
                peer,
                generation,
                error,
            } => {
                if self
                    .links
                    .get(&peer)
                    .is_some_and(|link| link.generation == generation)
                {
                    if let Some(link) = self.links.remove(&peer) {
                        if link.up {
                            tracing::info!(%peer, error = error.as_deref().unwrap_or("closed"), "gossip link down");
                        }
                    }
                    self.protocol(Event::Disconnected(peer)).await;
                }
            }
            Input::LocalWrite {
                collection,
                key,
                applied,
                acks,
            } => {
                let origin = Origin {
                    replica: self.me,
                    time: applied.time,
                    full_state: false,
                };
                let pushed = self
                    .protocol(Event::LocalWrite {
                        collection,
                        key,
                        delta: applied.delta,
                        origin,
                    })
                    .await;
                if let (Some(acks), Some(id)) = (acks, pushed) {
                    self.ack_waiters.insert(id, (Instant::now(), acks));
                }
            }
            Input::Merged {
                from,
                kind,
                origin,
                result,
            } => {
                if let Err(err) = &result {
                    self.refused_merges += 1;
                    tracing::warn!(peer = %from, %err, "refused a remote change");
                }
                self.protocol(Event::merge_outcome(from, kind, origin, result))
                    .await;
            }
            Input::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Input::Shutdown(_) => {}
        }
    }

    /// Feeds one event to the protocol and carries out its actions.
    /// Returns the id of the eager push it sent, if any.
    async fn protocol(&mut self, event: Event) -> Option<u64> {
        let actions = self.gossip.handle(now_ms(), event, &*self.store);
        let mut pushed = None;
        for action in actions {
            match action {
                Action::Send { to, message } => {
                    if let Message::Push { id, .. } = &message {
                        pushed = Some(*id);
                    }
                    self.send(to, &message);
                }
                Action::Merge {
                    from,
                    collection,
                    key,
                    state,
                    origin,
                    kind,
                } => {
                    // Waiting here stops reading inputs: backpressure.
                    let Ok(permit) = Arc::clone(&self.merges).acquire_owned().await else {
                        return pushed;
                    };
                    let pending = self.store.merge(&collection, &key, state, origin);
                    let inputs = self.inputs.clone();
                    self.tasks.spawn(async move {
                        let result = pending.await;
                        drop(permit);
                        let merged = Input::Merged {
                            from,
                            kind,
                            origin,
                            result,
                        };
                        let _ = inputs.send(merged).await;
                    });
                }
            }
        }
        pushed
    }

    fn send(&mut self, to: ReplicaId, message: &Message) {
        let frame = match encode_frame(message) {
            Ok(frame) => frame,
            Err(err) => {
                tracing::warn!(peer = %to, %err, "cannot encode a gossip message; dropped");
                self.dropped_messages += 1;
                return;
            }
        };
        let len = frame.len();
        // A peer that dialed in before this node dialed it (or whose link
        // just failed) gets a link now, and the frame waits in its queue.
        let queued = self.ensure_link(to)
            && self
                .links
                .get(&to)
                .is_some_and(|link| link.send(frame, self.config.peer_queue_bytes));
        if queued {
            self.gossip.note_sent(to, len);
        } else {
            self.dropped_messages += 1;
        }
    }

    /// Drops acknowledgement waiters whose writer stopped listening or
    /// that are older than [`ACK_WAIT_LIMIT`] (late acknowledgements then
    /// go unreported).
    fn forget_old_waiters(&mut self) {
        self.ack_waiters
            .retain(|_, (sent, waiter)| !waiter.is_closed() && sent.elapsed() < ACK_WAIT_LIMIT);
    }

    /// Remembers a peer heard from, and where it was seen.
    fn learn_peer(&mut self, peer: ReplicaId, addr: Option<SocketAddr>) {
        if peer == self.me {
            return;
        }
        if let Some(addr) = addr {
            self.hints.insert(peer, addr);
        }
    }

    /// Re-reads membership, probes seeds, and dials every known node that
    /// has no link and is not backing off.
    fn dial(&mut self) {
        self.members = members(&*self.store)
            .into_iter()
            .filter(|member| member.id != self.me)
            .map(|member| (member.id, member))
            .collect();
        self.probe_seeds();
        let peers: BTreeSet<ReplicaId> = self
            .hints
            .keys()
            .chain(self.members.keys())
            .copied()
            .collect();
        for peer in peers {
            self.ensure_link(peer);
        }
    }

    /// Where `peer` is reached: its membership entry, else where it was
    /// last seen.
    fn address_of(&self, peer: ReplicaId) -> Option<SocketAddr> {
        self.members
            .get(&peer)
            .map(|member| member.addr)
            .or_else(|| self.hints.get(&peer).copied())
    }

    /// Opens a link to `peer` unless one to its current address exists or
    /// the peer is backing off. Returns whether a link now exists.
    fn ensure_link(&mut self, peer: ReplicaId) -> bool {
        let Some(addr) = self.address_of(peer) else {
            return false;
        };
        if let Some(link) = self.links.get(&peer) {
            if link.addr == addr {
                return true;
            }
            // The node moved: drop the old link and dial the new address.
            self.links.remove(&peer);
        }
        if let PeerStatus::Down { retry_in, .. } = self.pool.status(peer) {
            if !retry_in.is_zero() {
                return false;
            }
        }
        self.next_generation += 1;
        let (link, task) = link::open(
            Arc::clone(&self.pool),
            peer,
            addr,
            self.next_generation,
            self.inputs.clone(),
        );
        self.links.insert(peer, link);
        self.tasks.spawn(task);
        true
    }

    /// Finds out which node answers at each seed address not yet known.
    fn probe_seeds(&mut self) {
        let now = Instant::now();
        for seed in &mut self.seeds {
            let known = seed.found.is_some_and(|peer| {
                self.members.contains_key(&peer) || self.hints.contains_key(&peer)
            });
            if known || seed.probing || seed.backoff.retry_in(now).is_some() {
                continue;
            }
            seed.probing = true;
            let (endpoint, inputs, addr) = (self.endpoint.clone(), self.inputs.clone(), seed.addr);
            self.tasks.spawn(async move {
                let found = match endpoint.connect_any(addr, ALPN_GOSSIP).await {
                    Ok(connection) => {
                        // Only the id was needed; the link dials properly.
                        connection.close();
                        Input::SeedFound {
                            addr,
                            peer: connection.peer(),
                        }
                    }
                    Err(err) => {
                        tracing::warn!(%addr, %err, "seed unreachable; will retry");
                        Input::SeedFailed { addr }
                    }
                };
                let _ = inputs.send(found).await;
            });
        }
    }

    fn status(&self) -> GossipStatus {
        let mut ids: BTreeSet<ReplicaId> = self.members.keys().copied().collect();
        ids.extend(self.hints.keys());
        ids.extend(self.gossip.peers().map(|(id, _)| id));
        ids.remove(&self.me);
        let stats: BTreeMap<_, _> = self.gossip.peers().collect();
        let peers = ids
            .into_iter()
            .map(|id| PeerInfo {
                id,
                member: self.members.get(&id).cloned(),
                linked: self.links.get(&id).is_some_and(|link| link.up),
                status: self.pool.status(id),
                stats: stats.get(&id).map(|s| (*s).clone()).unwrap_or_default(),
            })
            .collect();
        GossipStatus {
            peers,
            dropped_messages: self.dropped_messages,
            refused_merges: self.refused_merges,
        }
    }
}
