//! Trellis's strongly consistent counters against etcd, side by side in
//! one run, on loopback (issue 7's performance point).
//!
//! - **Ours:** three `trellis-node` nodes in this process, set up as the
//!   quickstart does (`quickstart::Cluster`: every node a counter voter,
//!   QUIC with mutual TLS between them, the Raft log fsynced). Clients
//!   call the HTTP API: `POST /v1/counters/{name}/decrement` with
//!   `{"by": 1, "id": …}` (a compare-and-decrement with minimum 0 and an
//!   idempotency key, as an order would send it).
//! - **etcd:** three members started by `benches/etcd/run.sh` (etcd 3.4,
//!   the Debian `etcd-server` package), reached through its v3 JSON
//!   gateway. A decrement reads the key (`/v3/kv/range`, linearizable),
//!   then runs a transaction (`/v3/kv/txn`) that compares the key's mod
//!   revision and puts the value minus one. On a conflict the
//!   transaction's failure branch returns the key as it now is, and the
//!   client retries from that (saving a second read).
//!
//! Both sides use the same load generator: `clients` threads, each with
//! its own HTTP/1.1 keep-alive connection (ureq) to one member (client
//! `i` to member `i mod 3`, so two thirds of the calls are forwarded to
//! the leader on both systems), each waiting for its answer before
//! sending the next. Workloads: one hot counter, and 1,000 counters with
//! each call picking one at random; 1, 16 and 64 clients. The phases
//! alternate between the systems so that drift in the machine's load
//! hits both.
//!
//! Every counter starts at 10^12, so stock never runs out. After each
//! phase the values are read back and checked: for each counter, the
//! value before minus the value after equals the acknowledged
//! decrements (within the calls whose outcome is unknown, if any
//! failed).
//!
//! ```sh
//! benches/etcd/run.sh            # installs and starts etcd, builds and runs this
//! ```
//!
//! Settings: `TRELLIS_BENCH_ETCD` (the three etcd client URLs, comma
//! separated; set by the script), `TRELLIS_BENCH_SECONDS` (10 per
//! phase), `TRELLIS_BENCH_COUNTERS` (1000), `TRELLIS_BENCH_ONLY_CLIENTS`
//! (run only this client count; 0, the default, runs 1, 16 and 64),
//! `TRELLIS_BENCH_KEYS` (1; 0 sends Trellis decrements without
//! idempotency keys, to see what the key table costs).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use trellis_benches::report::{http_agent, millis, percentile, setting};
use trellis_node::quickstart::Cluster;

/// Where every counter starts: far more than any run can take.
const INITIAL: i64 = 1_000_000_000_000;
/// The longest an etcd decrement may go on retrying.
const CALL_LIMIT: Duration = Duration::from_secs(30);
/// The etcd keys live under this prefix.
const ETCD_PREFIX: &str = "bench/";

/// Standard base64 with padding (what the gateway uses for bytes).
fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unb64(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return Err(format!("{text:?} is not base64")),
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// A small, fast generator for picking counters (xorshift64*).
struct Pick(u64);

impl Pick {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// The system under test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum System {
    Trellis,
    Etcd,
}

impl System {
    fn label(self) -> &'static str {
        match self {
            System::Trellis => "Trellis",
            System::Etcd => "etcd",
        }
    }
}

/// What one decrement cost: the transactions that lost a race (etcd).
type Retries = u64;

/// Why a decrement failed, and whether it may still have been applied
/// (a transport error or a 5xx) or certainly was not (a 4xx).
struct Failure {
    message: String,
    maybe_applied: bool,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure {
            message,
            maybe_applied: true,
        }
    }
}

/// POSTs `body` as JSON and returns the status and the JSON answer.
fn post(agent: &ureq::Agent, url: &str, body: &Value) -> Result<(u16, Value), String> {
    let mut response = agent
        .post(url)
        .send_json(body)
        .map_err(|err| format!("POST {url}: {err}"))?;
    let status = response.status().as_u16();
    let answer = response
        .body_mut()
        .read_json::<Value>()
        .map_err(|err| format!("POST {url}: the answer is not JSON: {err}"))?;
    Ok((status, answer))
}

/// Ours: one compare-and-decrement through the node's API, with an
/// idempotency key unless `id` is `None`.
fn trellis_decrement(
    agent: &ureq::Agent,
    base: &str,
    name: &str,
    id: Option<&str>,
) -> Result<Retries, Failure> {
    let url = format!("{base}/v1/counters/{name}/decrement");
    let body = match id {
        Some(id) => json!({"by": 1, "id": id}),
        None => json!({"by": 1}),
    };
    match post(agent, &url, &body)? {
        (200, _) => Ok(0),
        (status, answer) => Err(Failure {
            message: format!("{status}: {answer}"),
            maybe_applied: !(400..500).contains(&status),
        }),
    }
}

/// A key's value and mod revision from a range answer's `kvs[0]`.
fn etcd_kv(kv: &Value) -> Result<(i64, String), String> {
    let value = kv["value"]
        .as_str()
        .ok_or_else(|| format!("no value in {kv}"))?;
    let value = String::from_utf8(unb64(value)?)
        .map_err(|err| err.to_string())?
        .parse::<i64>()
        .map_err(|err| format!("the value is not a number: {err}"))?;
    let revision = match &kv["mod_revision"] {
        Value::String(text) => text.clone(),
        Value::Number(n) => n.to_string(),
        other => return Err(format!("no mod_revision in {other}")),
    };
    Ok((value, revision))
}

/// etcd's linearizable read of `key`.
fn etcd_read(agent: &ureq::Agent, base: &str, key: &str) -> Result<(i64, String), String> {
    let url = format!("{base}/v3/kv/range");
    match post(agent, &url, &json!({"key": b64(key.as_bytes())}))? {
        (200, answer) => etcd_kv(&answer["kvs"][0]),
        (status, answer) => Err(format!("range: {status}: {answer}")),
    }
}

/// etcd: read, then compare the mod revision and put the value minus
/// one; on a conflict, retry from the value the failure branch returned.
fn etcd_decrement(
    agent: &ureq::Agent,
    base: &str,
    key: &str,
    started: Instant,
) -> Result<Retries, Failure> {
    let url = format!("{base}/v3/kv/txn");
    let key64 = b64(key.as_bytes());
    let (mut value, mut revision) = etcd_read(agent, base, key)?;
    let mut retries = 0;
    loop {
        if value < 1 {
            return Err(Failure {
                message: format!("{key} ran out of stock"),
                maybe_applied: false,
            });
        }
        let txn = json!({
            "compare": [{"key": key64, "target": "MOD", "result": "EQUAL", "mod_revision": revision}],
            "success": [{"request_put": {"key": key64, "value": b64((value - 1).to_string().as_bytes())}}],
            "failure": [{"request_range": {"key": key64}}],
        });
        let (status, answer) = post(agent, &url, &txn)?;
        if status != 200 {
            return Err(format!("txn: {status}: {answer}").into());
        }
        if answer["succeeded"].as_bool() == Some(true) {
            return Ok(retries);
        }
        retries += 1;
        if started.elapsed() > CALL_LIMIT {
            return Err(Failure {
                message: format!("no decrement after {retries} conflicts"),
                maybe_applied: false,
            });
        }
        (value, revision) = etcd_kv(&answer["responses"][0]["response_range"]["kvs"][0])?;
    }
}

/// Every bench counter's value, by index (`names[i]`).
fn values(system: System, base: &str, names: &[String]) -> Vec<i64> {
    let agent = http_agent();
    let all: Vec<(String, i64)> = match system {
        System::Trellis => {
            let (status, answer) = get(&agent, &format!("{base}/v1/counters"));
            assert_eq!(status, 200, "listing the counters failed: {answer}");
            answer["counters"]
                .as_array()
                .unwrap_or_else(|| panic!("no counters in {answer}"))
                .iter()
                .map(|c| {
                    let name = c["name"].as_str().unwrap_or_default().to_owned();
                    (name, c["value"].as_i64().unwrap_or(i64::MIN))
                })
                .collect()
        }
        System::Etcd => {
            // The whole prefix in one linearizable range.
            let mut end = ETCD_PREFIX.as_bytes().to_vec();
            if let Some(last) = end.last_mut() {
                *last += 1;
            }
            let body =
                json!({"key": b64(ETCD_PREFIX.as_bytes()), "range_end": b64(&end), "limit": 0});
            let (status, answer) = post(&agent, &format!("{base}/v3/kv/range"), &body)
                .unwrap_or_else(|err| panic!("reading etcd's counters failed: {err}"));
            assert_eq!(status, 200, "reading etcd's counters failed: {answer}");
            answer["kvs"]
                .as_array()
                .unwrap_or_else(|| panic!("no kvs in {answer}"))
                .iter()
                .map(|kv| {
                    let key = unb64(kv["key"].as_str().unwrap_or_default())
                        .unwrap_or_else(|err| panic!("{err}"));
                    let key = String::from_utf8_lossy(&key)
                        .trim_start_matches(ETCD_PREFIX)
                        .to_owned();
                    let (value, _) = etcd_kv(kv).unwrap_or_else(|err| panic!("{err}"));
                    (key, value)
                })
                .collect()
        }
    };
    let by_name: std::collections::HashMap<String, i64> = all.into_iter().collect();
    names
        .iter()
        .map(|name| {
            *by_name
                .get(name)
                .unwrap_or_else(|| panic!("{} lost counter {name}", system.label()))
        })
        .collect()
}

fn get(agent: &ureq::Agent, url: &str) -> (u16, Value) {
    let mut response = agent
        .get(url)
        .call()
        .unwrap_or_else(|err| panic!("GET {url}: {err}"));
    let status = response.status().as_u16();
    let answer = response
        .body_mut()
        .read_json::<Value>()
        .unwrap_or_else(|err| panic!("GET {url}: not JSON: {err}"));
    (status, answer)
}

/// Creates `names` at [`INITIAL`] on `system`, 16 at a time, retrying
/// while the counter group elects its leader.
fn create_all(system: System, urls: &[String], names: &[String]) {
    let names = Arc::new(names.to_vec());
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let (names, base) = (Arc::clone(&names), urls[0].clone());
            std::thread::spawn(move || {
                let agent = http_agent();
                for name in names.iter().skip(t).step_by(16) {
                    let started = Instant::now();
                    loop {
                        let result = match system {
                            System::Trellis => post(
                                &agent,
                                &format!("{base}/v1/counters/{name}"),
                                &json!({"initial": INITIAL, "min": 0}),
                            ),
                            System::Etcd => post(
                                &agent,
                                &format!("{base}/v3/kv/put"),
                                &json!({"key": b64(format!("{ETCD_PREFIX}{name}").as_bytes()),
                                        "value": b64(INITIAL.to_string().as_bytes())}),
                            ),
                        };
                        match result {
                            Ok((200, _)) => break,
                            other if started.elapsed() > Duration::from_secs(60) => {
                                panic!("{} could not create {name}: {other:?}", system.label())
                            }
                            _ => std::thread::sleep(Duration::from_millis(100)),
                        }
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread
            .join()
            .unwrap_or_else(|_| panic!("a create thread failed"));
    }
}

/// What one phase measured.
struct Phase {
    latencies: Vec<Duration>,
    took: Duration,
    errors: u64,
    first_error: Option<String>,
    retries: u64,
    /// Whether the values read back match the acknowledged decrements.
    check: Result<(), String>,
}

/// Runs `clients` threads decrementing `names` (at random) on `system`
/// for `seconds`, then checks the values. `tag` makes the idempotency
/// keys unique to the phase.
fn phase(
    system: System,
    urls: &[String],
    names: &[String],
    clients: u64,
    seconds: u64,
    tag: &str,
) -> Phase {
    let before = values(system, &urls[0], names);
    let names = Arc::new(names.to_vec());
    let keys = setting("TRELLIS_BENCH_KEYS", 1) != 0;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let base = urls[client as usize % urls.len()].clone();
            let names = Arc::clone(&names);
            let tag = format!("{tag}-{client}");
            std::thread::spawn(move || {
                let agent = http_agent();
                let mut pick = Pick(0x9e37_79b9_7f4a_7c15 ^ (client + 1).wrapping_mul(0xff51));
                let mut latencies = Vec::new();
                let mut acked = vec![0i64; names.len()];
                let mut unknown = vec![0i64; names.len()];
                let (mut errors, mut retries, mut first_error) = (0u64, 0u64, None);
                let mut op = 0u64;
                while Instant::now() < deadline {
                    let at = pick.below(names.len());
                    let sent = Instant::now();
                    let result = match system {
                        System::Trellis => trellis_decrement(
                            &agent,
                            &base,
                            &names[at],
                            keys.then(|| format!("{tag}-{op}")).as_deref(),
                        ),
                        System::Etcd => etcd_decrement(
                            &agent,
                            &base,
                            &format!("{ETCD_PREFIX}{}", names[at]),
                            sent,
                        ),
                    };
                    match result {
                        Ok(lost) => {
                            latencies.push(sent.elapsed());
                            acked[at] += 1;
                            retries += lost;
                        }
                        Err(failure) => {
                            errors += 1;
                            unknown[at] += i64::from(failure.maybe_applied);
                            first_error.get_or_insert(failure.message);
                        }
                    }
                    op += 1;
                }
                (latencies, acked, unknown, errors, retries, first_error)
            })
        })
        .collect();
    let mut result = Phase {
        latencies: Vec::new(),
        took: Duration::ZERO,
        errors: 0,
        first_error: None,
        retries: 0,
        check: Ok(()),
    };
    let mut acked = vec![0i64; names.len()];
    let mut unknown = vec![0i64; names.len()];
    for thread in threads {
        let (latencies, a, u, errors, retries, first_error) = thread
            .join()
            .unwrap_or_else(|_| panic!("a client thread failed"));
        result.latencies.extend(latencies);
        for i in 0..names.len() {
            acked[i] += a[i];
            unknown[i] += u[i];
        }
        result.errors += errors;
        result.retries += retries;
        if result.first_error.is_none() {
            result.first_error = first_error;
        }
    }
    result.took = started.elapsed();
    result.latencies.sort_unstable();
    let after = values(system, &urls[0], &names);
    for i in 0..names.len() {
        let taken = before[i] - after[i];
        if taken < acked[i] || taken > acked[i] + unknown[i] {
            result.check = Err(format!(
                "{}: {} went from {} to {} ({taken} taken) but {} decrements were acknowledged \
                 and {} failed",
                system.label(),
                names[i],
                before[i],
                after[i],
                acked[i],
                unknown[i]
            ));
            break;
        }
    }
    result
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

fn main() {
    let etcd: Vec<String> = std::env::var("TRELLIS_BENCH_ETCD")
        .unwrap_or_else(|_| {
            panic!(
                "TRELLIS_BENCH_ETCD is not set: run benches/etcd/run.sh, which starts three etcd \
                 members and sets it to their client URLs"
            )
        })
        .split(',')
        .map(|url| url.trim().trim_end_matches('/').to_owned())
        .filter(|url| !url.is_empty())
        .collect();
    let seconds = setting("TRELLIS_BENCH_SECONDS", 10);
    let many = setting("TRELLIS_BENCH_COUNTERS", 1000) as usize;
    let only = setting("TRELLIS_BENCH_ONLY_CLIENTS", 0);
    let client_counts: Vec<u64> = [1u64, 16, 64]
        .into_iter()
        .filter(|n| only == 0 || *n == only)
        .collect();

    let dir = std::env::temp_dir().join(format!("trellis-counter-etcd-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|err| panic!("no tokio runtime: {err}"));
    let cluster = runtime
        .block_on(Cluster::start(&dir))
        .unwrap_or_else(|err| panic!("the three Trellis nodes did not start: {err}"));
    let ours: Vec<String> = cluster.nodes.iter().map(|n| n.api_url()).collect();

    let hot = vec!["hot".to_owned()];
    let spread: Vec<String> = (0..many).map(|i| format!("sku-{i:04}")).collect();
    for system in [System::Trellis, System::Etcd] {
        let urls = if system == System::Trellis {
            &ours
        } else {
            &etcd
        };
        create_all(system, urls, &hot);
        create_all(system, urls, &spread);
    }
    println!(
        "Trellis: 3 counter voters in process (fsync); etcd: {} members at {}; {seconds} s per \
         phase; load average before: {}",
        etcd.len(),
        etcd.join(" "),
        loadavg()
    );

    let mut rows = Vec::new();
    let mut turn = 0;
    let spread_label = format!("{many}");
    for (workload, names) in [("1 hot", &hot), (spread_label.as_str(), &spread)] {
        for &clients in &client_counts {
            let order = if turn % 2 == 0 {
                [System::Trellis, System::Etcd]
            } else {
                [System::Etcd, System::Trellis]
            };
            let tag = format!("p{turn}");
            turn += 1;
            let mut measured = Vec::new();
            for system in order {
                let urls = if system == System::Trellis {
                    &ours
                } else {
                    &etcd
                };
                let result = phase(system, urls, names, clients, seconds, &tag);
                eprintln!(
                    "{workload} counter(s), {clients} clients, {}: {:.0} ops/s, p99 {}, {} errors{}",
                    system.label(),
                    result.latencies.len() as f64 / result.took.as_secs_f64(),
                    millis(percentile(&result.latencies, 0.99)),
                    result.errors,
                    result
                        .first_error
                        .as_ref()
                        .map(|e| format!(" (first: {e})"))
                        .unwrap_or_default()
                );
                measured.push((system, result));
            }
            measured.sort_by_key(|(system, _)| *system == System::Etcd);
            rows.push((workload.to_owned(), clients, measured));
        }
    }
    let after_load = loadavg();

    println!();
    println!(
        "| counters | clients | system | decrements per s | p50 | p99 | max | errors | etcd conflicts per decrement | values check |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---|");
    for (workload, clients, measured) in &rows {
        for (system, r) in measured {
            let ops = r.latencies.len();
            println!(
                "| {workload} | {clients} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
                system.label(),
                ops as f64 / r.took.as_secs_f64(),
                millis(percentile(&r.latencies, 0.5)),
                millis(percentile(&r.latencies, 0.99)),
                millis(r.latencies.last().copied().unwrap_or_default()),
                r.errors,
                if *system == System::Etcd {
                    format!("{:.2}", r.retries as f64 / ops.max(1) as f64)
                } else {
                    "–".into()
                },
                match &r.check {
                    Ok(()) => "ok".to_owned(),
                    Err(err) => format!("**FAILED**: {err}"),
                }
            );
        }
    }
    println!();
    println!("| counters | clients | throughput Trellis / etcd | p99 Trellis / etcd |");
    println!("|---|---:|---:|---:|");
    let mut verdict = None;
    for (workload, clients, measured) in &rows {
        let (ours, theirs) = (&measured[0].1, &measured[1].1);
        let rate = |r: &Phase| r.latencies.len() as f64 / r.took.as_secs_f64();
        let p99 = |r: &Phase| percentile(&r.latencies, 0.99).as_secs_f64();
        let throughput = rate(ours) / rate(theirs).max(f64::MIN_POSITIVE);
        let tail = p99(ours) / p99(theirs).max(f64::MIN_POSITIVE);
        println!("| {workload} | {clients} | {throughput:.2} | {tail:.2} |");
        if workload == "1 hot" && *clients == 64 {
            verdict = Some((throughput, tail));
        }
    }
    if let Some((throughput, tail)) = verdict {
        let met = throughput >= 1.5 && tail <= 1.0;
        println!(
            "\nTarget (64 clients, hot counter: >= 1.5x etcd's throughput, p99 no worse): {} \
             ({throughput:.2}x, p99 ratio {tail:.2})",
            if met { "met" } else { "NOT met" }
        );
    }
    println!("load average after: {after_load}");
    let failed = rows
        .iter()
        .flat_map(|(_, _, m)| m)
        .any(|(_, r)| r.check.is_err());
    runtime.block_on(cluster.stop());
    assert!(!failed, "a values check failed (see the table)");
}
