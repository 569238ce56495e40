//! Propagation and idle cost over real QUIC on loopback: three nodes with
//! durable (fsync) redb stores, one process.
//!
//! 1. **Propagation.** Node A takes `RATE` writes per second for
//!    `SECONDS`; for each write we time from the call at A to the moment
//!    the write is committed at B and at C (watched through their change
//!    feeds), and report p50, p99 and max, plus the bytes sent per write.
//! 2. **Idle cost.** With 10 collections converged, the cluster sits idle
//!    for `IDLE_SECONDS`; we report the bytes per second per peer pair.
//!
//! Bytes are counted two ways: the gossip frames the drivers sent (always
//! available), and every byte on the loopback interface (QUIC headers,
//! acknowledgements, keep-alives, TLS) read from `/proc/net/dev`, which
//! counts only this process's traffic when it runs in its own network
//! namespace:
//!
//! ```sh
//! cargo build --release -p trellis-benches --bin propagation
//! unshare -n sh -c 'ip link set lo up && target/release/propagation'
//! ```
//!
//! Settings: `TRELLIS_BENCH_RATE` (default 1000), `TRELLIS_BENCH_SECONDS`
//! (10), `TRELLIS_BENCH_IDLE_SECONDS` (30).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use trellis_benches::report::{millis, percentile, setting};
use trellis_crdt::ReplicaId;
use trellis_gossip::driver::{self, GossipHandle};
use trellis_net::{ClusterCa, Endpoint, NetConfig};
use trellis_store::index::KeyRange;
use trellis_store::{Mutation, RedbStore, Store, StoreConfig};

type Handle = GossipHandle<RedbStore>;

/// Bytes sent on the loopback interface so far (whole namespace).
fn loopback_tx_bytes() -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/dev").ok()?;
    let line = table
        .lines()
        .find(|line| line.trim_start().starts_with("lo:"))?;
    let fields: Vec<&str> = line.split(':').nth(1)?.split_whitespace().collect();
    fields.get(8)?.parse().ok()
}

/// Gossip frame bytes every node has sent so far.
async fn frame_bytes(nodes: &[Handle]) -> u64 {
    let mut total = 0;
    for node in nodes {
        let status = node.status().await.expect("driver running");
        total += status.peers.iter().map(|p| p.stats.bytes_out).sum::<u64>();
    }
    total
}

async fn start(
    ca: &ClusterCa,
    dir: &Path,
    id: u64,
    name: &str,
    seeds: Vec<SocketAddr>,
) -> (Handle, Endpoint) {
    let store = RedbStore::open(
        dir.join(format!("{name}.redb")),
        ReplicaId(id),
        StoreConfig::default(),
    )
    .expect("open store");
    let identity = ca.issue(name, ReplicaId(id)).expect("certificate");
    let localhost = ([127, 0, 0, 1], 0).into();
    driver::start_standalone(
        identity,
        ca.trust(),
        NetConfig::default(),
        localhost,
        store,
        |c| {
            c.seeds = seeds;
        },
    )
    .await
    .expect("start node")
}

/// Records when each key becomes visible in `store`, by following its
/// change feed.
fn watch_arrivals(store: Arc<RedbStore>, arrivals: Arc<Mutex<HashMap<String, Instant>>>) {
    tokio::spawn(async move {
        let mut seq = store.watch_seq();
        let mut after = store.last_seq();
        while seq.changed().await.is_ok() {
            let now = Instant::now();
            loop {
                let changes = store.changes_since(after, 10_000).unwrap_or_default();
                let Some(last) = changes.last() else { break };
                after = last.seq;
                let mut seen = arrivals.lock().unwrap_or_else(|e| e.into_inner());
                for change in changes {
                    seen.entry(change.key).or_insert(now);
                }
            }
        }
    });
}

async fn wait_converged(nodes: &[Handle], collection: &str, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let prints: Vec<_> = nodes
            .iter()
            .map(|n| n.store().fingerprint(collection, &KeyRange::all()))
            .collect();
        if prints.iter().all(|p| p.count == count && *p == prints[0]) {
            return;
        }
        assert!(Instant::now() < deadline, "{collection} did not converge");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rate = setting("TRELLIS_BENCH_RATE", 1000);
    let seconds = setting("TRELLIS_BENCH_SECONDS", 10);
    let idle_seconds = setting("TRELLIS_BENCH_IDLE_SECONDS", 30);
    let dir = std::env::temp_dir().join(format!("trellis-propagation-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");

    let ca = ClusterCa::generate("bench").expect("CA");
    let (a, ea) = start(&ca, &dir, 1, "a", vec![]).await;
    let (b, eb) = start(&ca, &dir, 2, "b", vec![ea.local_addr()]).await;
    let (c, ec) = start(&ca, &dir, 3, "c", vec![ea.local_addr()]).await;
    let nodes = [a.clone(), b.clone(), c.clone()];
    // Let membership settle: every node linked to both others.
    loop {
        let mut linked = 0;
        for node in &nodes {
            let status = node.status().await.expect("running");
            linked += status.peers.iter().filter(|p| p.linked).count();
        }
        if linked == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let arrivals: [Arc<Mutex<HashMap<String, Instant>>>; 2] = Default::default();
    watch_arrivals(Arc::clone(b.store()), Arc::clone(&arrivals[0]));
    watch_arrivals(Arc::clone(c.store()), Arc::clone(&arrivals[1]));
    let started_at = Arc::new(Mutex::new(HashMap::new()));
    let writes = rate * seconds;
    let (lo_before, frames_before) = (loopback_tx_bytes(), frame_bytes(&nodes).await);
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate.max(1)));
    let mut inflight = tokio::task::JoinSet::new();
    for n in 0..writes {
        tick.tick().await;
        let (a, started_at) = (a.clone(), Arc::clone(&started_at));
        inflight.spawn(async move {
            let key = format!("p-{n:08}");
            started_at
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone(), Instant::now());
            let value = json!({"name": format!("lead {n}"), "stage": "new", "score": n % 100});
            a.apply("leads", &key, Mutation::Put(value))
                .await
                .expect("write at A");
        });
    }
    while inflight.join_next().await.is_some() {}
    wait_converged(&nodes, "leads", writes).await;
    let (lo_after, frames_after) = (loopback_tx_bytes(), frame_bytes(&nodes).await);

    let started_at = started_at.lock().unwrap_or_else(|e| e.into_inner()).clone();
    println!("## Propagation: {writes} writes at A, {rate}/s, durable (fsync) stores");
    println!("| to | p50 | p99 | max | writes seen by push or repair |");
    println!("|---|---|---|---|---|");
    for (name, seen) in ["B", "C"].iter().zip(&arrivals) {
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut delays: Vec<Duration> = started_at
            .iter()
            .filter_map(|(key, at)| Some(seen.get(key)?.saturating_duration_since(*at)))
            .collect();
        delays.sort();
        println!(
            "| {name} | {} | {} | {} | {} |",
            millis(percentile(&delays, 0.50)),
            millis(percentile(&delays, 0.99)),
            millis(*delays.last().unwrap_or(&Duration::ZERO)),
            delays.len()
        );
    }
    let frames = (frames_after - frames_before) as f64 / writes as f64;
    match (lo_before, lo_after) {
        (Some(before), Some(after)) => println!(
            "\nBytes per write, whole cluster: {frames:.0} in gossip frames, {:.0} on loopback",
            (after - before) as f64 / writes as f64
        ),
        _ => println!("\nBytes per write, whole cluster: {frames:.0} in gossip frames"),
    }

    // Idle cost: 10 collections, converged, then nothing happens.
    for i in 0..10 {
        a.apply(&format!("c{i}"), "k", Mutation::Put(json!({"v": i})))
            .await
            .expect("write");
    }
    for i in 0..10 {
        wait_converged(&nodes, &format!("c{i}"), 1).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (lo_before, frames_before) = (loopback_tx_bytes(), frame_bytes(&nodes).await);
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let (lo_after, frames_after) = (loopback_tx_bytes(), frame_bytes(&nodes).await);
    let per_pair = |bytes: u64| bytes as f64 / idle_seconds as f64 / 3.0;
    println!("\n## Idle: 3 nodes, 11 collections, {idle_seconds} s");
    print!(
        "Bytes per second per peer pair: {:.0} in gossip frames",
        per_pair(frames_after - frames_before)
    );
    match (lo_before, lo_after) {
        (Some(before), Some(after)) => println!(", {:.0} on loopback", per_pair(after - before)),
        _ => println!(),
    }

    for node in nodes {
        node.shutdown().await;
    }
    for endpoint in [ea, eb, ec] {
        endpoint.close();
    }
    drop((a, b, c));
    let _ = std::fs::remove_dir_all(&dir);
}
