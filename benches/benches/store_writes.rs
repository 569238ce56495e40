//! Durable writes per second through `RedbStore` (default
//! `Durability::Fsync`) with 1, 64 and 1024 concurrent writers, against raw
//! redb doing the same commits.
//!
//! - `trellis`: `writers` OS threads (1024 real threads for the largest
//!   case, with 128 KiB stacks), each calling
//!   `store.apply("leads", key, Mutation::Put(doc)).wait()` in a loop, one
//!   write outstanding per thread. Every write creates a new record of 6
//!   fields (about 220 bytes encoded). The threads are long-lived: started
//!   once per store, as a program's writer threads would be, so that
//!   thread start-up and the allocator's first touch of each thread's
//!   memory are not timed. Each round's documents are made before the
//!   clock starts; then each thread is sent its own, and the clock stops
//!   when the last one has its answer.
//! - In the paired rounds (below) the same writes also run as `writers`
//!   tokio tasks on a runtime of 2 worker threads, each awaiting its
//!   `Pending`: the way the node's HTTP handlers and gossip write.
//!   `TRELLIS_BENCH_MODES=threads` or `=tasks` runs one of the two only.
//! - `redb`: one thread running the same number of write transactions as
//!   the store committed (`StoreStats::batches` over `StoreStats::writes`,
//!   measured in the `trellis` runs just before), each with
//!   `Durability::Immediate`, inserting as many (key, value) pairs as the
//!   store's batches held on average: the same keys, and as values the
//!   codec encoding of the record the store writes (the same bytes).
//!
//! Both use a fresh database in a fresh directory under the system
//! temporary directory. Each iteration writes new keys, so the tables grow
//! by a few hundred thousand records over a run. The raw baseline writes
//! only the records table; the store also writes an index entry and a
//! change-feed entry per write and its metadata per batch (see
//! `docs/storage.md`), and does the CRDT work (JSON to record, encode,
//! digest). That is the cost being compared.
//!
//! `store_write_cpu` then times one write on one thread without redb: the
//! store's whole write logic over in-memory tables (`MemStore`) and its
//! CRDT part alone (`Record::from_json`, encode, digest), to show how much
//! of the commit thread's time per write is spent before redb is reached.
//!
//! The process runs under mimalloc, the node binary's allocator, unless
//! built with `--features system-allocator`.
//!
//! Criterion measures wall-clock time here whatever `TRELLIS_BENCH_CLOCK`
//! says: waiting for fsync is the point. After criterion's output the
//! benchmark prints a markdown table of writes per second (median of the
//! iterations) and the ratio ours / raw.
//!
//! Criterion runs all `trellis` iterations, then all `redb` ones, a few
//! seconds apart; on a shared machine the disk's fsync latency changes
//! more than that in a few seconds. So the benchmark then also runs
//! **paired rounds**: one `trellis` iteration, at once followed by one raw
//! redb iteration with exactly as many commits as that `trellis` iteration
//! made (and the same keys and bytes), then one more raw iteration that
//! also writes, per commit, the change-feed row the store writes for that
//! batch (the same bytes, in a second table), on fresh files, `TRELLIS_BENCH_PAIRS`
//! times (default 15) per writer count (`TRELLIS_BENCH_WRITERS=1,64` for
//! some counts only). Each pair ends with a third baseline, **group**:
//! raw redb behind the same number of writers, run the same way (threads
//! or tasks), through the smallest group commit that answers a write only
//! once it is durable (`store_writes/raw_group_commit.rs`). The replays
//! give raw redb the store's commits without its writers; group gives it
//! the writers, and lets it batch as it finds. It prints the median,
//! lowest and highest of the per-pair ratios.
//!
//! Run with `cargo bench -p trellis-benches --bench store_writes`.

mod store_common;

#[path = "store_writes/raw_group_commit.rs"]
mod raw_group_commit;

/// The node binary's allocator (`crates/trellis-node/src/bin/trellis`), so
/// that the store is measured as the node runs it. The raw baselines run in
/// the same process, under the same allocator. `--features
/// system-allocator` measures with the system's malloc instead.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput};
use raw_group_commit::RawGroupCommit;
use redb::{Database, TableDefinition};
use store_common::{
    lead_bytes, lead_doc, temp_dir, writer_key, COLLECTION, RECORDS_TABLE, REPLICA,
};
use trellis_crdt::{codec, Digest, Record, Timestamp};
use trellis_store::{Change, MemStore, Mutation, RedbStore, Store, StoreConfig};

/// The concurrent writer counts measured.
const WRITERS: [usize; 3] = [1, 64, 1024];

/// Writes per writer in one iteration: enough that an iteration takes a
/// few hundred milliseconds.
fn writes_per_writer(writers: usize) -> u64 {
    match writers {
        1 => 100,
        2..=64 => 16,
        _ => 4,
    }
}

/// One measured iteration.
#[derive(Clone, Copy, Debug)]
struct Run {
    writes: u64,
    batches: u64,
    elapsed: Duration,
}

/// Every iteration of each (implementation, writers), for the summary and
/// for the raw baseline's commit pattern.
static RUNS: Mutex<BTreeMap<(&'static str, usize), Vec<Run>>> = Mutex::new(BTreeMap::new());

fn record(name: &'static str, writers: usize, run: Run) {
    RUNS.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .entry((name, writers))
        .or_default()
        .push(run);
}

fn runs(name: &'static str, writers: usize) -> Vec<Run> {
    RUNS.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(&(name, writers))
        .cloned()
        .unwrap_or_default()
}

/// Where a round's writes go: the store, or raw redb behind the smallest
/// group commit ([`RawGroupCommit`]). Each write is answered once its
/// commit is durable.
trait Target: Send + Sync + 'static {
    /// One write, made before the clock starts.
    type Write: Send + 'static;

    /// Writer `writer`'s write of record `n`.
    fn make(writer: usize, n: u64) -> Self::Write;

    /// Writes and blocks until the write is durable.
    fn write_blocking(&self, write: Self::Write);

    /// Writes; resolves once the write is durable.
    fn write(&self, write: Self::Write) -> impl std::future::Future<Output = ()> + Send;

    /// Writes and commits (transactions) so far.
    fn counts(&self) -> (u64, u64);
}

impl Target for RedbStore {
    type Write = (String, Mutation);

    fn make(writer: usize, n: u64) -> Self::Write {
        (writer_key(writer, n), Mutation::Put(lead_doc(n)))
    }

    fn write_blocking(&self, (key, mutation): Self::Write) {
        self.apply(COLLECTION, &key, mutation)
            .wait()
            .expect("a benchmark write succeeds");
    }

    async fn write(&self, (key, mutation): Self::Write) {
        self.apply(COLLECTION, &key, mutation)
            .await
            .expect("a benchmark write succeeds");
    }

    fn counts(&self) -> (u64, u64) {
        let stats = self.stats();
        (stats.writes, stats.batches)
    }
}

impl Target for RawGroupCommit {
    type Write = (String, Vec<u8>);

    fn make(writer: usize, n: u64) -> Self::Write {
        (writer_key(writer, n), lead_bytes(n))
    }

    fn write_blocking(&self, (key, value): Self::Write) {
        self.write(key, value)
            .blocking_recv()
            .expect("the raw commit thread answers");
    }

    async fn write(&self, (key, value): Self::Write) {
        RawGroupCommit::write(self, key, value)
            .await
            .expect("the raw commit thread answers");
    }

    fn counts(&self) -> (u64, u64) {
        RawGroupCommit::counts(self)
    }
}

/// Each writer's writes for round `round`, `per_writer` new records each.
fn round_work<T: Target>(writers: usize, per_writer: u64, round: u64) -> Vec<Vec<T::Write>> {
    let first = round * per_writer;
    (0..writers)
        .map(|writer| {
            (first..first + per_writer)
                .map(|n| T::make(writer, n))
                .collect()
        })
        .collect()
}

/// A round's outcome from the target's counters before and after it.
fn run_between(before: (u64, u64), after: (u64, u64), elapsed: Duration) -> Run {
    Run {
        writes: after.0 - before.0,
        batches: after.1 - before.1,
        elapsed,
    }
}

/// `writers` long-lived OS threads writing through one target, as a
/// program with that many blocking writers would: started once per target
/// (so that thread start-up, and the allocator's first touch of each
/// thread's memory, are not timed) and given new writes every round.
struct WriterThreads<T: Target> {
    target: Arc<T>,
    /// Each thread's inbox: the writes of its next round. A thread starts
    /// writing as soon as they arrive.
    inboxes: Vec<std::sync::mpsc::Sender<Vec<T::Write>>>,
    /// When each thread had the answer to its last write of a round.
    finished: std::sync::mpsc::Receiver<Instant>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl<T: Target> WriterThreads<T> {
    fn start(target: &Arc<T>, writers: usize) -> Self {
        let (done, finished) = std::sync::mpsc::channel();
        let mut inboxes = Vec::with_capacity(writers);
        let threads = (0..writers)
            .map(|_| {
                let (inbox, work) = std::sync::mpsc::channel::<Vec<T::Write>>();
                inboxes.push(inbox);
                let (target, done) = (Arc::clone(target), done.clone());
                std::thread::Builder::new()
                    .stack_size(128 * 1024)
                    .spawn(move || {
                        for writes in work {
                            for write in writes {
                                target.write_blocking(write);
                            }
                            let _ = done.send(Instant::now());
                        }
                    })
                    .expect("a writer thread starts")
            })
            .collect();
        WriterThreads {
            target: Arc::clone(target),
            inboxes,
            finished,
            threads,
        }
    }

    /// One iteration: each thread writes `per_writer` new records, one at
    /// a time. The writes are made before the clock starts; then each
    /// thread is sent its own (a channel per thread rather than a barrier,
    /// whose release would have a thousand threads queue on one mutex);
    /// the clock stops when the last thread has its last answer. `round`
    /// makes the keys new.
    fn round(&self, per_writer: u64, round: u64) -> Run {
        let before = self.target.counts();
        let work = round_work::<T>(self.inboxes.len(), per_writer, round);
        let started = Instant::now();
        for (inbox, writes) in self.inboxes.iter().zip(work) {
            inbox.send(writes).expect("a writer thread is running");
        }
        let finished = (0..self.inboxes.len())
            .map(|_| {
                self.finished
                    .recv()
                    .expect("a writer thread finishes its round")
            })
            .max()
            .unwrap_or(started);
        run_between(
            before,
            self.target.counts(),
            finished.saturating_duration_since(started),
        )
    }
}

impl<T: Target> Drop for WriterThreads<T> {
    fn drop(&mut self) {
        self.inboxes.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// How the concurrent writers run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// One OS thread per writer, blocking on `Pending::wait`.
    Threads,
    /// One tokio task per writer on a runtime of 2 worker threads,
    /// awaiting the `Pending`: how the node's HTTP handlers and gossip
    /// write.
    Tasks,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Threads => "threads",
            Mode::Tasks => "tasks",
        }
    }
}

/// One iteration through `target` with `writers` tokio tasks on
/// `runtime`, each writing `per_writer` new records, one at a time. The
/// writes are made before the clock starts; the clock stops when the last
/// task has its last answer.
fn round_tasks<T: Target>(
    runtime: &tokio::runtime::Runtime,
    target: &Arc<T>,
    writers: usize,
    per_writer: u64,
    round: u64,
) -> Run {
    let before = target.counts();
    let work = round_work::<T>(writers, per_writer, round);
    let (started, finished) = runtime.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = work
            .into_iter()
            .map(|writes| {
                let target = Arc::clone(target);
                tokio::spawn(async move {
                    for write in writes {
                        target.write(write).await;
                    }
                    Instant::now()
                })
            })
            .collect();
        let mut finished = started;
        for task in tasks {
            finished = finished.max(task.await.expect("a writer task finishes"));
        }
        (started, finished)
    });
    run_between(
        before,
        target.counts(),
        finished.saturating_duration_since(started),
    )
}

/// The sizes of `batches` transactions holding `writes` pairs between
/// them, as even as possible.
fn batch_sizes(writes: u64, batches: u64) -> Vec<u64> {
    let batches = batches.clamp(1, writes.max(1));
    (0..batches)
        .map(|i| writes / batches + u64::from(i < writes % batches))
        .collect()
}

/// The number of transactions the raw baseline commits for `writes`
/// writes, from the store's average batch size in the `trellis` runs.
fn raw_batches(writers: usize, writes: u64) -> u64 {
    let ours = runs("trellis", writers);
    let (total_writes, total_batches) = ours
        .iter()
        .fold((0, 0), |(w, b), run| (w + run.writes, b + run.batches));
    if total_writes == 0 {
        return writes;
    }
    let per_batch = total_writes as f64 / total_batches as f64;
    ((writes as f64 / per_batch).round() as u64).max(1)
}

const RECORDS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new(RECORDS_TABLE);

/// What a raw-redb iteration writes besides the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Feed {
    /// Only the records table.
    Without,
    /// Also one change-feed row per transaction, with the bytes the store
    /// writes for that batch (`crates/trellis-store/src/feed.rs`: clock,
    /// count, then each change's length and codec encoding) in a second
    /// table keyed by the batch's last sequence number.
    With,
}

const CHANGES: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("changes");

/// The change-feed row the store writes for a batch of `pairs`, the last
/// of which has sequence number `last_seq`.
fn feed_row(pairs: &[(String, Vec<u8>)], last_seq: u64) -> Vec<u8> {
    let time = Timestamp(1_750_000_000_000 << 16);
    let first = last_seq + 1 - pairs.len() as u64;
    let mut row = time.0.to_le_bytes().to_vec();
    row.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (seq, (key, value)) in (first..).zip(pairs) {
        let digest: [u8; 32] = value[..32]
            .try_into()
            .expect("a row starts with its digest");
        let change = Change {
            seq,
            collection: COLLECTION.to_owned(),
            key: key.clone(),
            digest: Digest(digest),
            origin: REPLICA,
            origin_time: time,
        };
        let bytes = codec::encode(&change);
        row.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        row.extend_from_slice(&bytes);
    }
    row
}

/// One iteration of raw redb: the same keys and record bytes in
/// `batches` durable write transactions, from one thread; with
/// [`Feed::With`], each transaction also writes the batch's change-feed
/// row (sequence numbers continue from `seq`).
fn raw_round(
    db: &Database,
    writers: usize,
    per_writer: u64,
    round: u64,
    batches: u64,
    feed: Feed,
    seq: &mut u64,
) -> Run {
    // In the order the committer roughly sees them: one write of each
    // writer, then the next.
    let first = round * per_writer;
    let pairs: Vec<(String, Vec<u8>)> = (first..first + per_writer)
        .flat_map(|n| (0..writers).map(move |writer| (writer_key(writer, n), lead_bytes(n))))
        .collect();
    let sizes = batch_sizes(pairs.len() as u64, batches);
    // Each transaction's writes and, with the feed, its row; made before
    // the clock starts.
    let mut transactions = Vec::with_capacity(sizes.len());
    let mut rest = pairs.as_slice();
    for &size in &sizes {
        let (batch, after) = rest.split_at(size as usize);
        rest = after;
        *seq += size;
        let row = (feed == Feed::With).then(|| (*seq, feed_row(batch, *seq)));
        transactions.push((batch, row));
    }
    let started = Instant::now();
    for (batch, row) in &transactions {
        let mut txn = db.begin_write().expect("redb begins a write");
        txn.set_durability(redb::Durability::Immediate)
            .expect("redb takes the durability");
        {
            let mut table = txn.open_table(RECORDS).expect("redb opens the table");
            for (key, value) in *batch {
                table
                    .insert(key.as_str(), value.as_slice())
                    .expect("redb inserts");
            }
            if let Some((last_seq, row)) = row {
                let mut changes = txn.open_table(CHANGES).expect("redb opens the table");
                changes
                    .insert(*last_seq, row.as_slice())
                    .expect("redb inserts");
            }
        }
        txn.commit().expect("redb commits");
    }
    Run {
        writes: pairs.len() as u64,
        batches: sizes.len() as u64,
        elapsed: started.elapsed(),
    }
}

fn store_writes(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_writes");
    group.sampling_mode(SamplingMode::Flat);
    for writers in WRITERS {
        let per_writer = writes_per_writer(writers);
        let writes = per_writer * writers as u64;
        group.throughput(Throughput::Elements(writes));
        let parameter = format!("{writers}_writers");
        let dir = temp_dir(&format!("writes-{writers}"));

        let store = Arc::new(
            RedbStore::open(dir.join("trellis.redb"), REPLICA, StoreConfig::default())
                .expect("the store opens"),
        );
        let threads = WriterThreads::start(&store, writers);
        let mut round = 0;
        group.bench_function(BenchmarkId::new("trellis", &parameter), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let run = threads.round(per_writer, round);
                    round += 1;
                    assert_eq!(run.writes, writes, "every write was committed");
                    record("trellis", writers, run);
                    total += run.elapsed;
                }
                total
            });
        });
        drop(threads);
        drop(store);

        let db = Database::create(dir.join("raw.redb")).expect("redb creates the file");
        let mut round = 0;
        group.bench_function(BenchmarkId::new("redb", &parameter), |b| {
            b.iter_custom(|iters| {
                let batches = raw_batches(writers, writes);
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let run = raw_round(
                        &db,
                        writers,
                        per_writer,
                        round,
                        batches,
                        Feed::Without,
                        &mut 0,
                    );
                    round += 1;
                    record("redb", writers, run);
                    total += run.elapsed;
                }
                total
            });
        });
        drop(db);
        let _ = std::fs::remove_dir_all(&dir);
    }
    group.finish();
}

/// Where a write's CPU goes, on one thread and without redb: the whole
/// write logic over in-memory tables (`MemStore`, the same `writer.rs` as
/// `RedbStore`'s committer runs), and its CRDT part alone (JSON to record,
/// encode, digest).
fn write_cpu(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_write_cpu");
    group.throughput(Throughput::Elements(1));
    let store = MemStore::new(REPLICA, StoreConfig::default());
    let mut n = 0;
    group.bench_function("memstore_apply", |b| {
        b.iter_batched(
            || {
                n += 1;
                (writer_key(0, n), Mutation::Put(lead_doc(n)))
            },
            |(key, mutation)| {
                store
                    .apply(COLLECTION, &key, mutation)
                    .wait()
                    .expect("a benchmark write succeeds")
            },
            BatchSize::SmallInput,
        );
    });
    let time = Timestamp(1_750_000_000_000 << 16);
    group.bench_function("record_from_json_encode_digest", |b| {
        b.iter_batched(
            || {
                n += 1;
                lead_doc(n)
            },
            |doc| {
                let record = Record::from_json(&doc, REPLICA, time).expect("a lead is an object");
                Digest::of_encoding(&codec::encode(&record))
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn writes_per_second(runs: &[Run]) -> f64 {
    median(runs.iter().map(rate).collect())
}

/// The summary table: median writes per second of the iterations, the
/// commit pattern, and ours / raw.
fn summary() {
    println!();
    println!("| writers | writes per iteration | writes per commit | trellis writes/s | raw redb writes/s | trellis / raw |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for writers in WRITERS {
        let (ours, raw) = (runs("trellis", writers), runs("redb", writers));
        if ours.is_empty() || raw.is_empty() {
            continue;
        }
        let (ours_rate, raw_rate) = (writes_per_second(&ours), writes_per_second(&raw));
        println!(
            "| {writers} | {} | {:.1} | {ours_rate:.0} | {raw_rate:.0} | {:.2} |",
            ours[0].writes,
            writes_per_commit(&ours),
            ours_rate / raw_rate
        );
    }
    println!();
    println!(
        "(medians over {} iterations per cell, warm-up included; temporary files under {})",
        WRITERS
            .iter()
            .map(|writers| runs("trellis", *writers).len().to_string())
            .collect::<Vec<_>>()
            .join("/"),
        Path::new(&std::env::temp_dir()).display()
    );
}

/// The writer counts of the paired rounds: `TRELLIS_BENCH_WRITERS` (a
/// comma-separated list) or all of [`WRITERS`].
fn paired_writers() -> Vec<usize> {
    match std::env::var("TRELLIS_BENCH_WRITERS") {
        Ok(list) => list
            .split(',')
            .map(|count| {
                count
                    .trim()
                    .parse()
                    .expect("TRELLIS_BENCH_WRITERS is a comma-separated list of writer counts")
            })
            .collect(),
        Err(_) => WRITERS.to_vec(),
    }
}

/// Paired rounds per writer count (`TRELLIS_BENCH_PAIRS`, default 15).
fn pairs() -> usize {
    std::env::var("TRELLIS_BENCH_PAIRS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(15)
}

/// A target's concurrent writers, run as `mode` says.
enum Writers<T: Target> {
    Threads(WriterThreads<T>),
    Tasks { target: Arc<T>, writers: usize },
}

impl<T: Target> Writers<T> {
    fn start(mode: Mode, target: &Arc<T>, writers: usize) -> Self {
        match mode {
            Mode::Threads => Writers::Threads(WriterThreads::start(target, writers)),
            Mode::Tasks => Writers::Tasks {
                target: Arc::clone(target),
                writers,
            },
        }
    }

    fn round(&self, runtime: &tokio::runtime::Runtime, per_writer: u64, round: u64) -> Run {
        match self {
            Writers::Threads(threads) => threads.round(per_writer, round),
            Writers::Tasks { target, writers } => {
                round_tasks(runtime, target, *writers, per_writer, round)
            }
        }
    }
}

/// Paired rounds: each `trellis` iteration is followed at once by raw
/// iterations: two replaying its commits from one thread (without and
/// with the change-feed row), and one behind the same number of
/// concurrent writers, run the same way, through [`RawGroupCommit`].
/// Prints the per-pair ratios.
fn paired() {
    let pairs = pairs();
    if pairs == 0 {
        return;
    }
    println!();
    println!("Paired rounds ({pairs} per row; each ratio is trellis / raw redb of one round and the raw rounds right after it. \"raw\" replays the round's commits from one thread, as many and as large; \"+ feed\" also writes the store's change-feed row per commit, in a second table; \"group\" is raw redb behind the same writers, run the same way, through the smallest group commit, which batches as it finds):");
    println!();
    println!("| writers | as | writes per commit: trellis / group | trellis writes/s | raw writes/s | raw + feed writes/s | group writes/s | trellis / raw: median (lowest–highest) | trellis / (raw + feed) | trellis / group |");
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("the tokio runtime starts");
    let modes: Vec<Mode> = [Mode::Threads, Mode::Tasks]
        .into_iter()
        .filter(|mode| {
            std::env::var("TRELLIS_BENCH_MODES").map_or(true, |modes| {
                modes.split(',').any(|name| name.trim() == mode.name())
            })
        })
        .collect();
    for (writers, mode) in paired_writers()
        .into_iter()
        .flat_map(|writers| modes.iter().map(move |mode| (writers, *mode)))
    {
        let per_writer = writes_per_writer(writers);
        let dir = temp_dir(&format!("paired-{writers}-{}", mode.name()));
        let store = Arc::new(
            RedbStore::open(dir.join("trellis.redb"), REPLICA, StoreConfig::default())
                .expect("the store opens"),
        );
        let ours_writers = Writers::start(mode, &store, writers);
        let group = Arc::new(RawGroupCommit::start(
            Database::create(dir.join("raw-group.redb")).expect("redb creates the file"),
        ));
        let group_writers = Writers::start(mode, &group, writers);
        let db = Database::create(dir.join("raw.redb")).expect("redb creates the file");
        let fed = Database::create(dir.join("raw-feed.redb")).expect("redb creates the file");
        let (mut ours, mut raw, mut raw_fed, mut grouped) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut ratios, mut fed_ratios, mut group_ratios, mut seq) =
            (Vec::new(), Vec::new(), Vec::new(), 0);
        for round in 0..pairs as u64 {
            let run = ours_writers.round(&runtime, per_writer, round);
            let batches = run.batches;
            let baseline = raw_round(
                &db,
                writers,
                per_writer,
                round,
                batches,
                Feed::Without,
                &mut 0,
            );
            let with_feed = raw_round(
                &fed,
                writers,
                per_writer,
                round,
                batches,
                Feed::With,
                &mut seq,
            );
            let behind_writers = group_writers.round(&runtime, per_writer, round);
            ratios.push(rate(&run) / rate(&baseline));
            fed_ratios.push(rate(&run) / rate(&with_feed));
            group_ratios.push(rate(&run) / rate(&behind_writers));
            ours.push(run);
            raw.push(baseline);
            raw_fed.push(with_feed);
            grouped.push(behind_writers);
        }
        drop(ours_writers);
        drop(store);
        drop(group_writers);
        drop(group);
        drop(db);
        drop(fed);
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "| {writers} | {} | {:.1} / {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} |",
            mode.name(),
            writes_per_commit(&ours),
            writes_per_commit(&grouped),
            writes_per_second(&ours),
            writes_per_second(&raw),
            writes_per_second(&raw_fed),
            writes_per_second(&grouped),
            spread(ratios),
            spread(fed_ratios),
            spread(group_ratios),
        );
    }
}

fn writes_per_commit(runs: &[Run]) -> f64 {
    let writes: u64 = runs.iter().map(|run| run.writes).sum();
    let batches: u64 = runs.iter().map(|run| run.batches).sum();
    writes as f64 / batches as f64
}

/// "**median** (lowest–highest)" of per-pair ratios.
fn spread(ratios: Vec<f64>) -> String {
    let lowest = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let highest = ratios.iter().copied().fold(0.0, f64::max);
    format!("**{:.2}** ({lowest:.2}–{highest:.2})", median(ratios))
}

fn rate(run: &Run) -> f64 {
    run.writes as f64 / run.elapsed.as_secs_f64()
}

fn main() {
    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    store_writes(&mut criterion);
    write_cpu(&mut criterion);
    criterion.final_summary();
    summary();
    paired();
}
