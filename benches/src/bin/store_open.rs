//! Open and recovery time of a `RedbStore` holding a million records, and
//! the memory of the process that holds it open, against plain redb
//! reading the same file.
//!
//! 1. Builds the store once: 1 000 000 records of 6 fields (about 220 bytes
//!    encoded) under keys `lead-0000000`… in one collection, written from
//!    one thread that keeps 8192 writes outstanding (`Pending`s waited in
//!    order), so group commit fills its batches. Progress goes to stderr.
//! 2. Measures, each in a fresh child process (this binary with `--child`),
//!    `--rounds` times (3 by default), the modes interleaved:
//!    - `open`: `RedbStore::open` of the closed store: every row is read,
//!      its index entry checked against the digest of its record bytes, and
//!      the index built in memory;
//!    - `rebuild`: `RedbStore::open` after the parent has damaged every
//!      row's index entry (one digest byte flipped, through redb), so every
//!      entry is rebuilt from its record (decoded) and rewritten;
//!    - `redb_records`: plain redb opens the file and iterates every row
//!      (key and value read), the least any open costs;
//!    - `idle`: nothing, for the binary's own memory.
//!
//!    Each child reports its time and `VmHWM`/`VmRSS` from
//!    `/proc/self/status` once the store is open.
//! 3. Prints markdown tables.
//!
//! The page cache is warm (the file was just written or read) unless
//! `--cold` is given, which asks the kernel to drop clean caches
//! (`/proc/sys/vm/drop_caches`, root only) before each measurement.
//!
//! Run with `cargo run --release -p trellis-benches --bin store_open`
//! (`-- --records 100000` for a quick run, `--rounds N`, `--cold`,
//! `--keep` to leave the data directory in place). To profile one
//! measurement on a kept directory, run the child by hand:
//! `store_open --child damage PATH N` then `store_open --child rebuild
//! PATH N` (N is the record count, checked).

#[path = "../../benches/store_common/mod.rs"]
mod store_common;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use store_common::{
    lead_bytes, lead_doc, memory_kib, temp_dir, COLLECTION, RECORDS_TABLE, REPLICA,
};
use trellis_store::index::KeyRange;
use trellis_store::{Mutation, Pending, RedbStore, Store, StoreConfig};

/// Writes kept outstanding while building.
const WINDOW: usize = 8192;

/// The modes measured, in the order they run in each round.
const MODES: [&str; 4] = ["open", "rebuild", "redb_records", "idle"];

type Bytes = TableDefinition<'static, &'static str, &'static [u8]>;

fn key(n: u64) -> String {
    format!("lead-{n:07}")
}

/// What one child measured.
#[derive(Clone, Copy, Debug)]
struct Measured {
    elapsed: Duration,
    peak_kib: u64,
    rss_kib: u64,
}

/// Options from the command line.
struct Options {
    records: u64,
    rounds: usize,
    cold: bool,
    keep: bool,
}

fn options(args: &[String]) -> Options {
    let mut options = Options {
        records: 1_000_000,
        rounds: 3,
        cold: false,
        keep: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> u64 {
            args.next()
                .and_then(|value| value.replace('_', "").parse().ok())
                .unwrap_or_else(|| panic!("{name} takes a number"))
        };
        match arg.as_str() {
            "--records" => options.records = number("--records"),
            "--rounds" => options.rounds = number("--rounds").max(1) as usize,
            "--cold" => options.cold = true,
            "--keep" => options.keep = true,
            other => panic!(
                "unknown argument {other:?}: expected --records N, --rounds N, --cold, --keep"
            ),
        }
    }
    options
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        let mode = args.get(1).expect("--child MODE PATH RECORDS");
        let path = PathBuf::from(args.get(2).expect("--child MODE PATH RECORDS"));
        let records: u64 = args
            .get(3)
            .and_then(|n| n.parse().ok())
            .expect("--child MODE PATH RECORDS");
        child(mode, &path, records);
        return;
    }
    let options = options(&args);
    let dir = temp_dir("open");
    let path = dir.join("data.redb");
    let build = build(&path, options.records);
    let file_bytes = std::fs::metadata(&path).map_or(0, |meta| meta.len());

    let mut results: BTreeMap<&str, Vec<Measured>> = BTreeMap::new();
    for round in 0..options.rounds {
        for mode in MODES {
            if mode == "rebuild" {
                damage_entries(&path);
            }
            if options.cold {
                drop_caches();
            }
            let measured = run_child(mode, &path, options.records);
            eprintln!(
                "round {}: {mode} {:.3} s, peak RSS {} MiB",
                round + 1,
                measured.elapsed.as_secs_f64(),
                measured.peak_kib / 1024
            );
            results.entry(mode).or_default().push(measured);
        }
    }
    report(&options, &build, file_bytes, &results);
    if options.keep {
        eprintln!("data kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// How the build went.
struct Build {
    elapsed: Duration,
    batches: u64,
    record_bytes: usize,
    peak_kib: u64,
}

/// Writes `records` records through a fresh store, `WINDOW` at a time.
fn build(path: &Path, records: u64) -> Build {
    let store =
        RedbStore::open(path, REPLICA, StoreConfig::default()).expect("the store opens for build");
    let started = Instant::now();
    let mut outstanding: VecDeque<Pending<trellis_store::Applied>> = VecDeque::new();
    let step = (records / 10).max(1);
    for n in 0..records {
        outstanding.push_back(store.apply(COLLECTION, &key(n), Mutation::Put(lead_doc(n))));
        if outstanding.len() >= WINDOW {
            wait(outstanding.pop_front());
        }
        if (n + 1) % step == 0 {
            let elapsed = started.elapsed().as_secs_f64();
            eprintln!(
                "built {} of {records} records in {elapsed:.1} s ({:.0} writes/s)",
                n + 1,
                (n + 1) as f64 / elapsed
            );
        }
    }
    while let Some(pending) = outstanding.pop_front() {
        wait(Some(pending));
    }
    let elapsed = started.elapsed();
    let stats = store.stats();
    assert_eq!(stats.writes, records, "every record was written");
    assert_eq!(
        store.fingerprint(COLLECTION, &KeyRange::all()).count,
        records
    );
    drop(store);
    Build {
        elapsed,
        batches: stats.batches,
        record_bytes: lead_bytes(records / 2).len(),
        peak_kib: memory_kib().0,
    }
}

fn wait(pending: Option<Pending<trellis_store::Applied>>) {
    if let Some(pending) = pending {
        pending.wait().expect("a build write succeeds");
    }
}

/// Flips the first digest byte of every row's index entry (the row
/// layout of `crates/trellis-store/src/row.rs`), as `tests/restart.rs`
/// does for two rows, so that the next open rebuilds every entry.
fn damage_entries(path: &Path) {
    let db = Database::create(path).expect("redb opens the store's file");
    let txn = db.begin_write().expect("redb begins a write");
    {
        let mut table = txn
            .open_table(Bytes::new(RECORDS_TABLE))
            .expect("the records table exists");
        let rows: Vec<(String, Vec<u8>)> = table
            .iter()
            .expect("redb iterates")
            .map(|row| {
                let (key, value) = row.expect("redb reads a row");
                (key.value().to_owned(), value.value().to_vec())
            })
            .collect();
        for (key, mut row) in rows {
            row[0] ^= 0xff;
            table
                .insert(key.as_str(), row.as_slice())
                .expect("redb inserts");
        }
    }
    txn.commit().expect("redb commits");
}

/// Flushes dirty pages and drops clean caches (root only).
fn drop_caches() {
    let _ = Command::new("sync").status();
    if let Err(err) = std::fs::write("/proc/sys/vm/drop_caches", "1") {
        panic!("--cold needs to write /proc/sys/vm/drop_caches: {err}");
    }
}

fn run_child(mode: &str, path: &Path, records: u64) -> Measured {
    let exe = std::env::current_exe().expect("this binary's path");
    let output = Command::new(exe)
        .arg("--child")
        .arg(mode)
        .arg(path)
        .arg(records.to_string())
        .output()
        .expect("the child runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child {mode} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("RESULT "))
        .expect("the child reports a RESULT line");
    let numbers: Vec<u64> = line
        .split_whitespace()
        .map(|n| n.parse().expect("RESULT holds numbers"))
        .collect();
    Measured {
        elapsed: Duration::from_nanos(numbers[0]),
        peak_kib: numbers[1],
        rss_kib: numbers[2],
    }
}

/// Runs one measurement in this (child) process and prints
/// `RESULT nanoseconds peak_kib rss_kib`.
fn child(mode: &str, path: &Path, records: u64) {
    let started = Instant::now();
    let keep: Option<RedbStore> = match mode {
        "open" | "rebuild" => {
            let store =
                RedbStore::open(path, REPLICA, StoreConfig::default()).expect("the store opens");
            let elapsed = started.elapsed();
            let rebuilds = store.stats().index_rebuilds;
            assert_eq!(rebuilds, u64::from(mode == "rebuild"), "index rebuilds");
            let count = store.fingerprint(COLLECTION, &KeyRange::all()).count;
            assert_eq!(count, records, "the index holds every record");
            finish(elapsed);
            Some(store)
        }
        "redb_records" => {
            let db = Database::open(path).expect("redb opens the file");
            let txn = db.begin_read().expect("redb begins a read");
            let table = txn
                .open_table(Bytes::new(RECORDS_TABLE))
                .expect("the table exists");
            let (mut rows, mut bytes) = (0u64, 0usize);
            for row in table.iter().expect("redb iterates") {
                let (key, value) = row.expect("redb reads a row");
                rows += 1;
                bytes += key.value().len() + value.value().len();
            }
            let elapsed = started.elapsed();
            assert_eq!(rows, records, "every row was read ({bytes} bytes)");
            finish(elapsed);
            None
        }
        "idle" => {
            finish(started.elapsed());
            None
        }
        // Not measured: for profiling a rebuild by hand (see the docs).
        "damage" => {
            damage_entries(path);
            finish(started.elapsed());
            None
        }
        other => panic!("unknown child mode {other:?}"),
    };
    drop(keep);
}

fn finish(elapsed: Duration) {
    let (peak, rss) = memory_kib();
    println!("RESULT {} {peak} {rss}", elapsed.as_nanos());
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn seconds(duration: Duration) -> String {
    format!("{:.3} s", duration.as_secs_f64())
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn report(
    options: &Options,
    build: &Build,
    file_bytes: u64,
    results: &BTreeMap<&str, Vec<Measured>>,
) {
    let records = options.records;
    let time = |mode: &str| median(results[mode].iter().map(|m| m.elapsed).collect());
    let fastest = |mode: &str| {
        results[mode]
            .iter()
            .map(|m| m.elapsed)
            .min()
            .unwrap_or_default()
    };
    let peak = |mode: &str| results[mode].iter().map(|m| m.peak_kib).max().unwrap_or(0);
    let rss = |mode: &str| results[mode].iter().map(|m| m.rss_kib).max().unwrap_or(0);

    println!(
        "Store: {records} records of {} bytes (encoded), one collection; data file {:.0} MiB.",
        build.record_bytes,
        file_bytes as f64 / (1024.0 * 1024.0)
    );
    println!(
        "Build: {} ({:.0} writes/s, {} commits, {:.0} writes per commit, {WINDOW} outstanding); \
         peak RSS of the building process {}.",
        seconds(build.elapsed),
        records as f64 / build.elapsed.as_secs_f64(),
        build.batches,
        records as f64 / build.batches.max(1) as f64,
        mib(build.peak_kib)
    );
    println!(
        "Page cache: {}. Each cell: median (fastest) of {} runs, each in a fresh process.",
        if options.cold {
            "dropped before each run (cold)"
        } else {
            "warm"
        },
        options.rounds
    );
    println!();
    println!("| measurement | time | / redb reading the same table | peak RSS (VmHWM) | RSS when open (VmRSS) |");
    println!("|---|---:|---:|---:|---:|");
    let rows = [
        (
            "`RedbStore::open`, clean (every entry checked against its record's digest)",
            "open",
            Some("redb_records"),
        ),
        (
            "`RedbStore::open`, every entry damaged (each rebuilt from its record)",
            "rebuild",
            Some("redb_records"),
        ),
        ("plain redb: open, iterate every row", "redb_records", None),
        ("the process doing nothing (baseline memory)", "idle", None),
    ];
    for (label, mode, against) in rows {
        let ratio = against.map_or("–".to_owned(), |base| {
            format!(
                "{:.2}× ({:.2}×)",
                time(mode).as_secs_f64() / time(base).as_secs_f64(),
                fastest(mode).as_secs_f64() / fastest(base).as_secs_f64()
            )
        });
        println!(
            "| {label} | {} ({}) | {ratio} | {} | {} |",
            seconds(time(mode)),
            seconds(fastest(mode)),
            mib(peak(mode)),
            mib(rss(mode)),
        );
    }
    println!();
    let per_record =
        |mode: &str| (rss(mode).saturating_sub(rss("idle")) * 1024) as f64 / records as f64;
    println!(
        "Memory held per record with the store open (VmRSS less the idle process): \
         clean open {:.0} bytes, after a rebuild {:.0} bytes.",
        per_record("open"),
        per_record("rebuild")
    );
}
