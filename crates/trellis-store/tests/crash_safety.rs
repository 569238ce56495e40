//! Crash safety of [`RedbStore`] with a real process killed by `SIGKILL`.
//!
//! The test [`acknowledged_writes_survive_sigkill`] runs many cycles over one
//! store file (in a fresh temporary directory per run, removed at the end
//! unless the test fails). Each cycle:
//!
//! 1. starts a child process — this same test executable, re-run with
//!    `TRELLIS_CRASH_CHILD=<store path>` and the arguments
//!    `--exact child_writer --nocapture --test-threads=1`, so that only the
//!    [`child_writer`] entry runs (without that variable it returns at once);
//! 2. the child opens the store with the default (fsync) durability and
//!    runs [`WRITER_THREADS`] threads, each calling `apply(..).wait()` in a
//!    loop: puts of new keys, puts over and patches of its own keys, deletes
//!    of its own keys, and increments of one counter shared by all threads
//!    (so batches hold several writes and writes to one key). Before each
//!    write it prints a `sub` line with the content the key must have after
//!    it; after `wait()` returned `Ok` (and only then) an `ack` line with the
//!    change's sequence number and digest; each line is flushed at once;
//! 3. the parent reads those lines in a thread, waits for the first `ack`
//!    (so that the kill lands while writing), sleeps a random 5–150 ms,
//!    kills the child (`SIGKILL` on Unix), reaps it and drains every line
//!    written before the kill;
//! 4. the parent reopens the store (same file, same replica id) and checks:
//!    - every acknowledged write is there: each key holds the state after
//!      some prefix of its writes no shorter than the acknowledged ones and
//!      no longer than the submitted ones (per key the writes are
//!      sequential, and every state is distinct, so this is exact); the
//!      shared counter is at least the acknowledged increments and at most
//!      the submitted ones;
//!    - the change feed is gap-free from 1 to `last_seq`, keeps what earlier
//!      cycles saw, holds each acknowledged write at its acknowledged
//!      sequence number with its digest, and holds exactly one change per
//!      write that survived (so `last_seq` grew by at least the
//!      acknowledged writes);
//!    - the reconciliation index agrees with a rebuild from the records:
//!      the same key set as the records (deleted ones included), each
//!      entry's digest equal to `Lattice::digest` of the stored record, the
//!      range fingerprint equal to the sum over the records, its count equal
//!      to the number of keys; `scan` returns exactly the live records and
//!      `collections()` counts agree;
//!    - every key of an earlier cycle still holds the state found then, and
//!      nothing was found corrupt or quarantined.
//!
//! Environment variables:
//!
//! - `TRELLIS_CRASH_KILLS`: the number of kill cycles (default 50).
//! - `TRELLIS_CRASH_SEED`: the seed (decimal or `0x` hex) of the random kill
//!   delays and write choices; by default taken from the time. It is printed
//!   at the start and in every failure message, so a run can be replayed
//!   (thread scheduling still varies between runs).
//! - `TRELLIS_CRASH_VERBOSE`: if set, print one line per cycle (kill delay,
//!   writes submitted and acknowledged); use with `-- --nocapture`.
//! - `TRELLIS_CRASH_CHILD`, `TRELLIS_CRASH_CYCLE`, `TRELLIS_CRASH_CHILD_SEED`:
//!   set by the parent for the child process; not for manual use.
//!
//! Run it alone with `cargo test -p trellis-store --test crash_safety`, or
//! with `-- --nocapture` to see the seed and a per-run summary.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use trellis_crdt::{FieldPath, Lattice, Op, ReplicaId};
use trellis_store::index::{Fingerprint, KeyRange};
use trellis_store::{Change, Mutation, RedbStore, Scan, Store, StoreConfig};

/// Path of the store file; its presence makes [`child_writer`] the child.
const CHILD_ENV: &str = "TRELLIS_CRASH_CHILD";
/// The cycle number, which keeps the child's keys unique across cycles.
const CYCLE_ENV: &str = "TRELLIS_CRASH_CYCLE";
/// The seed of the child's write choices.
const CHILD_SEED_ENV: &str = "TRELLIS_CRASH_CHILD_SEED";
/// Number of kill cycles.
const KILLS_ENV: &str = "TRELLIS_CRASH_KILLS";
/// Seed of the whole run.
const SEED_ENV: &str = "TRELLIS_CRASH_SEED";
/// Print a line per cycle.
const VERBOSE_ENV: &str = "TRELLIS_CRASH_VERBOSE";

/// Marks protocol lines on the child's stdout (which also carries the test
/// harness's own output).
const MARK: &str = "@trellis-crash@";
/// The replica id of the store, the same in every process.
const REPLICA: ReplicaId = ReplicaId(0x00C0_FFEE);
/// Collection of the per-thread keys.
const ITEMS: &str = "items";
/// Collection of the shared counter.
const TALLY: &str = "tally";
/// Key of the shared counter.
const COUNTER: &str = "shared";
/// Field of the shared counter.
const COUNTER_FIELD: &str = "n";
/// Concurrent writer threads in the child.
const WRITER_THREADS: u64 = 6;
/// The child stops writing on its own after this long (it is normally
/// killed long before); a guard against orphans.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);
/// How long the parent waits for the child's first acknowledged write.
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(60);

/// splitmix64: a small, seedable generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` for a test.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---------------------------------------------------------------------------
// The child
// ---------------------------------------------------------------------------

/// Writes one protocol line to stdout in one `write` and flushes it. If the
/// parent is gone, the child has no one to report to and exits.
fn emit(line: &str) {
    let text = format!("{MARK} {line}\n");
    let mut out = std::io::stdout().lock();
    if out
        .write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

/// Reports a failure the child found itself, then exits.
fn child_fatal(message: &str) -> ! {
    emit(&format!("fatal {}", message.replace('\n', " ")));
    std::process::exit(3);
}

/// The child process's entry point; does nothing unless the parent set
/// [`CHILD_ENV`].
#[test]
fn child_writer() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let cycle: u64 = env_u64(CYCLE_ENV).unwrap_or(0);
    let seed = env_u64(CHILD_SEED_ENV).unwrap_or(0);
    let store = match RedbStore::open(&path, REPLICA, StoreConfig::default()) {
        Ok(store) => Arc::new(store),
        Err(err) => child_fatal(&format!("cannot open the store: {err}")),
    };
    emit("ready");
    let started = Instant::now();
    let threads: Vec<_> = (0..WRITER_THREADS)
        .map(|thread| {
            let store = Arc::clone(&store);
            let seed = seed ^ (thread + 1).wrapping_mul(0xA24B_AED4_963E_E407);
            std::thread::spawn(move || write_loop(&*store, cycle, thread, seed, started))
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    emit("done");
}

/// One writer thread: writes until killed (or [`CHILD_LIFETIME`] passes).
fn write_loop(store: &dyn Store, cycle: u64, thread: u64, seed: u64, started: Instant) {
    let mut rng = Rng(seed);
    // This thread's live keys and their content.
    let mut live: Vec<(String, Value)> = Vec::new();
    let mut i: u64 = 0;
    while started.elapsed() < CHILD_LIFETIME {
        i += 1;
        let op = format!("{thread}.{i}");
        let roll = if live.is_empty() { 0 } else { rng.below(10) };
        // (kind, collection, key, mutation, content afterwards)
        let (kind, collection, key, mutation, expected) = match roll {
            0..=3 => {
                let key = format!("w-{cycle}-{thread}-{i}");
                let doc =
                    json!({"c": cycle, "t": thread, "i": i, "pad": "x".repeat((i % 64) as usize)});
                live.push((key.clone(), doc.clone()));
                ("put", ITEMS, key, Mutation::Put(doc.clone()), Some(doc))
            }
            4 => {
                let slot = rng.below(live.len() as u64) as usize;
                let doc = json!({"c": cycle, "t": thread, "i": i, "over": true});
                let key = live[slot].0.clone();
                live[slot].1 = doc.clone();
                ("put", ITEMS, key, Mutation::Put(doc.clone()), Some(doc))
            }
            5 | 6 => {
                let slot = rng.below(live.len() as u64) as usize;
                let key = live[slot].0.clone();
                let mut doc = live[slot].1.clone();
                doc["p"] = json!(i);
                live[slot].1 = doc.clone();
                let set = Op::Set {
                    path: field("p"),
                    value: i64::try_from(i).unwrap_or(i64::MAX).into(),
                };
                ("patch", ITEMS, key, Mutation::Patch(vec![set]), Some(doc))
            }
            7 => {
                let slot = rng.below(live.len() as u64) as usize;
                let (key, _) = live.swap_remove(slot);
                ("del", ITEMS, key, Mutation::Delete, None)
            }
            _ => {
                let inc = Op::Increment {
                    path: field(COUNTER_FIELD),
                    by: 1,
                };
                (
                    "inc",
                    TALLY,
                    COUNTER.to_owned(),
                    Mutation::Patch(vec![inc]),
                    None,
                )
            }
        };
        let shown = match (&expected, kind) {
            (Some(doc), _) => doc.to_string(),
            (None, "del") => "deleted".to_owned(),
            (None, _) => "-".to_owned(),
        };
        emit(&format!("sub {op} {kind} {collection} {key} {shown}"));
        let applied = match store.apply(collection, &key, mutation).wait() {
            Ok(applied) => applied,
            Err(err) => child_fatal(&format!(
                "write {op} ({kind} {collection}/{key}) failed: {err}"
            )),
        };
        // The store's own answer must match what this thread expects.
        let consistent = match (&expected, kind) {
            (Some(doc), _) => applied.record.exists() && applied.record.to_json() == *doc,
            (None, "del") => !applied.record.exists(),
            (None, _) => applied.record.to_json()[COUNTER_FIELD].is_i64(),
        };
        if !consistent || applied.digest != applied.record.digest() {
            child_fatal(&format!(
                "write {op} ({kind} {collection}/{key}) returned {} (digest {}), expected {shown}",
                applied.record.to_json(),
                applied.digest.to_hex()
            ));
        }
        emit(&format!(
            "ack {op} {} {}",
            applied.seq,
            applied.digest.to_hex()
        ));
    }
}

/// A top-level field path.
fn field(name: &str) -> FieldPath {
    FieldPath::top(name).unwrap_or_else(|err| child_fatal(&format!("bad field name {name}: {err}")))
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

// ---------------------------------------------------------------------------
// The parent
// ---------------------------------------------------------------------------

/// What a key holds.
#[derive(Clone, Debug, PartialEq)]
enum State {
    /// Never written.
    Absent,
    /// A live record with this content.
    Live(Value),
    /// A deleted record (its history kept).
    Deleted,
}

/// A write as the child reported it.
#[derive(Debug)]
struct WriteOp {
    kind: String,
    collection: String,
    key: String,
    /// The key's state after the write (`None` for counter increments).
    after: Option<State>,
    /// `(seq, digest hex)` once acknowledged.
    ack: Option<(u64, String)>,
}

/// A parsed protocol line.
enum Line {
    Ready,
    Submitted {
        op: String,
        write: WriteOp,
    },
    Acked {
        op: String,
        seq: u64,
        digest: String,
    },
    Fatal(String),
    Done,
}

fn parse(text: &str) -> Result<Line, String> {
    let mut parts = text.splitn(6, ' ');
    let word = parts.next().unwrap_or_default();
    let bad = || format!("unparsable line from the child: {text:?}");
    match word {
        "ready" => Ok(Line::Ready),
        "done" => Ok(Line::Done),
        "fatal" => Ok(Line::Fatal(text.to_owned())),
        "sub" => {
            let mut field = || parts.next().ok_or_else(bad);
            let op = field()?.to_owned();
            let kind = field()?.to_owned();
            let collection = field()?.to_owned();
            let key = field()?.to_owned();
            let shown = field()?;
            let after = match (kind.as_str(), shown) {
                ("inc", _) => None,
                ("del", _) => Some(State::Deleted),
                (_, doc) => Some(State::Live(serde_json::from_str(doc).map_err(|_| bad())?)),
            };
            Ok(Line::Submitted {
                op,
                write: WriteOp {
                    kind,
                    collection,
                    key,
                    after,
                    ack: None,
                },
            })
        }
        "ack" => {
            let mut field = || parts.next().ok_or_else(bad);
            let op = field()?.to_owned();
            let seq = field()?.parse().map_err(|_| bad())?;
            let digest = field()?.to_owned();
            Ok(Line::Acked { op, seq, digest })
        }
        _ => Err(bad()),
    }
}

/// Kills the child if the parent unwinds before reaping it.
struct Reaper(Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What one cycle's child reported.
#[derive(Default)]
struct Report {
    writes: HashMap<String, WriteOp>,
    /// Op ids in the order they were submitted.
    order: Vec<String>,
    fatal: Option<String>,
    /// Acknowledged before the parent started its random sleep.
    early_acks: usize,
}

impl Report {
    fn take(&mut self, line: Line) -> Result<(), String> {
        match line {
            Line::Ready | Line::Done => {}
            Line::Fatal(text) => self.fatal = Some(text),
            Line::Submitted { op, write } => {
                if self.writes.insert(op.clone(), write).is_some() {
                    return Err(format!("op {op} submitted twice"));
                }
                self.order.push(op);
            }
            Line::Acked { op, seq, digest } => {
                let write = self
                    .writes
                    .get_mut(&op)
                    .ok_or_else(|| format!("op {op} acknowledged but never submitted"))?;
                write.ack = Some((seq, digest));
            }
        }
        Ok(())
    }

    fn acked(&self) -> usize {
        self.writes.values().filter(|w| w.ack.is_some()).count()
    }
}

/// Runs one child, kills it after `delay` past its first acknowledged
/// write, and returns everything it reported before dying.
fn run_child(store: &Path, cycle: u64, child_seed: u64, delay: Duration) -> Result<Report, String> {
    let exe = std::env::current_exe().map_err(|err| format!("no current exe: {err}"))?;
    let mut child = Command::new(exe)
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, store)
        .env(CYCLE_ENV, cycle.to_string())
        .env(CHILD_SEED_ENV, child_seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|err| format!("cannot start the child: {err}"))?;
    let stdout = child.stdout.take().ok_or("the child has no stdout")?;
    let mut reaper = Reaper(Some(child));

    let (lines, inbox) = mpsc::channel::<Result<Line, String>>();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        let mut text = String::new();
        loop {
            text.clear();
            match stdout.read_line(&mut text) {
                Ok(0) | Err(_) => return,
                // A line cut short by the kill carries no acknowledgement.
                Ok(_) if !text.ends_with('\n') => return,
                Ok(_) => {
                    if let Some(at) = text.find(MARK) {
                        let line = text[at + MARK.len()..].trim();
                        if lines.send(parse(line)).is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });

    let mut report = Report::default();
    let deadline = Instant::now() + FIRST_ACK_TIMEOUT;
    let first_ack = wait_for_first_ack(&inbox, &mut report, deadline);
    if first_ack.is_ok() {
        report.early_acks = report.acked();
        std::thread::sleep(delay);
    }
    let mut child = reaper.0.take().ok_or("no child")?;
    // `Child::kill` sends SIGKILL on Unix.
    child
        .kill()
        .map_err(|err| format!("cannot kill the child: {err}"))?;
    let status = child
        .wait()
        .map_err(|err| format!("cannot reap the child: {err}"))?;
    // Everything written to the pipe before the kill is still readable.
    for line in inbox.iter() {
        report.take(line?)?;
    }
    let _ = reader.join();
    first_ack?;
    if let Some(fatal) = &report.fatal {
        return Err(format!("the child failed ({status}): {fatal}"));
    }
    Ok(report)
}

fn wait_for_first_ack(
    inbox: &Receiver<Result<Line, String>>,
    report: &mut Report,
    deadline: Instant,
) -> Result<(), String> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match inbox.recv_timeout(left) {
            Ok(line) => {
                report.take(line?)?;
                if report.fatal.is_some() {
                    return Err("the child failed before its first acknowledged write".into());
                }
                if report.acked() > 0 {
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "no acknowledged write from the child within {FIRST_ACK_TIMEOUT:?}"
                ));
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err("the child exited before its first acknowledged write".into());
            }
        }
    }
}

/// What the parent knows about the store between cycles.
#[derive(Default)]
struct Model {
    /// Every per-thread key ever submitted and the state found for it.
    items: BTreeMap<String, State>,
    /// The shared counter's value.
    counter: i64,
    /// The change feed as last seen.
    feed: Vec<Change>,
    /// Totals for the summary.
    submitted: usize,
    acked: usize,
    survived_unacked: usize,
    index_rebuilds: u64,
}

/// The state of `collection/key` in the store.
fn state_of(store: &RedbStore, collection: &str, key: &str) -> Result<State, String> {
    let record = store
        .get(collection, key)
        .map_err(|err| format!("get {collection}/{key}: {err}"))?;
    Ok(match record {
        None => State::Absent,
        Some(record) if record.exists() => State::Live(record.to_json()),
        Some(_) => State::Deleted,
    })
}

/// Reopens the store after a kill and checks it against what the child
/// acknowledged and submitted; updates the model. Reports every problem
/// found (the first few in full).
fn verify(path: &Path, report: &Report, model: &mut Model) -> Result<(), String> {
    let store = RedbStore::open(path, REPLICA, StoreConfig::default())
        .map_err(|err| format!("reopen: {err}"))?;
    model.index_rebuilds += store.stats().index_rebuilds;
    let mut problems: Vec<String> = Vec::new();

    // The change feed: gap-free, earlier cycles' part unchanged.
    let last_seq = store.last_seq();
    let feed = store
        .changes_since(0, usize::MAX)
        .map_err(|err| format!("changes_since: {err}"))?;
    let seqs_ok = feed.len() as u64 == last_seq
        && feed.iter().zip(1..).all(|(change, seq)| change.seq == seq);
    if !seqs_ok {
        let seqs: Vec<u64> = feed.iter().map(|c| c.seq).collect();
        return Err(format!(
            "the change feed is not 1..={last_seq} without gaps: {seqs:?}"
        ));
    }
    let prev_seq = model.feed.len();
    if feed.len() < prev_seq || feed[..prev_seq] != model.feed[..] {
        problems.push(format!(
            "the change feed lost or changed entries of earlier cycles (had {prev_seq}, now {})",
            feed.len()
        ));
    }
    let new_changes = feed.get(prev_seq..).unwrap_or_default();
    let acked = report.acked();
    let submitted = report.writes.len();

    // Every acknowledged write is in the feed at its sequence number.
    for op in &report.order {
        let write = &report.writes[op];
        let Some((seq, digest)) = &write.ack else {
            continue;
        };
        let change = (*seq as usize)
            .checked_sub(1)
            .filter(|at| *at >= prev_seq)
            .and_then(|at| feed.get(at));
        let matches = change.is_some_and(|c| {
            c.collection == write.collection && c.key == write.key && c.digest.to_hex() == *digest
        });
        if !matches {
            problems.push(format!(
                "LOST: acknowledged write {op} ({} {}/{}) at seq {seq} with digest {digest}; the feed has {change:?}",
                write.kind, write.collection, write.key
            ));
        }
    }
    let mut changes_per_key: HashMap<(&str, &str), usize> = HashMap::new();
    for change in new_changes {
        *changes_per_key
            .entry((change.collection.as_str(), change.key.as_str()))
            .or_default() += 1;
    }

    // Per-thread keys: the state after an acknowledged-or-longer prefix of
    // their writes.
    let mut per_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let (mut inc_acked, mut inc_submitted) = (0i64, 0i64);
    for op in &report.order {
        let write = &report.writes[op];
        if write.kind == "inc" {
            inc_submitted += 1;
            inc_acked += i64::from(write.ack.is_some());
        } else {
            per_key.entry(write.key.as_str()).or_default().push(op);
        }
    }
    let mut survived_unacked = 0;
    let mut explained = 0;
    for (key, ops) in &per_key {
        if model.items.contains_key(*key) {
            problems.push(format!("key {key} was written in two cycles"));
        }
        let writes: Vec<&WriteOp> = ops.iter().map(|op| &report.writes[*op]).collect();
        let acked_prefix = writes.iter().take_while(|w| w.ack.is_some()).count();
        if writes[acked_prefix..].iter().any(|w| w.ack.is_some()) {
            problems.push(format!(
                "key {key}: writes acknowledged out of order: {ops:?}"
            ));
        }
        let actual = state_of(&store, ITEMS, key)?;
        let state_after = |n: usize| -> State {
            match n.checked_sub(1) {
                None => State::Absent,
                Some(last) => writes[last].after.clone().unwrap_or(State::Absent),
            }
        };
        let in_feed = changes_per_key.get(&(ITEMS, *key)).copied().unwrap_or(0);
        explained += in_feed;
        match (acked_prefix..=writes.len()).find(|n| state_after(*n) == actual) {
            Some(applied) => {
                survived_unacked += applied - acked_prefix;
                if in_feed != applied {
                    problems.push(format!(
                        "key {ITEMS}/{key} shows {applied} applied writes but has {in_feed} new changes in the feed"
                    ));
                }
            }
            None => {
                let history: Vec<String> = ops
                    .iter()
                    .zip(&writes)
                    .map(|(op, w)| format!("{op} {} -> {:?} acked={:?}", w.kind, w.after, w.ack))
                    .collect();
                problems.push(format!(
                    "LOST: key {ITEMS}/{key} holds {actual:?}, but {acked_prefix} of its writes were acknowledged: \
                     {history:?}"
                ));
            }
        }
        model.items.insert((*key).to_owned(), actual);
    }

    // The shared counter.
    let counter_state = state_of(&store, TALLY, COUNTER)?;
    let counter = match &counter_state {
        State::Absent => 0,
        State::Live(doc) => doc[COUNTER_FIELD]
            .as_i64()
            .ok_or_else(|| format!("counter record {doc} has no integer {COUNTER_FIELD}"))?,
        State::Deleted => return Err("the counter record is deleted".into()),
    };
    let grew = counter - model.counter;
    if grew < inc_acked || grew > inc_submitted {
        problems.push(format!(
            "{}the counter went from {} to {counter} (+{grew}), but {inc_acked} increments were acknowledged \
             and {inc_submitted} submitted",
            if grew < inc_acked { "LOST: " } else { "" },
            model.counter
        ));
    }
    let counter_in_feed = changes_per_key.get(&(TALLY, COUNTER)).copied().unwrap_or(0);
    explained += counter_in_feed;
    if i64::try_from(counter_in_feed) != Ok(grew) {
        problems.push(format!(
            "the counter grew by {grew} but has {counter_in_feed} new changes in the feed"
        ));
    }
    survived_unacked += usize::try_from(grew - inc_acked).unwrap_or(0);
    if explained != new_changes.len() {
        problems.push(format!(
            "{} new changes in the feed are for keys the child never wrote",
            new_changes.len().abs_diff(explained)
        ));
    }
    if new_changes.len() < acked || new_changes.len() > submitted {
        problems.push(format!(
            "{}last_seq went from {prev_seq} to {last_seq}: {} new changes, but {acked} writes were acknowledged \
             and {submitted} submitted",
            if new_changes.len() < acked { "LOST: " } else { "" },
            new_changes.len()
        ));
    }
    model.counter = counter;

    // The index against the records, for every key of every cycle.
    let mut expected: BTreeMap<(&str, String), State> = model
        .items
        .iter()
        .map(|(key, state)| ((ITEMS, key.clone()), state.clone()))
        .collect();
    expected.insert((TALLY, COUNTER.to_owned()), counter_state);
    for collection in [ITEMS, TALLY] {
        if let Err(problem) = check_index(&store, collection, &expected) {
            problems.push(problem);
        }
    }

    // The last change of each key carries the key's current digest.
    let mut last_digest = BTreeMap::new();
    for change in &feed {
        last_digest.insert(
            (change.collection.as_str(), change.key.as_str()),
            change.digest,
        );
    }
    let indexed: BTreeMap<(&str, String), _> = [ITEMS, TALLY]
        .into_iter()
        .flat_map(|collection| {
            store
                .index_entries(collection, &KeyRange::all(), usize::MAX)
                .into_iter()
                .map(move |(key, entry)| ((collection, key), entry.digest))
        })
        .collect();
    for ((collection, key), digest) in &last_digest {
        let entry = indexed.get(&(*collection, (*key).to_owned()));
        if entry != Some(digest) {
            problems.push(format!(
                "the last change of {collection}/{key} has digest {}, its index entry {:?}",
                digest.to_hex(),
                entry.map(|d| d.to_hex())
            ));
        }
    }

    let stats = store.stats();
    if stats.corrupt_records != 0 || stats.quarantined != 0 {
        problems.push(format!("records found corrupt after the kill: {stats:?}"));
    }
    if !problems.is_empty() {
        let lost = problems.iter().filter(|p| p.starts_with("LOST")).count();
        let shown: Vec<&str> = problems.iter().take(12).map(String::as_str).collect();
        return Err(format!(
            "{} problems ({lost} lost acknowledged writes; {acked} acknowledged and {submitted} submitted this \
             cycle), the first {}:\n  {}",
            problems.len(),
            shown.len(),
            shown.join("\n  ")
        ));
    }
    model.feed = feed;
    model.submitted += submitted;
    model.acked += acked;
    model.survived_unacked += survived_unacked;
    drop(store);
    Ok(())
}

/// Checks `collection`'s index, scan and counts against the records and
/// the expected states.
fn check_index(
    store: &RedbStore,
    collection: &str,
    expected: &BTreeMap<(&str, String), State>,
) -> Result<(), String> {
    let entries = store.index_entries(collection, &KeyRange::all(), usize::MAX);
    let mut live = BTreeMap::new();
    let mut scan = Scan {
        prefix: String::new(),
        after: None,
        limit: 500,
    };
    loop {
        let page = store
            .scan(collection, &scan)
            .map_err(|err| format!("scan {collection}: {err}"))?;
        live.extend(page.records);
        match page.next {
            Some(next) => scan.after = Some(next),
            None => break,
        }
    }

    let wanted: BTreeMap<&str, &State> = expected
        .iter()
        .filter(|((c, _), state)| *c == collection && **state != State::Absent)
        .map(|((_, key), state)| (key.as_str(), state))
        .collect();
    let indexed: BTreeSet<&str> = entries.iter().map(|(key, _)| key.as_str()).collect();
    let wanted_keys: BTreeSet<&str> = wanted.keys().copied().collect();
    if indexed != wanted_keys {
        let missing: Vec<_> = wanted_keys.difference(&indexed).collect();
        let extra: Vec<_> = indexed.difference(&wanted_keys).collect();
        return Err(format!(
            "index of {collection}: keys missing {missing:?}, keys that should not be there {extra:?}"
        ));
    }

    let mut rebuilt = Fingerprint::EMPTY;
    for (key, entry) in &entries {
        let record = match live.get(key) {
            Some(record) => record.clone(),
            None => store
                .get(collection, key)
                .map_err(|err| format!("get {collection}/{key}: {err}"))?
                .ok_or_else(|| format!("index entry {collection}/{key} has no record"))?,
        };
        let state = if record.exists() {
            State::Live(record.to_json())
        } else {
            State::Deleted
        };
        if Some(&&state) != wanted.get(key.as_str()) {
            return Err(format!(
                "{collection}/{key} holds {state:?}, but {:?} was found earlier",
                wanted.get(key.as_str())
            ));
        }
        let digest = Lattice::digest(&record);
        if digest != entry.digest {
            return Err(format!(
                "index entry of {collection}/{key} has digest {}, the record {}",
                entry.digest.to_hex(),
                digest.to_hex()
            ));
        }
        rebuilt += Fingerprint::of_entry(key, &digest);
    }
    for key in live.keys() {
        if !matches!(wanted.get(key.as_str()), Some(State::Live(_))) {
            return Err(format!(
                "scan of {collection} returned {key}, which is not live"
            ));
        }
    }
    let live_wanted = wanted
        .values()
        .filter(|s| matches!(s, State::Live(_)))
        .count();
    if live.len() != live_wanted {
        return Err(format!(
            "scan of {collection} returned {} records, expected {live_wanted}",
            live.len()
        ));
    }

    let fingerprint = store.fingerprint(collection, &KeyRange::all());
    if fingerprint.count != entries.len() as u64 || fingerprint != rebuilt {
        return Err(format!(
            "fingerprint of {collection} is {fingerprint:?}; a rebuild from the {} records gives {rebuilt:?}",
            entries.len()
        ));
    }
    let infos = store
        .collections()
        .map_err(|err| format!("collections: {err}"))?;
    let counts = infos
        .iter()
        .find(|info| info.name == collection)
        .map(|info| (info.live, info.keys));
    let want = (!entries.is_empty()).then_some((live.len() as u64, entries.len() as u64));
    if counts != want && !(entries.is_empty() && counts == Some((0, 0))) {
        return Err(format!(
            "collections() says {collection} has (live, keys) {counts:?}, expected {want:?}"
        ));
    }
    Ok(())
}

/// A fresh directory for this run.
fn tempdir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("trellis-crash-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("cannot create the temporary directory");
    dir
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let kills = env_u64(KILLS_ENV).unwrap_or(50);
    let seed = env_u64(SEED_ENV).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("crash safety: {kills} kills, {SEED_ENV}={seed}");
    let mut rng = Rng(seed);
    let dir = tempdir();
    let path = dir.join("data.redb");
    let mut model = Model::default();
    let started = Instant::now();
    for cycle in 1..=kills {
        let delay = Duration::from_millis(5 + rng.below(146));
        let child_seed = rng.next();
        let outcome = run_child(&path, cycle, child_seed, delay).and_then(|report| {
            verify(&path, &report, &mut model)?;
            Ok(report)
        });
        match outcome {
            Ok(report) => {
                if std::env::var_os(VERBOSE_ENV).is_some() {
                    eprintln!(
                        "cycle {cycle}: kill after {delay:?}, {} submitted, {} acked ({} before the sleep)",
                        report.writes.len(),
                        report.acked(),
                        report.early_acks
                    );
                }
            }
            Err(err) => panic!(
                "crash-safety failure ({SEED_ENV}={seed}, cycle {cycle} of {kills}, kill {delay:?} after the first \
                 acknowledged write; store kept at {}): {err}",
                path.display()
            ),
        }
    }
    eprintln!(
        "crash safety: {kills} kills in {:.1?}: {} writes submitted, {} acknowledged, {} unacknowledged survived, \
         none lost; last_seq {}, {} keys, counter {}, {} index rebuilds on reopen",
        started.elapsed(),
        model.submitted,
        model.acked,
        model.survived_unacked,
        model.feed.len(),
        model.items.len(),
        model.counter,
        model.index_rebuilds
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
