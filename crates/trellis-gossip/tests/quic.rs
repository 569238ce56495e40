//! The gossip driver over real QUIC on 127.0.0.1: nodes find each other
//! from one seed, converge thousands of records written at random nodes,
//! catch up a node started empty, and refuse nodes the cluster CA did not
//! vouch for.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;
use trellis_crdt::ReplicaId;
use trellis_gossip::driver::{self, GossipHandle};
use trellis_gossip::membership::{Member, MEMBERS};
use trellis_net::{ClusterCa, Endpoint, NetConfig, PeerStatus};
use trellis_store::index::KeyRange;
use trellis_store::{MemStore, Mutation, RedbStore, Store, StoreConfig};

const LEADS: &str = "leads";

/// One running node: its gossip driver and endpoint.
struct Node<S> {
    gossip: GossipHandle<S>,
    endpoint: Endpoint,
}

impl<S: Store> Node<S> {
    fn addr(&self) -> SocketAddr {
        self.endpoint.local_addr()
    }

    fn store(&self) -> &S {
        self.gossip.store()
    }

    async fn stop(self) {
        self.gossip.shutdown().await;
        self.endpoint.close();
    }
}

async fn start<S: Store>(ca: &ClusterCa, store: S, name: &str, seeds: Vec<SocketAddr>) -> Node<S> {
    let identity = ca.issue(name, store.replica_id()).unwrap();
    let localhost = ([127, 0, 0, 1], 0).into();
    let (gossip, endpoint) = driver::start_standalone(
        identity,
        ca.trust(),
        NetConfig::default(),
        localhost,
        store,
        |config| {
            config.seeds = seeds;
            config.gossip.reconcile_every_ms = 300;
            config.gossip.jitter_ms = 100;
        },
    )
    .await
    .unwrap();
    Node { gossip, endpoint }
}

fn mem(id: u64) -> MemStore {
    MemStore::new(ReplicaId(id), StoreConfig::default())
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trellis-gossip-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What a node holds of a collection: (record count, fingerprint sum).
fn summary(store: &impl Store, collection: &str) -> (u64, [u8; 32]) {
    let fingerprint = store.fingerprint(collection, &KeyRange::all());
    (fingerprint.count, fingerprint.sum)
}

/// Waits until every store holds `count` records of `collection` with
/// equal fingerprints; panics with what each holds after `within`.
async fn converged(stores: &[&dyn SummaryOf], collection: &str, count: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let seen: Vec<(u64, [u8; 32])> = stores
            .iter()
            .map(|store| store.summary(collection))
            .collect();
        if seen.iter().all(|s| s.0 == count && s.1 == seen[0].1) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no convergence within {within:?}: counts {:?}",
            seen.iter().map(|s| s.0).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Lets stores of different types be compared in one call.
trait SummaryOf {
    fn summary(&self, collection: &str) -> (u64, [u8; 32]);
}

impl<S: Store> SummaryOf for Node<S> {
    fn summary(&self, collection: &str) -> (u64, [u8; 32]) {
        summary(self.store(), collection)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_converge_ten_thousand_records_written_at_random_nodes() {
    let ca = ClusterCa::generate("test").unwrap();
    let berlin = start(&ca, mem(1), "berlin", vec![]).await;
    // Lisbon and Oslo only know Berlin; they learn each other by gossip.
    let lisbon = start(&ca, mem(2), "lisbon", vec![berlin.addr()]).await;
    let oslo = start(&ca, mem(3), "oslo", vec![berlin.addr()]).await;

    const RECORDS: usize = 10_000;
    let handles = [
        berlin.gossip.clone(),
        lisbon.gossip.clone(),
        oslo.gossip.clone(),
    ];
    let mut writers = Vec::new();
    for writer in 0..8usize {
        let handles = handles.clone();
        writers.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(writer as u64);
            for n in (writer..RECORDS).step_by(8) {
                let at = &handles[rng.random_range(0..handles.len())];
                let value = json!({"name": format!("lead {n}"), "score": n});
                at.apply(LEADS, &format!("lead-{n:05}"), Mutation::Put(value))
                    .await
                    .unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    converged(
        &[&berlin, &lisbon, &oslo],
        LEADS,
        RECORDS as u64,
        Duration::from_secs(60),
    )
    .await;
    // Membership spread from the one seed: everyone links to everyone.
    converged(
        &[&berlin, &lisbon, &oslo],
        MEMBERS,
        3,
        Duration::from_secs(10),
    )
    .await;
    for node in [&berlin, &lisbon, &oslo] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // A link can come up (from a seen connection) before the
            // driver's next periodic read of membership names the peer.
            let status = node.gossip.status().await.unwrap();
            let linked = status.peers.iter().filter(|peer| peer.linked).count();
            let named = status
                .peers
                .iter()
                .filter(|peer| peer.member.is_some())
                .count();
            if linked == 2 && named == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "links and names: {status:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Some writes travelled by eager push, and their delays were measured.
    let status = lisbon.gossip.status().await.unwrap();
    let applied: u64 = status.peers.iter().map(|p| p.stats.changes_applied).sum();
    assert!(applied > 0, "{status:?}");
    for node in [berlin, lisbon, oslo] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_empty_catches_up_durably() {
    let ca = ClusterCa::generate("test").unwrap();
    let berlin = start(&ca, mem(1), "berlin", vec![]).await;
    let lisbon = start(&ca, mem(2), "lisbon", vec![berlin.addr()]).await;
    const RECORDS: usize = 3_000;
    for n in 0..RECORDS {
        let at = if n % 2 == 0 { &berlin } else { &lisbon };
        let value = json!({"name": format!("lead {n}")});
        at.gossip
            .apply(LEADS, &format!("lead-{n:05}"), Mutation::Put(value))
            .await
            .unwrap();
    }
    converged(
        &[&berlin, &lisbon],
        LEADS,
        RECORDS as u64,
        Duration::from_secs(30),
    )
    .await;

    // A new site with an empty data directory, seeded with Lisbon only.
    let dir = temp_dir("catch-up");
    let store =
        RedbStore::open(dir.join("data.redb"), ReplicaId(3), StoreConfig::default()).unwrap();
    let oslo = start(&ca, store, "oslo", vec![lisbon.addr()]).await;
    converged(
        &[&berlin, &lisbon, &oslo],
        LEADS,
        RECORDS as u64,
        Duration::from_secs(30),
    )
    .await;
    // Merges are counted once durable, a moment after they are visible.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = oslo.gossip.status().await.unwrap();
        let repaired: u64 = status.peers.iter().map(|p| p.stats.records_repaired).sum();
        if repaired >= RECORDS as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "repaired {repaired}: {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expected = summary(oslo.store(), LEADS);
    oslo.stop().await;

    // What Oslo acknowledged as merged is on disk.
    let reopened =
        RedbStore::open(dir.join("data.redb"), ReplicaId(3), StoreConfig::default()).unwrap();
    assert_eq!(summary(&reopened, LEADS), expected);
    drop(reopened);
    let _ = std::fs::remove_dir_all(&dir);
    berlin.stop().await;
    lisbon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_ca_gets_and_gives_nothing() {
    let ca = ClusterCa::generate("test").unwrap();
    let rogue_ca = ClusterCa::generate("rogue").unwrap();
    let berlin = start(&ca, mem(1), "berlin", vec![]).await;
    let rogue = start(&rogue_ca, mem(9), "rogue", vec![berlin.addr()]).await;
    let secret = json!({"name": "Ada"});
    berlin
        .gossip
        .apply(LEADS, "lead-1", Mutation::Put(secret))
        .await
        .unwrap();
    rogue
        .gossip
        .apply(LEADS, "planted", Mutation::Put(json!({"name": "Eve"})))
        .await
        .unwrap();
    // Several reconciliation intervals and seed retries.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(summary(rogue.store(), LEADS).0, 1);
    assert_eq!(berlin.store().get(LEADS, "planted").unwrap(), None);
    assert!(rogue.store().get(LEADS, "lead-1").unwrap().is_none());
    let status = berlin.gossip.status().await.unwrap();
    assert!(status.peers.is_empty(), "{status:?}");
    let status = rogue.gossip.status().await.unwrap();
    assert!(status.peers.iter().all(|p| !p.linked), "{status:?}");
    berlin.stop().await;
    rogue.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_claiming_another_id_is_refused_and_marked_down() {
    let ca = ClusterCa::generate("test").unwrap();
    let berlin = start(&ca, mem(1), "berlin", vec![]).await;
    let lisbon = start(&ca, mem(2), "lisbon", vec![]).await;
    // A membership entry says node 7 lives at Lisbon's address. Berlin dials
    // it expecting node 7's certificate; Lisbon's (a valid one, for node 2)
    // must not be taken for it.
    let impostor = Member {
        id: ReplicaId(7),
        addr: lisbon.addr(),
        name: "impostor".into(),
    };
    berlin
        .gossip
        .apply(MEMBERS, &impostor.key(), Mutation::Put(impostor.to_json()))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = berlin.gossip.status().await.unwrap();
        let seven = status.peers.iter().find(|p| p.id == ReplicaId(7));
        if let Some(seven) = seven {
            assert!(!seven.linked, "{seven:?}");
            if let PeerStatus::Down { last_error, .. } = &seven.status {
                assert!(!last_error.is_empty());
                break;
            }
        }
        assert!(Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Lisbon was never told it is node 7, and nothing flowed as node 7.
    let status = lisbon.gossip.status().await.unwrap();
    assert!(
        status.peers.iter().all(|p| p.id != ReplicaId(7)),
        "{status:?}"
    );
    berlin.stop().await;
    lisbon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracked_write_hears_each_peer_that_holds_it_durably() {
    let ca = ClusterCa::generate("test").unwrap();
    let berlin = start(&ca, mem(1), "berlin", vec![]).await;
    let lisbon = start(&ca, mem(2), "lisbon", vec![berlin.addr()]).await;
    let oslo = start(&ca, mem(3), "oslo", vec![berlin.addr()]).await;
    // Wait until Berlin links to both.
    let deadline = Instant::now() + Duration::from_secs(10);
    while berlin
        .gossip
        .status()
        .await
        .unwrap()
        .peers
        .iter()
        .filter(|p| p.linked)
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "links did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (applied, mut acks) = berlin
        .gossip
        .apply_tracked(LEADS, "lead-1", Mutation::Put(json!({"name": "Ada"})))
        .await
        .unwrap();
    let mut holders = std::collections::BTreeSet::new();
    while holders.len() < 2 {
        let peer = tokio::time::timeout(Duration::from_secs(10), acks.recv())
            .await
            .expect("acknowledgements within 10 s")
            .unwrap();
        // An acknowledgement means the peer has it on its store already.
        let node: &dyn SummaryOf = if peer == ReplicaId(2) { &lisbon } else { &oslo };
        assert!(
            node.summary(LEADS).0 >= 1,
            "{peer} acknowledged before holding it"
        );
        holders.insert(peer);
    }
    assert_eq!(holders, [ReplicaId(2), ReplicaId(3)].into());
    assert!(applied.seq > 0);
    for node in [berlin, lisbon, oslo] {
        node.stop().await;
    }
}
