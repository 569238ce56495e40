//! Reconciliation cost: Trellis's range-based reconciliation against two
//! baselines implemented here, on the same data in the same run.
//!
//! - **full state**: one side sends every (key, digest, time) entry;
//! - **Merkle**: a 16-ary hash tree over key hashes, walked down the
//!   differing branches, with (key hash, item hash) lists at the leaves.
//!
//! For n ∈ {10k, 1M} records and d ∈ {0, 1, 100, 10k} differing records,
//! scattered or clustered, plus bootstrap (one side empty), it prints the
//! discovery bytes, their ratio to the true difference (d × 48 bytes:
//! key, digest and time), round trips, and wall time.
//!
//! `cargo run --release -p trellis-benches --bin reconcile`

use std::collections::BTreeMap;
use std::time::Instant;

use trellis_crdt::{Digest, Timestamp};
use trellis_gossip::exchange::exchange;
use trellis_gossip::reconcile::Tuning;
use trellis_store::index::{Fingerprint, IndexEntry, RangeIndex};

/// Bytes one entry of the true difference stands for.
const ENTRY_BYTES: usize = 48;

fn key(i: usize) -> String {
    format!("lead-{i:07}")
}

fn entry(seed: u64) -> IndexEntry {
    let hash = blake3::hash(&seed.to_le_bytes());
    IndexEntry {
        digest: Digest(*hash.as_bytes()),
        hlc: Timestamp(seed),
    }
}

/// The positions that differ: `d` of `n`, spread evenly or in one block.
fn differing(n: usize, d: usize, clustered: bool) -> Vec<usize> {
    if d == 0 {
        return Vec::new();
    }
    if clustered {
        (n / 3..n / 3 + d).collect()
    } else {
        (0..d)
            .map(|i| i * (n / d) + (i * 7919) % (n / d).max(1))
            .collect()
    }
}

/// Bytes and round trips of the 16-ary Merkle tree baseline.
fn merkle(a: &RangeIndex, b: &RangeIndex) -> (usize, usize) {
    const HASH: usize = 16;
    let n = a.len().max(b.len()).max(1);
    // Leaves of about 16 items: depth = log16(n / 16).
    let mut depth = 0;
    while 16usize.pow(depth + 1) * 16 < n {
        depth += 1;
    }
    let levels = depth as usize + 1;
    // Node hashes: for each level, the sum of item hashes under each
    // prefix of the key hash (one hex digit per level).
    let tree = |index: &RangeIndex| {
        let mut nodes: Vec<BTreeMap<u64, [u8; 32]>> = vec![BTreeMap::new(); levels + 1];
        let mut leaves: BTreeMap<u64, Vec<[u8; 8]>> = BTreeMap::new();
        for (key, entry) in index.iter() {
            let position = u64::from_le_bytes(
                blake3::hash(key.as_bytes()).as_bytes()[..8]
                    .try_into()
                    .unwrap_or_default(),
            );
            let item = Fingerprint::of_entry(key, &entry.digest);
            for (level, level_nodes) in nodes.iter_mut().enumerate() {
                let prefix = if level == 0 {
                    0
                } else {
                    position >> (64 - 4 * level)
                };
                let node = level_nodes.entry(prefix).or_insert([0; 32]);
                for (slot, byte) in node.iter_mut().zip(item.sum) {
                    *slot = slot.wrapping_add(byte);
                }
            }
            let leaf = position >> (64 - 4 * levels);
            let mut hash = [0u8; 8];
            hash.copy_from_slice(&item.sum[..8]);
            leaves.entry(leaf).or_default().push(hash);
        }
        (nodes, leaves)
    };
    let (nodes_a, _) = tree(a);
    let (nodes_b, leaves_b) = tree(b);
    let mut bytes = HASH; // the root
    let mut round_trips = 1;
    let mut differing = vec![0u64];
    if nodes_a[0].get(&0) == nodes_b[0].get(&0) {
        return (bytes, round_trips);
    }
    for level in 1..=levels {
        round_trips += 1;
        let mut next = Vec::new();
        for parent in differing {
            bytes += 16 * HASH; // the parent's 16 child hashes
            for child in 0..16u64 {
                let node = (parent << 4) | child;
                if nodes_a[level].get(&node) != nodes_b[level].get(&node) {
                    next.push(node);
                }
            }
        }
        differing = next;
    }
    // Leaves: item hashes (8 bytes each) of one side's differing leaves.
    round_trips += 1;
    for leaf in differing {
        bytes += 16 * leaves_b.get(&leaf).map_or(0, Vec::len);
    }
    (bytes, round_trips)
}

fn main() {
    println!("| n | d | layout | Trellis bytes | ÷ (d × 48 B) | round trips | time | full state bytes | Merkle bytes | Merkle round trips | Merkle ÷ Trellis bytes |");
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in [10_000usize, 1_000_000] {
        let base: RangeIndex = (0..n).map(|i| (key(i), entry(i as u64))).collect();
        for d in [0usize, 1, 100, 10_000] {
            for clustered in [false, true] {
                if d == 0 && clustered {
                    continue;
                }
                let mut other = base.clone();
                for i in differing(n, d, clustered) {
                    other.insert(key(i), entry(u64::MAX - i as u64));
                }
                let started = Instant::now();
                let result = exchange(&base, &other, "leads", Tuning::default())
                    .expect("well-formed rounds");
                let elapsed = started.elapsed();
                let (merkle_bytes, merkle_trips) = merkle(&base, &other);
                let truth = (d * ENTRY_BYTES).max(1);
                println!(
                    "| {n} | {d} | {} | {} | {} | {} | {:.1} ms | {} | {} | {} | {:.1} |",
                    if clustered { "clustered" } else { "scattered" },
                    result.bytes,
                    if d == 0 {
                        "–".to_string()
                    } else {
                        format!("{:.1}", result.bytes as f64 / truth as f64)
                    },
                    result.round_trips(),
                    elapsed.as_secs_f64() * 1e3,
                    n * ENTRY_BYTES,
                    merkle_bytes,
                    merkle_trips,
                    merkle_bytes as f64 / result.bytes as f64,
                );
            }
        }
        // Bootstrap: one side empty.
        let empty = RangeIndex::new();
        let started = Instant::now();
        let result =
            exchange(&empty, &base, "leads", Tuning::default()).expect("well-formed rounds");
        let elapsed = started.elapsed();
        let streamed: usize = result
            .streamed
            .iter()
            .map(|(_, range)| base.fingerprint(range).count as usize)
            .sum();
        println!(
            "| {n} | bootstrap | – | {} discovery, {streamed} records streamed | – | {} | {:.1} ms | {} | – | – | – |",
            result.bytes,
            result.round_trips(),
            elapsed.as_secs_f64() * 1e3,
            n * ENTRY_BYTES,
        );
    }
}
