//! What consistency costs: three in-process nodes on loopback (the
//! quickstart's setup: QUIC between them, fsync durability), driven over
//! HTTP/1.1 keep-alive connections.
//!
//! 1. **Wait levels.** `CLIENTS` clients each PUT `WRITES` small leads at
//!    node A with `?wait=local`, then `majority`, then `all`, in rounds
//!    interleaved level by level so that the machine's load hits every
//!    level alike. Write latency p50/p99 per level, and the ratio to
//!    `local`.
//! 2. **Read your write elsewhere.** Each client PUTs at A (`local`) and
//!    at once GETs the record at B with `?after=TOKEN`: the time from the
//!    PUT's start to B's answer, p50/p99, next to the PUT alone.
//!
//! ```sh
//! cargo run --release -p trellis-benches --bin consistency_cost
//! ```
//!
//! Settings: `TRELLIS_BENCH_CLIENTS` (default 4), `TRELLIS_BENCH_WRITES`
//! (writes per client per level, default 300).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use trellis_benches::report::{http_agent, millis, percentile, setting};
use trellis_node::quickstart::Cluster;

/// PUTs `value` and returns the answer's status and body.
fn put(agent: &ureq::Agent, url: &str, value: &Value) -> (u16, Value) {
    let mut response = agent
        .put(url)
        .send_json(value)
        .unwrap_or_else(|err| panic!("PUT {url}: {err}"));
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_json()
        .unwrap_or_else(|err| panic!("PUT {url}: {err}"));
    (status, body)
}

fn get(agent: &ureq::Agent, url: &str) -> u16 {
    let mut response = agent
        .get(url)
        .call()
        .unwrap_or_else(|err| panic!("GET {url}: {err}"));
    let _ = response.body_mut().read_to_string();
    response.status().as_u16()
}

/// One round: every client PUTs `writes` leads at `level`; the latencies.
fn round(a: &str, level: &str, clients: u64, writes: u64, round: usize) -> Vec<Duration> {
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let a = a.to_owned();
            let level = level.to_owned();
            std::thread::spawn(move || {
                let agent = http_agent();
                let mut latencies = Vec::new();
                for n in 0..writes {
                    let url = format!(
                        "{a}/v1/collections/leads/records/{level}-{round}-{client}-{n}?wait={level}&timeout=10s"
                    );
                    let started = Instant::now();
                    let (status, body) = put(&agent, &url, &json!({"name": format!("lead {n}"), "stage": "new"}));
                    assert_eq!(status, 200, "{level}: {body}");
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap_or_else(|_| panic!("a client failed")))
        .collect()
}

/// Every client writes at A and reads the write back at B with its
/// token: (write latencies, write-to-read-at-B latencies).
fn read_your_writes(a: &str, b: &str, clients: u64, writes: u64) -> (Vec<Duration>, Vec<Duration>) {
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let (a, b) = (a.to_owned(), b.to_owned());
            std::thread::spawn(move || {
                let agent = http_agent();
                let (mut write, mut read) = (Vec::new(), Vec::new());
                for n in 0..writes {
                    let path = format!("/v1/collections/leads/records/ryw-{client}-{n}");
                    let started = Instant::now();
                    let (status, body) =
                        put(&agent, &format!("{a}{path}"), &json!({"name": "Ada"}));
                    assert_eq!(status, 200, "{body}");
                    write.push(started.elapsed());
                    let token = body["token"]
                        .as_str()
                        .unwrap_or_else(|| panic!("no token: {body}"));
                    let status = get(&agent, &format!("{b}{path}?after={token}&timeout=10s"));
                    assert_eq!(status, 200, "the read after the token");
                    read.push(started.elapsed());
                }
                (write, read)
            })
        })
        .collect();
    let mut write = Vec::new();
    let mut read = Vec::new();
    for thread in threads {
        let (w, r) = thread.join().unwrap_or_else(|_| panic!("a client failed"));
        write.extend(w);
        read.extend(r);
    }
    (write, read)
}

fn main() {
    let clients = setting("TRELLIS_BENCH_CLIENTS", 4);
    let writes = setting("TRELLIS_BENCH_WRITES", 300);
    let dir = std::env::temp_dir().join(format!("trellis-consistency-cost-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|err| panic!("runtime: {err}"));
    let cluster = runtime
        .block_on(Cluster::start(&dir))
        .unwrap_or_else(|err| panic!("cluster: {err}"));
    let urls: Vec<String> = cluster.nodes.iter().map(|node| node.api_url()).collect();
    // Let the sites link up: a wait=all write succeeds only once they have.
    let agent = http_agent();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = format!(
            "{}/v1/collections/warmup/records/w?wait=all&timeout=1s",
            urls[0]
        );
        if put(&agent, &url, &json!({"w": 1})).0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the sites did not link up");
    }

    let levels = ["local", "majority", "all"];
    let mut latencies: Vec<Vec<Duration>> = vec![Vec::new(); levels.len()];
    for r in 0..3 {
        for (i, level) in levels.iter().enumerate() {
            latencies[i].extend(round(&urls[0], level, clients, writes / 3, r));
        }
    }
    println!("## Write latency by wait level: {clients} clients at node A, 3 sites, fsync");
    println!("| wait | writes | p50 | p99 | p50 ÷ local | p99 ÷ local |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut sorted: Vec<Vec<Duration>> = latencies;
    for list in &mut sorted {
        list.sort();
    }
    let (local50, local99) = (percentile(&sorted[0], 0.5), percentile(&sorted[0], 0.99));
    for (level, list) in levels.iter().zip(&sorted) {
        let (p50, p99) = (percentile(list, 0.5), percentile(list, 0.99));
        println!(
            "| {level} | {} | {} | {} | {:.2} | {:.2} |",
            list.len(),
            millis(p50),
            millis(p99),
            p50.as_secs_f64() / local50.as_secs_f64(),
            p99.as_secs_f64() / local99.as_secs_f64()
        );
    }

    let (mut write, mut read) = read_your_writes(&urls[0], &urls[1], clients, writes);
    write.sort();
    read.sort();
    println!("\n## Read your write at another site: PUT at A, then GET at B with ?after=token");
    println!("| measured from the PUT's start to | p50 | p99 |");
    println!("|---|---:|---:|");
    println!(
        "| A's answer (durable at A) | {} | {} |",
        millis(percentile(&write, 0.5)),
        millis(percentile(&write, 0.99))
    );
    println!(
        "| B's answer with the write | {} | {} |",
        millis(percentile(&read, 0.5)),
        millis(percentile(&read, 0.99))
    );

    runtime.block_on(cluster.stop());
}
