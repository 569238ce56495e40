//! The workload: one client thread per site doing random record writes,
//! patches and deletes, and stock decrements, and keeping a ledger of
//! what was acknowledged (2xx) and what was only attempted (the outcome
//! of a request that failed in flight is unknown: it may have applied).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Value};
use trellis_node::client::{encode, Client, ClientError};

/// The collection of unique records.
pub const RECORDS: &str = "records";
/// The collection of contended counters-in-records.
pub const HOT: &str = "hot";
/// Hot records, patched by every site.
pub const HOT_KEYS: usize = 4;
/// The strongly consistent stock counter.
pub const STOCK: &str = "stock";
/// Its starting value: more than the workload can sell.
pub const STOCK_INITIAL: i64 = 1_000_000;

/// What one site's client did.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    /// Acknowledged PUTs of unique keys, with their values.
    pub puts: BTreeMap<String, Value>,
    /// Keys whose PUT or DELETE failed in flight: their state is unknown.
    pub uncertain: BTreeSet<String>,
    /// Acknowledged deletes.
    pub deleted: BTreeSet<String>,
    /// Acknowledged increments per hot key.
    pub incr_acked: [u64; HOT_KEYS],
    /// Increments sent per hot key (acknowledged or not).
    pub incr_sent: [u64; HOT_KEYS],
    /// Acknowledged stock decrements.
    pub decr_acked: u64,
    /// Stock decrements sent.
    pub decr_sent: u64,
    /// Requests that failed (transport errors and 5xx).
    pub failed: u64,
    /// Requests made.
    pub requests: u64,
    /// Valid requests the node refused with a 4xx: each is a violation.
    pub refusals: Vec<String>,
}

/// The path of a record.
pub fn record_path(collection: &str, key: &str) -> String {
    format!("/v1/collections/{collection}/records/{}", encode(key))
}

fn outcome(result: Result<Value, ClientError>, ledger: &mut Ledger) -> Option<Value> {
    ledger.requests += 1;
    match result {
        Ok(value) => Some(value),
        Err(ClientError::Api {
            status,
            code,
            message,
        }) if status < 500 => {
            // A 4xx for a well-formed request is a bug in the node (the
            // stock is far from running out, so not even `insufficient`).
            ledger.refusals.push(format!("{status} {code}: {message}"));
            None
        }
        Err(_) => {
            ledger.failed += 1;
            None
        }
    }
}

/// Runs site `site`'s client until `stop`, against `client`.
pub fn run(site: usize, client: Client, seed: u64, stop: Arc<AtomicBool>) -> Ledger {
    let mut rng = SmallRng::seed_from_u64(seed ^ (site as u64).wrapping_mul(0x9e37_79b9));
    let mut ledger = Ledger::default();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        match rng.random_range(0..10) {
            0..=4 => {
                let key = format!("k-{site}-{n}");
                let value =
                    json!({"site": site, "n": n, "note": "x".repeat(rng.random_range(0..64))});
                match outcome(
                    client.json("PUT", &record_path(RECORDS, &key), Some(&value)),
                    &mut ledger,
                ) {
                    Some(_) => {
                        ledger.puts.insert(key, value);
                    }
                    None => {
                        ledger.uncertain.insert(key);
                    }
                }
            }
            5..=6 => {
                let hot = rng.random_range(0..HOT_KEYS);
                let body = json!({"ops": [{"op": "incr", "field": "hits", "by": 1}]});
                ledger.incr_sent[hot] += 1;
                let path = record_path(HOT, &format!("hot-{hot}"));
                if outcome(client.json("PATCH", &path, Some(&body)), &mut ledger).is_some() {
                    ledger.incr_acked[hot] += 1;
                }
            }
            7 => {
                let live: Vec<&String> = ledger
                    .puts
                    .keys()
                    .filter(|key| {
                        !ledger.deleted.contains(*key) && !ledger.uncertain.contains(*key)
                    })
                    .collect();
                if live.is_empty() {
                    continue;
                }
                let key = live[rng.random_range(0..live.len())].clone();
                match outcome(
                    client.json("DELETE", &record_path(RECORDS, &key), None),
                    &mut ledger,
                ) {
                    Some(_) => {
                        ledger.deleted.insert(key);
                    }
                    None => {
                        ledger.uncertain.insert(key);
                    }
                }
            }
            _ => {
                let body = json!({"by": 1, "id": format!("{site}-{n}")});
                ledger.decr_sent += 1;
                let path = format!("/v1/counters/{STOCK}/decrement");
                if outcome(client.json("POST", &path, Some(&body)), &mut ledger).is_some() {
                    ledger.decr_acked += 1;
                }
            }
        }
        // A little pacing: a steady load, not a flood, on 2 cores.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..10)));
    }
    ledger
}
