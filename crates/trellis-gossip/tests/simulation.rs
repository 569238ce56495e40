//! Deterministic simulation: several nodes, each a `MemStore` and a
//! `Gossip` state machine, exchange messages through a simulated network
//! that drops, duplicates, delays and reorders them, suffers one-way and
//! full partitions, and crashes nodes (restarting them from their store).
//!
//! Every write, local or remote, takes a few milliseconds to commit, as a
//! group commit does: it reaches the store (and is acknowledged to its
//! client, or to the pushing peer) only when that time is up, in
//! submission order. A crash loses whatever had not committed yet, as
//! kill -9 loses an unsynced batch.
//!
//! After the faults heal, every node must hold identical records and every
//! acknowledged write must be present everywhere.
//!
//! Schedules come from proptest. `TRELLIS_SIM_SCHEDULES` sets how many run
//! (default 1000; a soak run sets 100000). A failure prints the schedule
//! and the network seed; proptest also records it for replay.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;
use trellis_crdt::{codec, Lattice, Record, ReplicaId};
use trellis_gossip::messages::Message;
use trellis_gossip::node::{Action, Event, Gossip, GossipConfig, MergeKind};
use trellis_store::index::KeyRange;
use trellis_store::{MemStore, Mutation, Store, StoreConfig};

const COLLECTION: &str = "leads";
const TICK_MS: u64 = 50;

#[derive(Clone, Debug)]
enum Step {
    /// A client writes at a node.
    Write { node: usize, key: u8, value: u8 },
    /// Messages from `a` to `b` (and back, unless one-way) are lost.
    Partition { a: usize, b: usize, one_way: bool },
    /// Every partition heals.
    Heal,
    /// A node crashes; it restarts from its store after `down_ms`.
    Crash { node: usize, down_ms: u64 },
    /// Time passes.
    Wait { ms: u64 },
    /// Set the loss and duplication rates, in percent.
    Weather { drop: u8, duplicate: u8 },
}

fn step(nodes: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..nodes, 0u8..12, any::<u8>()).prop_map(|(node, key, value)| Step::Write { node, key, value }),
        1 => (0..nodes, 0..nodes, any::<bool>()).prop_map(|(a, b, one_way)| Step::Partition { a, b, one_way }),
        1 => Just(Step::Heal),
        1 => (0..nodes, 0u64..3000).prop_map(|(node, down_ms)| Step::Crash { node, down_ms }),
        3 => (0u64..2000).prop_map(|ms| Step::Wait { ms }),
        1 => (0u8..=20, 0u8..=20).prop_map(|(drop, duplicate)| Step::Weather { drop, duplicate }),
    ]
}

#[derive(Clone, Debug)]
struct Schedule {
    nodes: usize,
    seed: u64,
    steps: Vec<Step>,
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (3usize..=7, any::<u64>()).prop_flat_map(|(nodes, seed)| {
        proptest::collection::vec(step(nodes), 1..40).prop_map(move |steps| Schedule {
            nodes,
            seed,
            steps,
        })
    })
}

struct Node {
    id: ReplicaId,
    store: MemStore,
    gossip: Gossip,
    down_until: Option<u64>,
    /// Writes waiting to commit, in order, with when they commit.
    commits: VecDeque<(u64, Commit)>,
}

/// A write on its way to the store.
enum Commit {
    /// A client's write.
    Local { key: String, value: u8 },
    /// A remote state the protocol asked to merge.
    Merge {
        from: ReplicaId,
        collection: String,
        key: String,
        state: Record,
        origin: trellis_store::Origin,
        kind: MergeKind,
    },
}

struct Envelope {
    from: usize,
    to: usize,
    bytes: Vec<u8>,
}

struct Sim {
    now: Arc<AtomicU64>,
    nodes: Vec<Node>,
    queue: BTreeMap<(u64, u64), Envelope>,
    sequence: u64,
    rng: SmallRng,
    blocked: BTreeSet<(usize, usize)>,
    drop_percent: u8,
    duplicate_percent: u8,
    acknowledged: Vec<(String, Record)>,
}

impl Sim {
    fn new(count: usize, seed: u64) -> Self {
        let now = Arc::new(AtomicU64::new(1_000_000));
        let nodes = (0..count)
            .map(|i| {
                let id = ReplicaId(i as u64 + 1);
                let clock = Arc::clone(&now);
                let store = MemStore::with_wall_clock(
                    id,
                    StoreConfig::default(),
                    Arc::new(move || clock.load(Ordering::Relaxed)),
                );
                Node {
                    id,
                    store,
                    gossip: gossip(id, seed, 1_000_000),
                    down_until: None,
                    commits: VecDeque::new(),
                }
            })
            .collect();
        let mut sim = Sim {
            now,
            nodes,
            queue: BTreeMap::new(),
            sequence: 0,
            rng: SmallRng::seed_from_u64(seed),
            blocked: BTreeSet::new(),
            drop_percent: 0,
            duplicate_percent: 0,
            acknowledged: Vec::new(),
        };
        for a in 0..count {
            sim.connect_all(a);
        }
        sim
    }

    fn now(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }

    fn up(&self, node: usize) -> bool {
        self.nodes[node].down_until.is_none()
    }

    fn connect_all(&mut self, a: usize) {
        for b in 0..self.nodes.len() {
            if a != b && self.up(b) {
                let (id_a, id_b) = (self.nodes[a].id, self.nodes[b].id);
                self.event(a, Event::Connected(id_b));
                self.event(b, Event::Connected(id_a));
            }
        }
    }

    /// Feeds an event to a node and carries out its actions.
    fn event(&mut self, node: usize, event: Event) {
        let now = self.now();
        let actions = {
            let Node { gossip, store, .. } = &mut self.nodes[node];
            gossip.handle(now, event, store)
        };
        for action in actions {
            match action {
                Action::Send { to, message } => self.send(node, to, &message),
                Action::Merge {
                    from,
                    collection,
                    key,
                    state,
                    origin,
                    kind,
                } => self.submit(
                    node,
                    Commit::Merge {
                        from,
                        collection,
                        key,
                        state,
                        origin,
                        kind,
                    },
                ),
            }
        }
    }

    /// Queues a write to commit after a short, random delay, behind the
    /// node's earlier writes.
    fn submit(&mut self, node: usize, commit: Commit) {
        let earliest = self.now() + self.rng.random_range(1..=20u64);
        let queue = &mut self.nodes[node].commits;
        let due = queue.back().map_or(0, |(due, _)| *due).max(earliest);
        queue.push_back((due, commit));
    }

    /// Commits every write of `node` due by now, reporting each outcome.
    fn commit_due(&mut self, node: usize) {
        while self.nodes[node]
            .commits
            .front()
            .is_some_and(|(due, _)| *due <= self.now())
        {
            let Some((_, commit)) = self.nodes[node].commits.pop_front() else {
                return;
            };
            match commit {
                Commit::Local { key, value } => self.commit_write(node, key, value),
                Commit::Merge {
                    from,
                    collection,
                    key,
                    state,
                    origin,
                    kind,
                } => {
                    let merged = self.nodes[node]
                        .store
                        .merge(&collection, &key, state, origin)
                        .wait();
                    let event = Event::merge_outcome(from, kind, origin, merged);
                    self.event(node, event);
                }
            }
        }
    }

    fn send(&mut self, from: usize, to_id: ReplicaId, message: &Message) {
        let to = (to_id.0 - 1) as usize;
        let bytes = codec::encode(message);
        self.nodes[from].gossip.note_sent(to_id, bytes.len());
        let copies = if self.rng.random_range(0..100u8) < self.duplicate_percent {
            2
        } else {
            1
        };
        for _ in 0..copies {
            if self.blocked.contains(&(from, to))
                || self.rng.random_range(0..100u8) < self.drop_percent
            {
                continue;
            }
            let at = self.now() + self.rng.random_range(1..40u64);
            self.sequence += 1;
            self.queue.insert(
                (at, self.sequence),
                Envelope {
                    from,
                    to,
                    bytes: bytes.clone(),
                },
            );
        }
    }

    /// Advances time by `ms`, delivering messages and ticking nodes.
    fn run(&mut self, ms: u64) {
        let end = self.now() + ms;
        while self.now() < end {
            let next = (self.now() + TICK_MS).min(end);
            while let Some(entry) = self.queue.first_entry() {
                if entry.key().0 > next {
                    break;
                }
                let ((at, _), envelope) = entry.remove_entry();
                self.now.store(at.max(self.now()), Ordering::Relaxed);
                if !self.up(envelope.to) || !self.up(envelope.from) {
                    continue;
                }
                let message: Message = codec::decode(&envelope.bytes).unwrap();
                let from = self.nodes[envelope.from].id;
                self.event(
                    envelope.to,
                    Event::Received {
                        from,
                        message,
                        bytes: envelope.bytes.len(),
                    },
                );
            }
            self.now.store(next, Ordering::Relaxed);
            for node in 0..self.nodes.len() {
                if self.nodes[node]
                    .down_until
                    .is_some_and(|until| until <= next)
                {
                    self.restart(node);
                }
                if self.up(node) {
                    self.commit_due(node);
                    self.event(node, Event::Tick);
                }
            }
        }
    }

    fn crash(&mut self, node: usize, down_ms: u64) {
        if !self.up(node) {
            return;
        }
        self.nodes[node].down_until = Some(self.now() + down_ms);
        // kill -9: what had not committed is gone, and was never acknowledged.
        self.nodes[node].commits.clear();
        let id = self.nodes[node].id;
        for other in 0..self.nodes.len() {
            if other != node && self.up(other) {
                self.event(other, Event::Disconnected(id));
            }
        }
    }

    /// Restarts a node from its store with fresh protocol state.
    fn restart(&mut self, node: usize) {
        let id = self.nodes[node].id;
        let now = self.now();
        self.nodes[node].gossip = gossip(id, now, now);
        self.nodes[node].down_until = None;
        self.connect_all(node);
    }

    fn write(&mut self, node: usize, key: u8, value: u8) {
        if !self.up(node) {
            return;
        }
        let key = format!("lead-{key:02}");
        self.submit(node, Commit::Local { key, value });
    }

    /// A client's write commits: it is acknowledged and pushed.
    fn commit_write(&mut self, node: usize, key: String, value: u8) {
        let doc = json!({"value": value, "by": node});
        let applied = self.nodes[node]
            .store
            .apply(COLLECTION, &key, Mutation::Put(doc))
            .wait()
            .unwrap();
        self.acknowledged.push((key.clone(), applied.delta.clone()));
        let origin = trellis_store::Origin {
            replica: self.nodes[node].id,
            time: applied.time,
            full_state: false,
        };
        self.event(
            node,
            Event::LocalWrite {
                collection: COLLECTION.into(),
                key,
                delta: applied.delta,
                origin,
            },
        );
    }

    fn converged(&self) -> bool {
        let first = self.nodes[0]
            .store
            .index_entries(COLLECTION, &KeyRange::all(), usize::MAX);
        self.nodes.iter().all(|node| {
            node.store
                .index_entries(COLLECTION, &KeyRange::all(), usize::MAX)
                == first
        })
    }
}

fn gossip(id: ReplicaId, seed: u64, now: u64) -> Gossip {
    let config = GossipConfig {
        reconcile_every_ms: 500,
        jitter_ms: 200,
        session_timeout_ms: 3000,
        seed,
        ..GossipConfig::default()
    };
    Gossip::new(id, config, now)
}

fn play(schedule: &Schedule) -> Result<(), TestCaseError> {
    let mut sim = Sim::new(schedule.nodes, schedule.seed);
    for step in &schedule.steps {
        match *step {
            Step::Write { node, key, value } => sim.write(node, key, value),
            Step::Partition { a, b, one_way } => {
                if a != b {
                    sim.blocked.insert((a, b));
                    if !one_way {
                        sim.blocked.insert((b, a));
                    }
                }
            }
            Step::Heal => sim.blocked.clear(),
            Step::Crash { node, down_ms } => sim.crash(node, down_ms),
            Step::Wait { ms } => sim.run(ms),
            Step::Weather { drop, duplicate } => {
                sim.drop_percent = drop;
                sim.duplicate_percent = duplicate;
            }
        }
        sim.run(TICK_MS);
    }
    // Heal everything and let anti-entropy finish.
    sim.blocked.clear();
    sim.drop_percent = 0;
    sim.duplicate_percent = 0;
    let deadline = sim.now() + 60_000;
    let settled = |sim: &Sim| {
        sim.nodes
            .iter()
            .all(|n| n.down_until.is_none() && n.commits.is_empty())
    };
    while !(sim.converged() && settled(&sim)) {
        prop_assert!(
            sim.now() < deadline,
            "no convergence 60 s after healing: {schedule:?}"
        );
        sim.run(500);
    }
    for node in &sim.nodes {
        for (key, delta) in &sim.acknowledged {
            let record = node.store.get(COLLECTION, key).unwrap().unwrap_or_default();
            prop_assert_eq!(
                &record.clone().merged(delta.clone()),
                &record,
                "node {} lacks an acknowledged write to {}",
                node.id,
                key
            );
        }
    }
    Ok(())
}

fn schedules() -> u32 {
    std::env::var("TRELLIS_SIM_SCHEDULES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: schedules(), ..ProptestConfig::default() })]

    #[test]
    fn nodes_converge_after_faults_heal(schedule in schedule()) {
        play(&schedule)?;
    }
}

#[test]
fn a_fresh_node_catches_up_by_reconciliation_alone() {
    let mut sim = Sim::new(3, 7);
    sim.crash(2, 5_000);
    for i in 0..200u8 {
        sim.write(usize::from(i % 2), i, i);
    }
    sim.run(10_000);
    assert!(sim.converged());
}
