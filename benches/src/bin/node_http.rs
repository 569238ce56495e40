//! The node over HTTP: three `trellis-node` nodes in this process on
//! loopback (QUIC between them, fsync durability, the quickstart's
//! setup), and a load generator in the same run.
//!
//! 1. **Baseline.** `CLIENTS` threads, each with its own HTTP/1.1
//!    keep-alive connection, call `GET /health` at node A for `SECONDS`:
//!    the cost of the HTTP stack and a status look-up, no storage.
//! 2. **Writes.** The same clients `PUT` small leads at node A for
//!    `SECONDS`, each waiting for its answer (acknowledged once committed
//!    with fsync at A) before sending the next. Meanwhile one follower per
//!    other site long-polls its change feed (`/v1/changes?wait=`); a
//!    write's propagation delay to B or C runs from the moment its PUT was
//!    sent to A to the moment B's or C's feed handed it to the follower
//!    (so it includes A's fsync, the push over QUIC, B's fsync and the
//!    feed's HTTP round trip). The delay from A's acknowledgement is shown
//!    too; it can be zero, as B may commit a write before A's answer
//!    reaches the client.
//!
//! ```sh
//! cargo run --release -p trellis-benches --bin node_http
//! ```
//!
//! Settings: `TRELLIS_BENCH_CLIENTS` (default 16), `TRELLIS_BENCH_SECONDS`
//! (10).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use trellis_benches::report::{http_agent, millis, percentile, setting};
use trellis_node::quickstart::Cluster;

/// What one client did: latencies, and for acknowledged writes the key,
/// when it was sent and when it was acknowledged.
#[derive(Default)]
struct ClientLog {
    latencies: Vec<Duration>,
    acked: Vec<(String, Instant, Instant)>,
    errors: u64,
}

/// Runs `clients` threads against `base` for `seconds`; `write` chooses
/// PUTs of leads over `GET /health`.
fn load(base: &str, clients: u64, seconds: u64, write: bool) -> (Vec<ClientLog>, Duration) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let base = base.to_owned();
            std::thread::spawn(move || {
                let agent = http_agent();
                let mut log = ClientLog::default();
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let key = format!("c{client}-{i}");
                    let answer = if write {
                        let lead = json!({"name": format!("Lead {i}"), "email": "lead@example.com",
                                          "source": "web form", "client": client, "i": i});
                        let url = format!("{base}/v1/collections/bench/records/{key}");
                        agent.put(&url).send_json(&lead)
                    } else {
                        agent.get(format!("{base}/health")).call()
                    };
                    match answer {
                        Ok(mut response) if response.status() == 200 => {
                            let _ = response.body_mut().read_to_vec();
                            let acked = Instant::now();
                            log.latencies.push(acked - sent);
                            if write {
                                log.acked.push((key, sent, acked));
                            }
                        }
                        Ok(_) | Err(_) => log.errors += 1,
                    }
                    i += 1;
                }
                log
            })
        })
        .collect();
    let logs = threads
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .collect();
    (logs, started.elapsed())
}

/// Follows `base`'s change feed from `since` until `stop`, noting when
/// each change to `bench` arrived.
fn follow(base: String, since: u64, stop: Arc<AtomicBool>) -> HashMap<String, Instant> {
    let agent = http_agent();
    let mut arrived = HashMap::new();
    let mut since = since;
    // After `stop`, one more poll that finds nothing new ends it.
    let mut drained = false;
    while !(drained && stop.load(Ordering::Relaxed)) {
        let stopping = stop.load(Ordering::Relaxed);
        let url = format!("{base}/v1/changes?since={since}&limit=10000&wait=1");
        let body = match agent.get(&url).call() {
            Ok(mut response) if response.status() == 200 => response
                .body_mut()
                .with_config()
                .limit(256 << 20)
                .read_to_string()
                .unwrap_or_default(),
            _ => continue,
        };
        let now = Instant::now();
        drained = stopping && body.is_empty();
        for line in body.lines() {
            let Ok(change) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let Some(seq) = change["seq"].as_u64() {
                since = since.max(seq);
            }
            if change["collection"] == "bench" {
                if let Some(key) = change["key"].as_str() {
                    arrived.entry(key.to_owned()).or_insert(now);
                }
            }
        }
    }
    arrived
}

fn get_json(base: &str, path: &str) -> Value {
    http_agent()
        .get(format!("{base}{path}"))
        .call()
        .expect("the node answers")
        .body_mut()
        .read_json()
        .expect("JSON")
}

fn main() {
    let clients = setting("TRELLIS_BENCH_CLIENTS", 16);
    let seconds = setting("TRELLIS_BENCH_SECONDS", 10);
    let dir = std::env::temp_dir().join(format!("trellis-node-http-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cluster = runtime
        .block_on(Cluster::start(&dir))
        .expect("three nodes start");
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.api_url()).collect();
    let linked_by = Instant::now() + Duration::from_secs(30);
    while urls.iter().any(|url| {
        get_json(url, "/v1/status")["peers"]
            .as_array()
            .map_or(0, |p| p.iter().filter(|p| p["state"] == "up").count())
            < 2
    }) {
        assert!(Instant::now() < linked_by, "the nodes did not link in 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "3 nodes on loopback (fsync durability), {clients} HTTP/1.1 keep-alive clients at node A, {seconds} s per phase"
    );

    // 1. Baseline: GET /health.
    let (logs, took) = load(&urls[0], clients, seconds, false);
    let mut health: Vec<Duration> = logs.iter().flat_map(|l| l.latencies.clone()).collect();
    health.sort_unstable();
    let health_errors: u64 = logs.iter().map(|l| l.errors).sum();

    // 2. Writes at A, followed at B and C.
    let stop = Arc::new(AtomicBool::new(false));
    let followers: Vec<_> = urls[1..]
        .iter()
        .map(|url| {
            let since = get_json(url, "/v1/status")["node"]["last_seq"]
                .as_u64()
                .unwrap_or(0);
            let (url, stop) = (url.clone(), Arc::clone(&stop));
            std::thread::spawn(move || follow(url, since, stop))
        })
        .collect();
    let (logs, write_took) = load(&urls[0], clients, seconds, true);
    let mut writes: Vec<Duration> = logs.iter().flat_map(|l| l.latencies.clone()).collect();
    writes.sort_unstable();
    let write_errors: u64 = logs.iter().map(|l| l.errors).sum();
    let sent: HashMap<&str, (Instant, Instant)> = logs
        .iter()
        .flat_map(|l| l.acked.iter().map(|(k, at, ack)| (k.as_str(), (*at, *ack))))
        .collect();
    // Let the last writes arrive (bounded), then stop the followers.
    let settle_by = Instant::now() + Duration::from_secs(30);
    while Instant::now() < settle_by
        && urls[1..].iter().any(|url| {
            get_json(url, "/v1/collections")["collections"]
                .as_array()
                .and_then(|all| all.iter().find(|c| c["name"] == "bench"))
                .and_then(|c| c["count"].as_u64())
                .unwrap_or(0)
                < sent.len() as u64
        })
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let arrivals: Vec<HashMap<String, Instant>> = followers
        .into_iter()
        .map(|f| f.join().expect("follower"))
        .collect();

    println!();
    println!("| phase | requests | per second | p50 | p99 | max | errors |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    println!(
        "| GET /health (baseline) | {} | {:.0} | {} | {} | {} | {health_errors} |",
        health.len(),
        health.len() as f64 / took.as_secs_f64(),
        millis(percentile(&health, 0.5)),
        millis(percentile(&health, 0.99)),
        millis(health.last().copied().unwrap_or_default()),
    );
    println!(
        "| PUT at A (durable at A) | {} | {:.0} | {} | {} | {} | {write_errors} |",
        writes.len(),
        writes.len() as f64 / write_took.as_secs_f64(),
        millis(percentile(&writes, 0.5)),
        millis(percentile(&writes, 0.99)),
        millis(writes.last().copied().unwrap_or_default()),
    );
    println!();
    println!(
        "| propagation to | writes seen | from send p50 | p99 | max | from A's ack p50 | p99 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (site, arrived) in ["B", "C"].iter().zip(&arrivals) {
        let mut from_send = Vec::new();
        let mut from_ack = Vec::new();
        for (key, (at, ack)) in &sent {
            if let Some(seen) = arrived.get(*key) {
                from_send.push(seen.saturating_duration_since(*at));
                from_ack.push(seen.saturating_duration_since(*ack));
            }
        }
        from_send.sort_unstable();
        from_ack.sort_unstable();
        println!(
            "| {site} | {} of {} | {} | {} | {} | {} | {} |",
            from_send.len(),
            sent.len(),
            millis(percentile(&from_send, 0.5)),
            millis(percentile(&from_send, 0.99)),
            millis(from_send.last().copied().unwrap_or_default()),
            millis(percentile(&from_ack, 0.5)),
            millis(percentile(&from_ack, 0.99)),
        );
    }
    runtime.block_on(cluster.stop());
}
