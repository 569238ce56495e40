//! The client subcommands: talk to a running node's API and print
//! tables for people, or the API's JSON with `--json`.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::Value;
use trellis_node::client::{encode, Client};

/// Where the node is and how to talk to it.
#[derive(Args, Debug)]
pub struct ApiArgs {
    /// The node's API.
    #[arg(long, env = "TRELLIS_URL", default_value = "http://127.0.0.1:7380")]
    url: String,
    /// A bearer token (one of the node's api.tokens).
    #[arg(long, env = "TRELLIS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl ApiArgs {
    /// A client for the node.
    pub fn client(&self) -> Client {
        Client::new(&self.url, self.token.clone(), Duration::from_secs(75))
    }
}

/// A record's address.
#[derive(Args, Debug)]
pub struct Target {
    #[command(flatten)]
    api: ApiArgs,
    /// The collection, e.g. leads.
    collection: String,
    /// The record's key.
    key: String,
}

impl Target {
    fn path(&self) -> String {
        format!(
            "/v1/collections/{}/records/{}",
            encode(&self.collection),
            encode(&self.key)
        )
    }
}

/// How many sites a write waits for.
#[derive(Args, Debug)]
pub struct WaitArgs {
    /// Wait until this many sites hold the write: local (default),
    /// majority, all, or a number.
    #[arg(long)]
    wait: Option<String>,
    /// How long to wait for --wait, e.g. 5s; the write stays made either way.
    #[arg(long)]
    timeout: Option<String>,
}

impl WaitArgs {
    /// The query string for the write's URL ("" or "?wait=…&timeout=…").
    fn query(&self) -> String {
        let mut params = Vec::new();
        if let Some(wait) = &self.wait {
            params.push(format!("wait={}", encode(wait)));
        }
        if let Some(timeout) = &self.timeout {
            params.push(format!("timeout={}", encode(timeout)));
        }
        if params.is_empty() {
            String::new()
        } else {
            format!("?{}", params.join("&"))
        }
    }
}

/// After a write's table: its token, and how many sites hold it.
fn print_write(answer: &Value, json: bool) {
    if json {
        return;
    }
    if let Some(token) = answer["token"].as_str() {
        println!("token: {token}");
    }
    if let Some(sites) = answer["sites"].as_u64() {
        match answer["required"].as_u64() {
            Some(required) => println!(
                "held by {sites} of the {required} sites asked for before the timeout; {}",
                text(&answer["message"])
            ),
            None => println!("held by {sites} site(s)"),
        }
    }
}

/// `trellis ls`.
#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// A collection to list the records of; without it, the collections.
    collection: Option<String>,
    /// Only keys starting with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Only keys after this one.
    #[arg(long)]
    after: Option<String>,
    /// At most this many records.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

/// `trellis changes`.
#[derive(Args, Debug)]
pub struct ChangesArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// Changes after this sequence number.
    #[arg(long, default_value_t = 0)]
    since: u64,
    /// At most this many per request.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Keep waiting for new changes (Ctrl-C to stop).
    #[arg(long)]
    follow: bool,
}

fn parse_json(text: &str, what: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{what} is not valid JSON"))
}

/// Prints `value` as indented JSON.
pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// Prints rows as aligned columns under `header`.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// A JSON value as a table cell.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_record(value: &Value, json: bool) {
    if json {
        return print_json(value);
    }
    let mut rows: Vec<Vec<String>> = value["value"]
        .as_object()
        .map(|fields| {
            fields
                .iter()
                .map(|(k, v)| vec![k.clone(), text(v)])
                .collect()
        })
        .unwrap_or_default();
    if let Some(conflicts) = value["conflicts"].as_object() {
        for (field, values) in conflicts {
            rows.push(vec![format!("{field} (concurrent)"), text(values)]);
        }
    }
    println!("{}", text(&value["key"]));
    table(&["field", "value"], &rows);
}

pub fn put(target: &Target, value: &str, wait: &WaitArgs) -> anyhow::Result<()> {
    let body = parse_json(value, "the record")?;
    let path = format!("{}{}", target.path(), wait.query());
    let answer = target.api.client().json("PUT", &path, Some(&body))?;
    print_record(&answer, target.api.json);
    print_write(&answer, target.api.json);
    Ok(())
}

pub fn get(
    target: &Target,
    conflicts: bool,
    after: Option<&str>,
    timeout: Option<&str>,
) -> anyhow::Result<()> {
    let mut params = Vec::new();
    if conflicts {
        params.push("conflicts=true".to_owned());
    }
    if let Some(token) = after {
        params.push(format!("after={}", encode(token)));
    }
    if let Some(timeout) = timeout {
        params.push(format!("timeout={}", encode(timeout)));
    }
    let mut path = target.path();
    if !params.is_empty() {
        path = format!("{path}?{}", params.join("&"));
    }
    let answer = target.api.client().json("GET", &path, None)?;
    print_record(&answer, target.api.json);
    Ok(())
}

pub fn patch(target: &Target, ops: &str, wait: &WaitArgs) -> anyhow::Result<()> {
    let ops = parse_json(ops, "the operations")?;
    let body = serde_json::json!({"ops": ops});
    let path = format!("{}{}", target.path(), wait.query());
    let answer = target.api.client().json("PATCH", &path, Some(&body))?;
    print_record(&answer, target.api.json);
    print_write(&answer, target.api.json);
    Ok(())
}

pub fn delete(target: &Target, wait: &WaitArgs) -> anyhow::Result<()> {
    let path = format!("{}{}", target.path(), wait.query());
    let answer = target.api.client().json("DELETE", &path, None)?;
    if target.api.json {
        print_json(&answer);
    } else {
        println!("deleted {}/{}", target.collection, target.key);
        print_write(&answer, false);
    }
    Ok(())
}

pub fn ls(args: &ListArgs) -> anyhow::Result<()> {
    let client = args.api.client();
    let Some(collection) = &args.collection else {
        let answer = client.json("GET", "/v1/collections", None)?;
        if args.api.json {
            print_json(&answer);
        } else {
            let rows: Vec<Vec<String>> = answer["collections"]
                .as_array()
                .map(|all| {
                    all.iter()
                        .map(|c| vec![text(&c["name"]), text(&c["count"])])
                        .collect()
                })
                .unwrap_or_default();
            table(&["collection", "records"], &rows);
        }
        return Ok(());
    };
    let mut path = format!(
        "/v1/collections/{}/records?limit={}&prefix={}",
        encode(collection),
        args.limit,
        encode(&args.prefix)
    );
    if let Some(after) = &args.after {
        path.push_str(&format!("&after={}", encode(after)));
    }
    let answer = client.json("GET", &path, None)?;
    if args.api.json {
        print_json(&answer);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = answer["records"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|r| vec![text(&r["key"]), r["value"].to_string()])
                .collect()
        })
        .unwrap_or_default();
    table(&["key", "value"], &rows);
    if let Some(next) = answer["next"].as_str() {
        println!("more: --after {next}");
    }
    Ok(())
}

pub fn changes(args: &ChangesArgs) -> anyhow::Result<()> {
    let client = args.api.client();
    let mut since = args.since;
    let mut printed_header = false;
    loop {
        let wait = if args.follow { "&wait=30" } else { "" };
        let path = format!("/v1/changes?since={since}&limit={}{wait}", args.limit);
        let answer = client.send("GET", &path, None)?;
        if !(200..300).contains(&answer.status) {
            let error: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
            anyhow::bail!(
                "{} {}: {}",
                answer.status,
                text(&error["error"]),
                text(&error["message"])
            );
        }
        let lines: Vec<Value> = answer
            .body
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line).context("the change feed sent a line that is not JSON")
            })
            .collect::<anyhow::Result<_>>()?;
        if args.api.json {
            for line in &lines {
                println!("{line}");
            }
        } else {
            let rows: Vec<Vec<String>> = lines
                .iter()
                .map(|c| {
                    vec![
                        text(&c["seq"]),
                        text(&c["collection"]),
                        text(&c["key"]),
                        text(&c["origin"]),
                        text(&c["origin_time_ms"]),
                    ]
                })
                .collect();
            if !rows.is_empty() || !printed_header {
                if printed_header {
                    for row in &rows {
                        println!("{}", row.join("  "));
                    }
                } else {
                    table(
                        &["seq", "collection", "key", "origin", "origin time (ms)"],
                        &rows,
                    );
                    printed_header = true;
                }
            }
        }
        if let Some(last) = lines.last().and_then(|c| c["seq"].as_u64()) {
            since = last;
        }
        if !args.follow {
            return Ok(());
        }
    }
}

pub fn status(api: &ApiArgs) -> anyhow::Result<()> {
    let answer = api.client().json("GET", "/v1/status", None)?;
    if api.json {
        print_json(&answer);
        return Ok(());
    }
    let node = &answer["node"];
    println!(
        "site {} (replica {}), up {} s, change seq {}",
        text(&node["name"]),
        text(&node["id"]),
        text(&node["uptime_s"]),
        text(&node["last_seq"])
    );
    println!();
    let peers: Vec<Vec<String>> = answer["peers"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|p| {
                    vec![
                        text(&p["name"]),
                        text(&p["state"]),
                        text(&p["addr"]),
                        p["last_sync_age_ms"].as_u64().map_or("never".into(), |ms| {
                            format!("{:.1} s ago", ms as f64 / 1000.0)
                        }),
                        p["staleness_ms"].as_u64().map_or("-".into(), |ms| {
                            let within = if p["within_window"] == true {
                                ""
                            } else {
                                " (beyond window)"
                            };
                            format!("≤ {:.1} s{within}", ms as f64 / 1000.0)
                        }),
                        text(&p["lag_ms"]["p99"]),
                        text(&p["bytes_in"]),
                        text(&p["bytes_out"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(
        &[
            "peer",
            "state",
            "address",
            "last sync",
            "data age",
            "lag p99 (ms)",
            "bytes in",
            "bytes out",
        ],
        &peers,
    );
    for peer in answer["peers"].as_array().into_iter().flatten() {
        if let Some(sentence) = peer["freshness"].as_str() {
            println!("  {sentence}");
        }
    }
    println!();
    let collections: Vec<Vec<String>> = answer["collections"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|c| {
                    let digest = text(&c["digest"]);
                    vec![
                        text(&c["name"]),
                        text(&c["count"]),
                        digest.chars().take(16).collect(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    table(&["collection", "records", "digest"], &collections);
    Ok(())
}
