//! `trellis-harness`: real `trellis` processes on loopback, a workload at
//! every site, and the faults production brings (kill -9, pauses,
//! partitions full and one-way, loss, duplication, delay), then proof
//! that nothing was lost: the sites converge, every acknowledged write is
//! present, the stock was never oversold, the change feeds have no gaps,
//! and the consistency window was reported while it was broken.
//!
//! ```sh
//! cargo build --release --bin trellis --bin trellis-harness
//! target/release/trellis-harness --seed 7 --duration 300
//! ```
//!
//! A run is replayed by its `--seed` (the fault schedule and the
//! workload's choices; timing on a shared machine still varies). It exits
//! 1 if any violation was found. See docs/reliability.md.

mod checks;
mod cluster;
mod faults;
mod proxy;
mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "trellis-harness",
    about = "Fault and attack harness: prove that nothing is lost"
)]
struct Args {
    /// Seeds the fault schedule and the workload; printed so a run can be replayed.
    #[arg(long)]
    seed: Option<u64>,
    /// How long faults are injected, in seconds.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// How many sites.
    #[arg(long, default_value_t = 3)]
    sites: usize,
    /// The consistency window the sites state, in seconds.
    #[arg(long, default_value_t = 4)]
    window: u64,
    /// Keep the sites' directories (logs, data) instead of removing them.
    #[arg(long)]
    keep: bool,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !(2..=7).contains(&args.sites) {
        anyhow::bail!("--sites must be between 2 and 7");
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    println!(
        "trellis-harness --seed {seed} --duration {} --sites {}",
        args.duration, args.sites
    );
    let dir = std::env::temp_dir().join(format!("trellis-harness-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = run(&args, seed, &dir);
    if args.keep || result.as_ref().is_ok_and(|clean| !clean) {
        println!(
            "the sites' directories (logs, data) are kept in {}",
            dir.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if result? {
        Ok(())
    } else {
        std::process::exit(1)
    }
}

/// One run; whether it found no violation.
fn run(args: &Args, seed: u64, dir: &std::path::Path) -> anyhow::Result<bool> {
    let window = Duration::from_secs(args.window);
    let (mut sites, proxies) = cluster::create(dir, args.sites, &format!("{}s", args.window))?;
    let network = proxy::Network::new(args.sites);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the proxies' runtime")?;
    let reals: Vec<_> = sites.iter().map(|site| site.real).collect();
    for (i, public) in proxies.into_iter().enumerate() {
        let (reals, network) = (reals.clone(), Arc::clone(&network));
        runtime.spawn(async move {
            if let Err(err) = proxy::run(i, public, reals[i], reals, network, seed).await {
                eprintln!("the proxy of site-{i} stopped: {err}");
            }
        });
    }
    for site in &mut sites {
        site.start()?;
    }
    let clients: Vec<_> = sites
        .iter()
        .map(|s| s.client(Duration::from_secs(5)))
        .collect();
    // The stock, once the counter group has a leader.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let create = json!({"initial": workload::STOCK_INITIAL, "min": 0, "id": "harness-create"});
        match clients[0].json(
            "POST",
            &format!("/v1/counters/{}", workload::STOCK),
            Some(&create),
        ) {
            Ok(_) => break,
            Err(err) if Instant::now() > deadline => {
                anyhow::bail!("cannot create the stock counter: {err}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = clients
        .iter()
        .enumerate()
        .map(|(i, client)| {
            let (client, stop) = (client.clone(), Arc::clone(&stop));
            std::thread::spawn(move || workload::run(i, client, seed, stop))
        })
        .collect();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut log = faults::FaultLog::new(started);
    let until = started + Duration::from_secs(args.duration);
    faults::random_faults(&mut sites, &network, &mut rng, until, &mut log);
    let cut_off = rng.random_range(0..sites.len());
    faults::window_partition(&sites, &network, cut_off, window, &mut log);
    stop.store(true, Ordering::Relaxed);
    let ledgers: Vec<workload::Ledger> = workers
        .into_iter()
        .map(|worker| worker.join().unwrap_or_default())
        .collect();
    network.heal();

    let mut violations = log.violations.clone();
    let converge_time = match checks::converge(&clients, Duration::from_secs(120)) {
        Ok(time) => Some(time),
        Err(err) => {
            violations.push(err);
            None
        }
    };
    if converge_time.is_some() {
        violations.extend(checks::verify(&clients, &ledgers));
    }

    let total = |pick: fn(&workload::Ledger) -> u64| ledgers.iter().map(pick).sum::<u64>();
    let counts = *network
        .counts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let faults: BTreeMap<&str, u64> = log.counts.clone();
    let summary = json!({
        "seed": seed,
        "sites": args.sites,
        "duration_s": started.elapsed().as_secs_f64(),
        "operations": {
            "requests": total(|l| l.requests),
            "failed_in_flight": total(|l| l.failed),
            "puts_acknowledged": total(|l| l.puts.len() as u64),
            "deletes_acknowledged": total(|l| l.deleted.len() as u64),
            "increments_acknowledged": ledgers.iter().map(|l| l.incr_acked.iter().sum::<u64>()).sum::<u64>(),
            "decrements_acknowledged": total(|l| l.decr_acked),
        },
        "faults": faults,
        "datagrams": {"forwarded": counts.forwarded, "dropped": counts.dropped, "duplicated": counts.duplicated},
        "converged_after_heal_s": converge_time.map(|t| t.as_secs_f64()),
        "violations": violations,
    });
    println!("\nFaults, in order:");
    for event in &log.events {
        println!("  {event}");
    }
    println!("\nSummary:\n{}", serde_json::to_string_pretty(&summary)?);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&summary)?)?;
    }
    println!(
        "\n{} violations (expected 0). Replay with --seed {seed}.",
        violations.len()
    );
    drop(sites);
    runtime.shutdown_background();
    Ok(violations.is_empty())
}
