//! End to end with real processes: `trellis` binaries on loopback, set
//! up with `trellis init` and `trellis cert`, driven over HTTP and
//! through the client subcommands, killed with SIGKILL and SIGTERM.
//!
//! Every child is killed when its guard drops, on every path. Waits are
//! bounded and say what did not happen; a failing test prints the tail
//! of the node's log.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{wait_for, Http, ScratchDir};
use serde_json::{json, Value};

const TRELLIS: &str = env!("CARGO_BIN_EXE_trellis");

/// Runs a `trellis` subcommand to completion (setup and client commands).
fn trellis(args: &[&str]) -> Output {
    trellis_with_env(args, &[])
}

fn trellis_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(TRELLIS);
    command
        .args(args)
        .env_remove("TRELLIS_URL")
        .env_remove("TRELLIS_TOKEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

/// Runs a setup command and asserts that it worked.
fn setup(args: &[&str]) -> String {
    let output = trellis(args);
    assert!(
        output.status.success(),
        "trellis {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Free loopback ports: `n` TCP ports for the APIs and `n` UDP ports for
/// QUIC, all held open together so they differ, then released.
fn free_ports(n: usize) -> (Vec<u16>, Vec<u16>) {
    let tcp: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let udp: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    (
        tcp.iter().map(|s| s.local_addr().unwrap().port()).collect(),
        udp.iter().map(|s| s.local_addr().unwrap().port()).collect(),
    )
}

/// A running `trellis run`, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One site: its data directory, config file and (while running) its
/// process.
struct Site {
    name: String,
    root: PathBuf,
    config: PathBuf,
    api_port: u16,
    process: Option<Running>,
    starts: usize,
}

impl Site {
    /// `trellis init` and `trellis cert node`, and a config file;
    /// `api_extra` goes in its `[api]` section.
    fn create(
        dir: &Path,
        ca: &Path,
        name: &str,
        (api_port, peer_port): (u16, u16),
        seeds: &[u16],
        api_extra: &str,
    ) -> Site {
        let root = dir.join(name);
        let data = root.join("data");
        let out = setup(&["init", "--data", data.to_str().unwrap(), "--name", name]);
        assert!(out.contains(name), "{out}");
        setup(&[
            "cert",
            "node",
            "--ca-dir",
            ca.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--name",
            name,
        ]);
        let seeds: Vec<String> = seeds.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
        let config = root.join("trellis.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {data:?}\n\n[api]\nlisten = \"127.0.0.1:{api_port}\"\n{api_extra}\n\
                 [peer]\nlisten = \"127.0.0.1:{peer_port}\"\nseeds = [{}]\nreconcile_interval = \"300ms\"\n",
                seeds.join(", "),
                data = data.display().to_string(),
            ),
        )
        .unwrap();
        Site {
            name: name.to_owned(),
            root,
            config,
            api_port,
            process: None,
            starts: 0,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    fn http(&self) -> Http {
        Http::new(&self.url(), None)
    }

    fn log(&self) -> PathBuf {
        self.root.join(format!("run-{}.log", self.starts))
    }

    /// The end of the current log, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `trellis run --config`, and waits until `/health` answers 200.
    fn start(&mut self) {
        assert!(self.process.is_none(), "{} is running", self.name);
        self.starts += 1;
        let log = std::fs::File::create(self.log()).unwrap();
        let child = Command::new(TRELLIS)
            .args(["run", "--config", self.config.to_str().unwrap()])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.process = Some(Running(child));
        let http = self.http();
        wait_for(
            Duration::from_secs(30),
            &format!("{} answering /health", self.name),
            || {
                if let Some(status) = self.process.as_mut().unwrap().0.try_wait().unwrap() {
                    panic!(
                        "{} exited with {status} while starting:\n{}",
                        self.name,
                        self.log_tail()
                    );
                }
                match http.try_send("GET", "/health", None) {
                    Ok(reply) if reply.status == 200 => Ok(()),
                    Ok(reply) => Err(format!("{reply:?}")),
                    Err(err) => Err(err.to_string()),
                }
            },
        );
    }

    fn pid(&self) -> u32 {
        self.process.as_ref().unwrap().0.id()
    }

    /// Sends `signal` (STOP or CONT: a pause, cutting the site off while
    /// its sockets stay open) without waiting for anything.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// SIGKILL, and reaps the process.
    fn kill_9(&mut self) {
        let mut running = self.process.take().unwrap();
        running.0.kill().unwrap();
        let status = running.0.wait().unwrap();
        assert!(!status.success(), "{status}");
    }

    /// Sends `signal` and waits (bounded) for the process to exit.
    fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
        let mut running = self.process.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = running.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within 30 s of SIG{signal}:\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Three sites made with the CLI, each seeded with the other two.
fn three_sites(dir: &Path) -> Vec<Site> {
    three_sites_with(dir, "")
}

/// [`three_sites`], with `extra` appended to each config's `[api]`
/// section (which may open further sections).
fn three_sites_with(dir: &Path, extra: &str) -> Vec<Site> {
    three_sites_each(dir, [extra; 3])
}

/// [`three_sites_with`], with each site's own `extra`.
fn three_sites_each(dir: &Path, extras: [&str; 3]) -> Vec<Site> {
    let ca = dir.join("ca");
    let out = setup(&[
        "cert",
        "ca",
        "--out",
        ca.to_str().unwrap(),
        "--cluster",
        "e2e",
    ]);
    assert!(out.contains("ca.pem"), "{out}");
    let (api, peer) = free_ports(3);
    let names = ["site-a", "site-b", "site-c"];
    (0..3)
        .map(|i| {
            let seeds: Vec<u16> = (0..3).filter(|j| *j != i).map(|j| peer[j]).collect();
            Site::create(dir, &ca, names[i], (api[i], peer[i]), &seeds, extras[i])
        })
        .collect()
}

/// One site on its own, with `api_extra` in its `[api]` section.
fn lone_site(dir: &Path, name: &str, api_extra: &str) -> Site {
    let ca = dir.join("ca");
    setup(&["cert", "ca", "--out", ca.to_str().unwrap()]);
    let (api, peer) = free_ports(1);
    Site::create(dir, &ca, name, (api[0], peer[0]), &[], api_extra)
}

/// Every change after `since`, page by page.
fn all_changes(http: &Http, mut since: u64) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let page = http.changes(since, 10_000);
        let Some(last) = page.last() else {
            return all;
        };
        since = last["seq"].as_u64().unwrap();
        all.extend(page);
    }
}

/// Every live record of `collection`, key → value.
fn all_records(http: &Http, collection: &str) -> BTreeMap<String, Value> {
    let mut records = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/v1/collections/{collection}/records?limit=1000");
        if let Some(after) = &after {
            path.push_str(&format!("&after={}", trellis_node::client::encode(after)));
        }
        let reply = http.get(&path);
        assert_eq!(reply.status, 200, "{reply:?}");
        let page = reply.json();
        for record in page["records"].as_array().unwrap() {
            records.insert(
                record["key"].as_str().unwrap().to_owned(),
                record["value"].clone(),
            );
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return records,
        }
    }
}

/// A site's user collections: name → (count, digest).
fn digests(http: &Http) -> Result<BTreeMap<String, (u64, String)>, String> {
    let reply = http
        .try_send("GET", "/v1/status", None)
        .map_err(|e| e.to_string())?;
    if reply.status != 200 {
        return Err(format!("{reply:?}"));
    }
    Ok(reply.json()["collections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["name"].as_str().unwrap().starts_with('_'))
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                (
                    c["count"].as_u64().unwrap(),
                    c["digest"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect())
}

/// Waits until every site holds the same user collections, digest for
/// digest.
fn wait_converged(sites: &[Site], limit: Duration, what: &str) -> BTreeMap<String, (u64, String)> {
    let clients: Vec<Http> = sites.iter().map(Site::http).collect();
    wait_for(limit, what, || {
        let all: Vec<_> = clients.iter().map(digests).collect::<Result<_, _>>()?;
        if all.windows(2).all(|pair| pair[0] == pair[1]) {
            Ok(all[0].clone())
        } else {
            Err(format!("{all:#?}"))
        }
    })
}

/// Waits until every site links to every other.
fn wait_linked(sites: &[Site]) {
    for site in sites {
        let http = site.http();
        wait_for(
            Duration::from_secs(30),
            &format!("{} linked to the other sites", site.name),
            || {
                let status = http.get("/v1/status").json();
                let up = status["peers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["state"] == "up")
                    .count();
                if up == sites.len() - 1 {
                    Ok(())
                } else {
                    Err(status["peers"].to_string())
                }
            },
        );
    }
}

/// A writer thread: PUTs `writes/w-SITE-N` at one site until stopped,
/// keeping the writes that were acknowledged (200).
struct Writer {
    acked: Arc<Mutex<Vec<(String, Value)>>>,
    failed: Arc<Mutex<u64>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(site: &Site, stop: &Arc<AtomicBool>) -> Writer {
        Writer::start_as(site, &site.name, stop)
    }

    /// A writer whose keys are `w-NAME-N`.
    fn start_as(site: &Site, name: &str, stop: &Arc<AtomicBool>) -> Writer {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let failed = Arc::new(Mutex::new(0));
        let (http, name, stop) = (site.http(), name.to_owned(), Arc::clone(stop));
        let (acks, fails) = (Arc::clone(&acked), Arc::clone(&failed));
        let thread = std::thread::spawn(move || {
            // Bounded: at most this many writes, whatever happens.
            for i in 0..20_000u32 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let key = format!("w-{name}-{i:05}");
                let value = json!({"i": i, "site": name});
                let path = common::record_path("writes", &key);
                match http.try_send("PUT", &path, Some(value.to_string().as_bytes())) {
                    Ok(reply) if reply.status == 200 => {
                        assert_eq!(reply.json()["value"], value, "{reply:?}");
                        acks.lock().unwrap().push((key, value));
                    }
                    Ok(reply) => {
                        assert!(reply.status >= 500, "a write was refused: {reply:?}");
                        *fails.lock().unwrap() += 1;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(_) => {
                        *fails.lock().unwrap() += 1;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        });
        Writer {
            acked,
            failed,
            thread: Some(thread),
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn failed(&self) -> u64 {
        *self.failed.lock().unwrap()
    }

    fn wait_acked(&self, n: usize, what: &str) {
        wait_for(Duration::from_secs(60), what, || {
            assert!(
                !self.thread.as_ref().unwrap().is_finished(),
                "{what}: the writer stopped"
            );
            let acked = self.acked();
            if acked >= n {
                Ok(())
            } else {
                Err(format!("{acked} acknowledged"))
            }
        });
    }

    fn finish(mut self) -> Vec<(String, Value)> {
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.acked.lock().unwrap())
    }
}

#[test]
fn three_processes_converge_and_keep_every_acknowledged_write_across_a_kill_9() {
    let dir = ScratchDir::new("e2e-three");
    let mut sites = three_sites(dir.path());
    for site in &mut sites {
        site.start();
    }
    wait_linked(&sites);

    // Writes at every site, and one key written at all three.
    for site in &sites {
        let http = site.http();
        for i in 0..10 {
            http.put(
                "leads",
                &format!("{}-{i}", site.name),
                &json!({"from": site.name, "i": i}),
            );
        }
        http.put("leads", "shared", &json!({"from": site.name}));
        let reply = http.send_json(
            "PATCH",
            &common::record_path("leads", "counted"),
            &json!({"ops": [{"op": "incr", "field": "visits", "by": 2}, {"op": "add", "field": "seen", "value": site.name}]}),
        );
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    let converged = wait_converged(
        &sites,
        Duration::from_secs(30),
        "the three sites converging",
    );
    assert_eq!(converged["leads"].0, 32, "{converged:?}");
    let reference = all_records(&sites[0].http(), "leads");
    for site in &sites[1..] {
        assert_eq!(
            all_records(&site.http(), "leads"),
            reference,
            "{} differs from site-a",
            site.name
        );
    }
    assert_eq!(
        reference["counted"]["visits"], 6,
        "increments from every site add up"
    );
    assert_eq!(reference["counted"]["seen"].as_array().unwrap().len(), 3);
    let winner = &reference["shared"]["from"];
    assert!(sites.iter().any(|s| *winner == json!(s.name)), "{winner}");
    check_peer_metrics(&sites[0], &sites);

    // Concurrent writes at all three; site-c is killed -9 in the middle
    // and restarted.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<Writer> = sites
        .iter()
        .map(|site| Writer::start(site, &stop))
        .collect();
    for writer in &writers {
        writer.wait_acked(30, "writes acknowledged before the kill");
    }
    let c = sites[2].http();
    let feed_before = all_changes(&c, 0);
    let acked_at_c_before = writers[2].acked.lock().unwrap().clone();
    sites[2].kill_9();
    let failed_before = writers[2].failed();
    let (a_before, b_before) = (writers[0].acked(), writers[1].acked());
    writers[0].wait_acked(a_before + 30, "site-a taking writes while site-c is down");
    writers[1].wait_acked(b_before + 30, "site-b taking writes while site-c is down");
    wait_for(
        Duration::from_secs(30),
        "writes at the killed site failing",
        || {
            if writers[2].failed() > failed_before {
                Ok(())
            } else {
                Err("no failure yet".into())
            }
        },
    );
    let c_before_restart = writers[2].acked();
    sites[2].start();
    writers[2].wait_acked(
        c_before_restart + 30,
        "site-c taking writes after its restart",
    );
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<Vec<(String, Value)>> = writers.into_iter().map(Writer::finish).collect();

    let converged = wait_converged(
        &sites,
        Duration::from_secs(60),
        "the sites converging after the restart",
    );
    let total: usize = acked.iter().map(Vec::len).sum();
    let count = converged["writes"].0 as usize;
    assert!(
        count >= total,
        "{count} records, {total} acknowledged writes"
    );
    for site in &sites {
        let records = all_records(&site.http(), "writes");
        let lost: Vec<&String> = acked
            .iter()
            .flatten()
            .filter(|(key, value)| records.get(key) != Some(value))
            .map(|(key, _)| key)
            .collect();
        assert!(
            lost.is_empty(),
            "{} lost {} acknowledged writes: {lost:?}",
            site.name,
            lost.len()
        );
    }

    // site-c's change feed survived the crash: what it served before is
    // served again, unchanged, and numbering went on from there.
    let feed_after = all_changes(&c, 0);
    assert!(feed_before.len() >= 30, "{}", feed_before.len());
    assert_eq!(
        &feed_after[..feed_before.len()],
        &feed_before[..],
        "the feed before the crash is a prefix of the feed after it"
    );
    let seqs: Vec<u64> = feed_after
        .iter()
        .map(|c| c["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "no gap, no repeat"
    );
    for (key, _) in &acked_at_c_before {
        assert!(
            feed_after.iter().any(|c| c["collection"] == "writes"
                && c["key"] == **key
                && c["origin"] == "site-c"),
            "write {key}, acknowledged by site-c before the crash, is not in its feed"
        );
    }
}

/// The per-peer families of `/metrics` have a sample for each peer, by
/// name, and the text is well formed (histograms included).
fn check_peer_metrics(site: &Site, all: &[Site]) {
    let http = site.http();
    // Names come with membership and sync ages with the first completed
    // reconciliation: both arrive by gossip.
    wait_for(
        Duration::from_secs(30),
        "every peer named and synced once",
        || {
            let status = http.get("/v1/status").json();
            let peers = status["peers"].as_array().unwrap().clone();
            if peers.len() == all.len() - 1
                && peers
                    .iter()
                    .all(|p| p["name"].is_string() && p["last_sync_age_ms"].is_u64())
            {
                Ok(())
            } else {
                Err(format!("{peers:#?}"))
            }
        },
    );
    let text = http.get("/metrics").body;
    common::check_exposition_format(&text);
    let lines = text.lines().map(|l| Ok(l.to_owned())).collect::<Vec<_>>();
    let scrape = prometheus_parse::Scrape::parse(lines.into_iter()).unwrap();
    let expected: Vec<&str> = all
        .iter()
        .map(|s| s.name.as_str())
        .filter(|name| *name != site.name)
        .collect();
    for family in [
        "trellis_peer_bytes_in_total",
        "trellis_peer_bytes_out_total",
        "trellis_peer_merges_total",
        "trellis_peer_antientropy_rounds_total",
        "trellis_peer_records_repaired_total",
        "trellis_peer_up",
        "trellis_peer_last_sync_age_seconds",
    ] {
        let mut peers: Vec<&str> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == family)
            .filter_map(|s| s.labels.get("peer_name"))
            .collect();
        peers.sort_unstable();
        assert_eq!(peers, expected, "{family} per peer in:\n{text}");
    }
    let delays: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "trellis_propagation_delay_seconds")
        .map(|s| match &s.value {
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            other => panic!("the delay is a histogram: {other:?}"),
        })
        .sum();
    assert!(delays >= 1.0, "merged writes have measured delays:\n{text}");
}

#[test]
fn sigterm_stops_a_node_cleanly_and_its_change_feed_resumes_after_the_restart() {
    let dir = ScratchDir::new("e2e-sigterm");
    let mut site = lone_site(dir.path(), "solo", "");
    site.start();
    let http = site.http();
    for i in 0..5 {
        http.put("orders", &format!("o-{i}"), &json!({"i": i}));
    }
    let before = all_changes(&http, 0);
    let last = before.last().unwrap()["seq"].as_u64().unwrap();
    assert!(
        before
            .iter()
            .filter(|c| c["collection"] == "orders")
            .count()
            == 5
    );

    let status = site.signal_and_wait("TERM");
    assert!(
        status.success(),
        "SIGTERM: exit {status}, expected 0:\n{}",
        site.log_tail()
    );
    assert!(
        site.log_tail().contains("node stopped"),
        "{}",
        site.log_tail()
    );

    site.start();
    assert_eq!(
        all_changes(&http, 0),
        before,
        "the feed is the same after the restart"
    );
    assert_eq!(http.changes(last, 100), Vec::<Value>::new());
    http.put("orders", "o-new", &json!({"i": 99}));
    let resumed = http.changes(last, 100);
    let ours: Vec<&Value> = resumed
        .iter()
        .filter(|c| c["collection"] == "orders")
        .collect();
    assert_eq!(ours.len(), 1, "{resumed:?}");
    assert_eq!(ours[0]["key"], "o-new");
    assert_eq!(
        resumed[0]["seq"],
        last + 1,
        "numbering goes on: {resumed:?}"
    );
    for i in 0..5 {
        assert_eq!(
            http.record("orders", &format!("o-{i}")),
            Some(json!({"i": i}))
        );
    }

    // SIGINT too.
    let status = site.signal_and_wait("INT");
    assert!(
        status.success(),
        "SIGINT: exit {status}:\n{}",
        site.log_tail()
    );
}

/// Runs a client subcommand against `url`; returns stdout, asserting
/// success.
fn client(url: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut full = vec![args[0], "--url", url];
    full.extend_from_slice(&args[1..]);
    let output = trellis_with_env(&full, env);
    assert!(
        output.status.success(),
        "trellis {full:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Table rows as their whitespace-separated cells.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[test]
fn client_subcommands_work_against_a_running_node_as_tables_and_json() {
    const TOKEN: &str = "cli-test-token-0123456789";
    let dir = ScratchDir::new("e2e-cli");
    let mut site = lone_site(dir.path(), "cli-site", &format!("tokens = [\"{TOKEN}\"]"));
    site.start();
    let url = site.url();
    let token = [("TRELLIS_TOKEN", TOKEN)];
    let with_flag = ["--token", TOKEN];

    // Without the token: a clear failure, not a crash.
    let refused = trellis(&["get", "--url", &url, "leads", "lead-1"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("401"), "{stderr}");

    let out = client(
        &url,
        &["put", "leads", "lead-1", r#"{"name": "Ada", "visits": 3}"#],
        &token,
    );
    let table = rows(&out);
    assert_eq!(table[0], ["lead-1"], "{out}");
    assert_eq!(table[1], ["FIELD", "VALUE"], "{out}");
    assert!(table.contains(&vec!["name".into(), "Ada".into()]), "{out}");
    assert!(table.contains(&vec!["visits".into(), "3".into()]), "{out}");

    let out = client(
        &url,
        &[
            "put",
            "leads",
            "lead-2",
            r#"{"name": "Grace"}"#,
            "--json",
            with_flag[0],
            with_flag[1],
        ],
        &[],
    );
    let mut written: Value = serde_json::from_str(&out).unwrap();
    let causal_token = written["token"].take();
    assert!(
        causal_token.as_str().is_some_and(|t| t.starts_with("t1.")),
        "{out}"
    );
    assert_eq!(written["sites"].take(), json!(1), "{out}");
    assert_eq!(
        written,
        json!({"key": "lead-2", "value": {"name": "Grace"}, "token": null, "sites": null}),
        "{out}"
    );

    let out = client(&url, &["get", "leads", "lead-1"], &token);
    assert!(
        rows(&out).contains(&vec!["name".into(), "Ada".into()]),
        "{out}"
    );
    let out = client(&url, &["get", "leads", "lead-1", "--json"], &token);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"key": "lead-1", "value": {"name": "Ada", "visits": 3}})
    );

    let out = client(
        &url,
        &[
            "patch",
            "leads",
            "lead-1",
            r#"[{"op": "incr", "field": "logins"}]"#,
            "--json",
        ],
        &token,
    );
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["value"]["logins"],
        1,
        "{out}"
    );
    // An op of another type than the field: the API's 409, said plainly.
    let conflict = trellis_with_env(
        &[
            "patch",
            "--url",
            &url,
            "leads",
            "lead-1",
            r#"[{"op": "incr", "field": "visits"}]"#,
        ],
        &token,
    );
    assert!(!conflict.status.success());
    let stderr = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        stderr.contains("409") && stderr.contains("visits"),
        "{stderr}"
    );

    let out = client(&url, &["ls"], &token);
    let table = rows(&out);
    assert_eq!(table[0], ["COLLECTION", "RECORDS"], "{out}");
    assert!(table.contains(&vec!["leads".into(), "2".into()]), "{out}");
    let out = client(&url, &["ls", "--json"], &token);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"collections": [{"name": "leads", "count": 2}]})
    );
    let out = client(&url, &["ls", "leads"], &token);
    let table = rows(&out);
    assert_eq!(table[0], ["KEY", "VALUE"], "{out}");
    assert_eq!(table[1][0], "lead-1", "{out}");
    assert_eq!(table[2][0], "lead-2", "{out}");
    let out = client(&url, &["ls", "leads", "--limit", "1", "--json"], &token);
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["records"].as_array().unwrap().len(), 1, "{out}");
    assert_eq!(page["next"], "lead-1", "{out}");
    let out = client(&url, &["ls", "leads", "--after", "lead-1"], &token);
    assert_eq!(rows(&out)[1][0], "lead-2", "{out}");

    let out = client(&url, &["status"], &token);
    assert!(
        out.lines().next().unwrap().starts_with("site cli-site "),
        "{out}"
    );
    assert!(
        rows(&out)
            .iter()
            .any(|row| row.len() == 3 && row[0] == "leads" && row[1] == "2"),
        "the collections table: {out}"
    );
    let out = client(&url, &["status", "--json"], &token);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["node"]["name"], "cli-site", "{out}");

    let out = client(&url, &["changes", "--json"], &token);
    let changes: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let keys: Vec<&str> = changes
        .iter()
        .filter(|c| c["collection"] == "leads")
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["lead-1", "lead-2", "lead-1"], "{out}");
    let out = client(&url, &["changes"], &token);
    assert_eq!(rows(&out)[0][..3], ["SEQ", "COLLECTION", "KEY"], "{out}");

    let out = client(&url, &["delete", "leads", "lead-2"], &token);
    assert!(out.contains("deleted"), "{out}");
    let missing = trellis_with_env(&["get", "--url", &url, "leads", "lead-2"], &token);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
    let bad = trellis_with_env(&["put", "--url", &url, "leads", "x", "{not json"], &token);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not valid JSON"));
    assert_eq!(
        site.http().with_token(Some(TOKEN)).record("leads", "x"),
        None
    );
}

#[test]
fn quickstart_exits_0_after_the_demo_and_prints_the_three_site_urls_first() {
    let mut child = Running(
        Command::new(TRELLIS)
            .args(["quickstart", "--exit-after-demo"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdout = child.0.stdout.take().unwrap();
    let mut stderr = child.0.stderr.take().unwrap();
    let read_out = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
        text
    });
    let read_err = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the quickstart did not exit within 90 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = read_out.join().unwrap();
    let err = read_err.join().unwrap();
    assert!(
        status.success(),
        "quickstart exited {status}:\n{out}\n{err}"
    );

    let urls: Vec<(usize, &str)> = out
        .lines()
        .enumerate()
        .flat_map(|(n, line)| {
            line.match_indices("http://")
                .map(move |(at, _)| (n, &line[at..]))
        })
        .collect();
    assert!(urls.len() >= 3, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let mut addrs = Vec::new();
    for (i, site) in ["berlin", "lisbon", "oslo"].iter().enumerate() {
        let (line, url) = urls[i];
        let url = url.split_whitespace().next().unwrap();
        let addr: SocketAddr = url
            .strip_prefix("http://")
            .unwrap()
            .parse()
            .unwrap_or_else(|err| panic!("{url} is not http://IP:PORT ({err}):\n{out}"));
        assert!(addr.ip().is_loopback(), "{url}");
        assert_eq!(
            lines[line].split_whitespace().collect::<Vec<_>>(),
            [*site, url],
            "site {site}'s URL on its own line:\n{out}"
        );
        if i > 0 {
            assert!(line > urls[i - 1].0, "one URL per line:\n{out}");
        }
        addrs.push(addr);
    }
    addrs.dedup();
    assert_eq!(addrs.len(), 3, "three different sites: {addrs:?}");
    for site in ["lisbon", "oslo"] {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(site) && l.contains("has it after")),
            "the lead arriving at {site}:\n{out}"
        );
    }
}

/// A paused site, resumed when the guard drops (so a failing assertion
/// does not leave it stopped for the kill on drop).
struct Paused<'a>(&'a Site);

impl<'a> Paused<'a> {
    fn new(site: &'a Site) -> Self {
        site.signal("STOP");
        Paused(site)
    }
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.0.signal("CONT");
    }
}

/// A write's token, from a PUT at `http` that must answer 200.
fn put_token(http: &Http, key: &str, value: &Value) -> String {
    let reply = http.send_json("PUT", &common::record_path("leads", key), value);
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["token"].as_str().unwrap().to_owned()
}

#[test]
fn a_token_read_at_another_site_returns_the_write_under_load_and_when_that_site_lags() {
    let dir = ScratchDir::new("e2e-tokens");
    let mut sites = three_sites(dir.path());
    for site in &mut sites {
        site.start();
    }
    wait_linked(&sites);
    let (a, b) = (sites[0].http(), sites[1].http());

    // Under load: writers at A and C while tokens are read back at B.
    let stop = Arc::new(AtomicBool::new(false));
    let writers = [
        Writer::start(&sites[0], &stop),
        Writer::start(&sites[2], &stop),
    ];
    for i in 0..30 {
        let value = json!({"name": format!("lead {i}"), "n": i});
        let token = put_token(&a, &format!("t-{i}"), &value);
        let path = format!(
            "{}?after={token}&timeout=10s",
            common::record_path("leads", &format!("t-{i}"))
        );
        let read = b.get(&path);
        assert_eq!(read.status, 200, "{read:?}");
        assert_eq!(read.json()["value"], value, "read-your-write at B");
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.finish();
    }

    // B lags: it is paused while A takes the write, and the read at B is
    // asked as soon as B is back.
    let value = json!({"name": "written while B was cut off"});
    let token = {
        let _paused = Paused::new(&sites[1]);
        let token = put_token(&a, "lagging", &value);
        std::thread::sleep(Duration::from_millis(500));
        token
    };
    let path = format!(
        "{}?after={token}&timeout=20s",
        common::record_path("leads", "lagging")
    );
    let read = b.get(&path);
    assert_eq!(read.status, 200, "{read:?}");
    assert_eq!(read.json()["value"], value);

    // A token names a record: waiting on it and reading another gives
    // causal order across records.
    let token = put_token(&a, "order-1", &json!({"total": 42}));
    let path = format!(
        "{}?after={token}&timeout=10s",
        common::record_path("leads", "lagging")
    );
    assert_eq!(b.get(&path).status, 200);
    assert_eq!(b.record("leads", "order-1"), Some(json!({"total": 42})));
}

#[test]
fn a_token_a_site_cannot_satisfy_in_time_is_a_504_and_garbage_is_a_400() {
    let dir = ScratchDir::new("e2e-token-504");
    let mut sites = three_sites(dir.path());
    // A fourth site of the same cluster that nobody knows and that knows
    // nobody: cut off, it can never get A's write.
    let (api, peer) = free_ports(1);
    let mut island = Site::create(
        dir.path(),
        &dir.path().join("ca"),
        "island",
        (api[0], peer[0]),
        &[],
        "",
    );
    sites[0].start();
    island.start();
    let token = put_token(&sites[0].http(), "l1", &json!({"name": "Ada"}));
    let island = island.http();
    let started = Instant::now();
    let path = format!(
        "{}?after={token}&timeout=1s",
        common::record_path("leads", "l1")
    );
    island
        .get(&path)
        .assert_error(504, "not_yet", "a token the island cannot have");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "it waited for the timeout"
    );
    for bad in ["garbage", "t1.", "t1.%21%21", "t1.AAAA"] {
        let path = format!("{}?after={bad}", common::record_path("leads", "l1"));
        island.get(&path).assert_error(400, "bad_token", bad);
    }
    let path = format!(
        "{}?after={token}&timeout=forever",
        common::record_path("leads", "l1")
    );
    island
        .get(&path)
        .assert_error(400, "bad_query", "a bad timeout");
}

#[test]
fn wait_all_is_200_with_every_site_up_and_202_with_one_down_and_the_write_still_arrives() {
    let dir = ScratchDir::new("e2e-wait");
    let mut sites = three_sites(dir.path());
    for site in &mut sites {
        site.start();
    }
    wait_linked(&sites);
    let a = sites[0].http();
    let path = format!(
        "{}?wait=all&timeout=10s",
        common::record_path("leads", "all-up")
    );
    let reply = a.send_json("PUT", &path, &json!({"name": "everyone"}));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["sites"], 3);
    for site in &sites[1..] {
        assert_eq!(
            site.http().record("leads", "all-up"),
            Some(json!({"name": "everyone"}))
        );
    }
    let path = format!(
        "{}?wait=majority&timeout=10s",
        common::record_path("leads", "most")
    );
    let reply = a.send_json("PUT", &path, &json!({"name": "most"}));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.json()["sites"].as_u64().unwrap() >= 2, "{reply:?}");

    let value = json!({"name": "one site down"});
    {
        let _paused = Paused::new(&sites[2]);
        let path = format!(
            "{}?wait=all&timeout=2s",
            common::record_path("leads", "one-down")
        );
        let reply = a.send_json("PUT", &path, &value);
        assert_eq!(reply.status, 202, "{reply:?}");
        let body = reply.json();
        assert_eq!(body["sites"], 2, "{body}");
        assert_eq!(body["required"], 3, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("not rolled back"),
            "{body}"
        );
        // Not rolled back: here, and at the site that was up.
        assert_eq!(a.record("leads", "one-down"), Some(value.clone()));
        let path = format!("{}?wait=4", common::record_path("leads", "x"));
        a.send_json("PUT", &path, &json!({}))
            .assert_error(400, "bad_query", "wait=4 of 3");
    }
    let c = sites[2].http();
    wait_for(
        Duration::from_secs(30),
        "the write reaching the site that was down",
        || match c.record("leads", "one-down") {
            Some(found) if found == value => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
}

#[test]
fn a_partition_longer_than_the_window_turns_health_503_naming_the_peer_then_recovers() {
    let dir = ScratchDir::new("e2e-window");
    let mut sites = three_sites_with(dir.path(), "\n[consistency]\nwindow = \"3s\"\n");
    for site in &mut sites[..2] {
        site.start();
    }
    let a = sites[0].http();
    wait_for(Duration::from_secs(30), "A healthy with B synced", || {
        let health = a.get("/health");
        let status = a.get("/v1/status").json();
        let synced = status["peers"].as_array().unwrap().iter().any(|p| {
            p["name"] == "site-b" && p["within_window"] == true && p["last_sync_age_ms"].is_u64()
        });
        if health.status == 200 && synced {
            Ok(())
        } else {
            Err(format!("{health:?} {status}"))
        }
    });
    let breached = |http: &Http| {
        let metrics = http.get("/metrics").body;
        metrics
            .lines()
            .find(|line| {
                line.starts_with("trellis_consistency_window_breached{")
                    && line.contains("peer_name=\"site-b\"")
            })
            .map(|line| line.rsplit(' ').next().unwrap_or_default().to_owned())
    };
    assert_eq!(breached(&a).as_deref(), Some("0"));
    {
        let _paused = Paused::new(&sites[1]);
        wait_for(
            Duration::from_secs(30),
            "A reporting B beyond the window",
            || {
                let health = a.get("/health");
                if health.status == 503
                    && health.body.contains("site-b")
                    && health.body.contains("window")
                {
                    Ok(())
                } else {
                    Err(format!("{health:?}"))
                }
            },
        );
        assert_eq!(breached(&a).as_deref(), Some("1"));
    }
    wait_for(
        Duration::from_secs(30),
        "A healthy again after B is back",
        || {
            let health = a.get("/health");
            if health.status == 200 {
                Ok(())
            } else {
                Err(format!("{health:?}"))
            }
        },
    );
    assert_eq!(breached(&a).as_deref(), Some("0"));
}

/// Runs `trellis args` that should exit at once; kills it and panics if
/// it is still running after 30 s. Returns whether it succeeded, and its
/// stderr.
fn run_expecting_exit(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let err_path = dir.join("stderr.txt");
    let mut command = Command::new(TRELLIS);
    command
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = Running(command.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "trellis {args:?} is still running after 30 s: it should have refused to start"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.success(),
        std::fs::read_to_string(&err_path).unwrap(),
    )
}

#[test]
fn run_refuses_an_open_api_off_loopback_and_names_the_bad_config_key() {
    let dir = ScratchDir::new("e2e-refuse");
    let site = lone_site(dir.path(), "refuser", "");
    let config = site.config.to_str().unwrap();
    let cases: [(&[&str], &[&str]); 4] = [
        (
            &["--set", "api.listen=0.0.0.0:7380"],
            &["api.listen", "api.tokens"],
        ),
        (&["--set", "api.tokens=[\"short\"]"], &["api.tokens", "16"]),
        (
            &["--set", "peer.reconcile_interval=soon"],
            &["peer.reconcile_interval"],
        ),
        (&["--set", "api.nonsense=1"], &["api.nonsense"]),
    ];
    for (flags, words) in cases {
        let mut args = vec!["run", "--config", config];
        args.extend_from_slice(flags);
        let (ok, stderr) = run_expecting_exit(dir.path(), &args, &[]);
        assert!(!ok, "{flags:?} started: {stderr}");
        for word in words {
            assert!(stderr.contains(word), "{flags:?}: {word} not in {stderr}");
        }
    }
    // The same with a variable, and the config file itself broken.
    let (ok, stderr) = run_expecting_exit(
        dir.path(),
        &["run", "--config", config],
        &[("TRELLIS_API_MAX_BODY_BYTES", "lots")],
    );
    assert!(!ok && stderr.contains("api.max_body_bytes"), "{stderr}");
    std::fs::write(&site.config, "data_dir = ").unwrap();
    let (ok, stderr) = run_expecting_exit(dir.path(), &["run", "--config", config], &[]);
    assert!(!ok && stderr.contains("not valid TOML"), "{stderr}");
}

#[test]
fn sigterm_in_the_middle_of_writes_exits_0_and_keeps_every_acknowledged_write() {
    let dir = ScratchDir::new("e2e-sigterm-writes");
    let mut site = lone_site(dir.path(), "busy", "");
    site.start();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<Writer> = (0..4)
        .map(|n| Writer::start_as(&site, &format!("busy-{n}"), &stop))
        .collect();
    for writer in &writers {
        writer.wait_acked(20, "writes acknowledged before SIGTERM");
    }
    let status = site.signal_and_wait("TERM");
    assert!(
        status.success(),
        "SIGTERM under load: exit {status}, expected 0:\n{}",
        site.log_tail()
    );
    // The writers see the node go away; then they are stopped.
    for writer in &writers {
        let failed = writer.failed();
        wait_for(
            Duration::from_secs(30),
            "writes failing once the node is gone",
            || {
                if writer.failed() > failed {
                    Ok(())
                } else {
                    Err("no failure yet".into())
                }
            },
        );
    }
    stop.store(true, Ordering::Relaxed);
    let acked: BTreeMap<String, Value> = writers.into_iter().flat_map(Writer::finish).collect();
    assert!(acked.len() >= 80, "{}", acked.len());

    site.start();
    let records = all_records(&site.http(), "writes");
    let lost: Vec<&String> = acked
        .iter()
        .filter(|(key, value)| records.get(*key) != Some(*value))
        .map(|(key, _)| key)
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged writes lost across SIGTERM: {lost:?}"
    );
}

#[test]
fn a_clock_beyond_the_skew_limit_is_refused_and_one_within_it_keeps_causal_order() {
    let dir = ScratchDir::new("e2e-skew");
    // A's clock is right; B's runs 10 minutes ahead (beyond the 60 s
    // limit); C's 30 s ahead (within it).
    let mut sites = three_sites_each(
        dir.path(),
        [
            "",
            "\n[store]\nclock_offset_ms = 600000\n",
            "\n[store]\nclock_offset_ms = 30000\n",
        ],
    );
    for site in &mut sites {
        site.start();
    }
    wait_linked(&sites);
    let (a, b, c) = (sites[0].http(), sites[1].http(), sites[2].http());

    // B's write is stamped 10 minutes ahead: A and C refuse it rather than
    // take it into the future; it stays at B.
    put_token(&b, "from-the-future", &json!({"at": "B"}));
    let from_a = put_token(&a, "from-the-present", &json!({"at": "A"}));
    // A's write reaches B (it is in B's past), while B's never reaches A.
    let path = format!(
        "{}?after={from_a}&timeout=20s",
        common::record_path("leads", "from-the-present")
    );
    assert_eq!(b.get(&path).status, 200, "A's write reached B");
    wait_for(Duration::from_secs(20), "A refusing B's changes", || {
        let status = a.get("/v1/status").json();
        let refused = status["replication"]["refused_merges"]
            .as_u64()
            .unwrap_or(0);
        if refused > 0 {
            Ok(())
        } else {
            Err(status["replication"].to_string())
        }
    });
    assert_eq!(a.record("leads", "from-the-future"), None);
    assert_eq!(c.record("leads", "from-the-future"), None);

    // C runs 30 s ahead, within the limit: its write is accepted, and a
    // write A makes after reading it wins, though A's clock is behind C's.
    let from_c = put_token(&c, "order", &json!({"by": "C"}));
    let path = format!(
        "{}?after={from_c}&timeout=20s",
        common::record_path("leads", "order")
    );
    assert_eq!(a.get(&path).status, 200, "C's write reached A");
    let from_a = put_token(&a, "order", &json!({"by": "A, after reading C"}));
    let path = format!(
        "{}?after={from_a}&timeout=20s",
        common::record_path("leads", "order")
    );
    assert_eq!(c.get(&path).status, 200);
    for http in [&a, &c] {
        assert_eq!(
            http.record("leads", "order"),
            Some(json!({"by": "A, after reading C"}))
        );
    }
}
