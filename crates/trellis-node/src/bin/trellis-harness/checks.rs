//! What must hold once the faults have healed, checked through the API:
//! the sites converge to identical records, every acknowledged write is
//! there, the stock was never oversold and agrees with the acknowledged
//! decrements, and every change feed is gap-free.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use trellis_node::client::{encode, Client};

use crate::workload::{record_path, Ledger, HOT, HOT_KEYS, RECORDS, STOCK, STOCK_INITIAL};

/// Every collection's (count, digest) at one site.
fn digests(client: &Client) -> Result<BTreeMap<String, (u64, String)>, String> {
    let status = client
        .json("GET", "/v1/status", None)
        .map_err(|e| e.to_string())?;
    Ok(status["collections"]
        .as_array()
        .ok_or("no collections in /v1/status")?
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default().to_owned();
            (
                name,
                (
                    c["count"].as_u64().unwrap_or(0),
                    c["digest"].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect())
}

/// Waits until every site reports the same digests; the time it took, or
/// the last disagreement.
pub fn converge(clients: &[Client], limit: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < limit {
        match clients.iter().map(digests).collect::<Result<Vec<_>, _>>() {
            Ok(all) if all.windows(2).all(|pair| pair[0] == pair[1]) => {
                return Ok(started.elapsed())
            }
            Ok(all) => last = format!("{all:?}"),
            Err(err) => last = err,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("no convergence within {limit:?}: {last}"))
}

/// Every live record of `collection` at one site.
fn all_records(client: &Client, collection: &str) -> Result<BTreeMap<String, Value>, String> {
    let mut records = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/v1/collections/{collection}/records?limit=1000");
        if let Some(after) = &after {
            path.push_str(&format!("&after={}", encode(after)));
        }
        let page = client.json("GET", &path, None).map_err(|e| e.to_string())?;
        for record in page["records"].as_array().into_iter().flatten() {
            records.insert(
                record["key"].as_str().unwrap_or_default().to_owned(),
                record["value"].clone(),
            );
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(records),
        }
    }
}

/// Checks the ledgers against every site; returns the violations.
pub fn verify(clients: &[Client], ledgers: &[Ledger]) -> Vec<String> {
    let mut violations: Vec<String> = ledgers.iter().flat_map(|l| l.refusals.clone()).collect();
    for (site, client) in clients.iter().enumerate() {
        let records = match all_records(client, RECORDS) {
            Ok(records) => records,
            Err(err) => {
                violations.push(format!("site-{site}: cannot list records: {err}"));
                continue;
            }
        };
        for ledger in ledgers {
            for (key, value) in &ledger.puts {
                if ledger.uncertain.contains(key) {
                    continue;
                }
                let found = records.get(key);
                if ledger.deleted.contains(key) {
                    if found.is_some() {
                        violations.push(format!(
                            "site-{site}: {key} was deleted (acknowledged) but is there"
                        ));
                    }
                } else if found != Some(value) {
                    violations.push(format!(
                        "site-{site}: acknowledged {key} = {value} is {found:?}"
                    ));
                }
            }
        }
        for hot in 0..HOT_KEYS {
            let acked: u64 = ledgers.iter().map(|l| l.incr_acked[hot]).sum();
            let sent: u64 = ledgers.iter().map(|l| l.incr_sent[hot]).sum();
            let value = client
                .json("GET", &record_path(HOT, &format!("hot-{hot}")), None)
                .ok()
                .and_then(|r| r["value"]["hits"].as_u64())
                .unwrap_or(0);
            if value < acked || value > sent {
                violations.push(format!(
                    "site-{site}: hot-{hot} counts {value} hits, outside acknowledged {acked} ..= sent {sent}"
                ));
            }
        }
        let acked: u64 = ledgers.iter().map(|l| l.decr_acked).sum();
        let sent: u64 = ledgers.iter().map(|l| l.decr_sent).sum();
        match client.json("GET", &format!("/v1/counters/{STOCK}"), None) {
            Ok(answer) => {
                let value = answer["value"].as_i64().unwrap_or(i64::MIN);
                let sold = STOCK_INITIAL - value;
                if value < 0 || sold < acked as i64 || sold > sent as i64 {
                    violations.push(format!(
                        "site-{site}: stock is {value}: {sold} sold, outside acknowledged {acked} ..= sent {sent}"
                    ));
                }
            }
            Err(err) => violations.push(format!("site-{site}: cannot read the stock: {err}")),
        }
        if let Err(gap) = feed_is_gap_free(client) {
            violations.push(format!("site-{site}: {gap}"));
        }
    }
    violations
}

/// Reads the whole change feed and checks its sequence numbers run 1, 2,
/// 3… without a gap.
fn feed_is_gap_free(client: &Client) -> Result<(), String> {
    let mut expected = 1;
    loop {
        let answer = client
            .send(
                "GET",
                &format!("/v1/changes?since={}&limit=10000", expected - 1),
                None,
            )
            .map_err(|e| e.to_string())?;
        if answer.status != 200 {
            return Err(format!(
                "the change feed answered {}: {}",
                answer.status, answer.body
            ));
        }
        let mut lines = 0;
        for line in answer.body.lines().filter(|l| !l.trim().is_empty()) {
            let change: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
            let seq = change["seq"].as_u64().unwrap_or(0);
            if seq != expected {
                return Err(format!(
                    "the change feed jumps from {} to {seq}",
                    expected - 1
                ));
            }
            expected += 1;
            lines += 1;
        }
        if lines == 0 {
            return Ok(());
        }
    }
}
