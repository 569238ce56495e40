//! `trellis counter …`: the strongly consistent counters of a running
//! node's cluster.

use clap::Subcommand;
use serde_json::{json, Value};
use trellis_node::client::encode;

use crate::commands::{print_json, table, text, ApiArgs};

/// A counter subcommand.
#[derive(Subcommand, Debug)]
pub enum CounterCommand {
    /// Create a counter.
    Create {
        #[command(flatten)]
        api: ApiArgs,
        /// The counter, e.g. sku-42.
        name: String,
        /// The starting value.
        #[arg(long)]
        initial: i64,
        /// The lowest value decrements may leave.
        #[arg(long, default_value_t = 0)]
        min: i64,
    },
    /// Add to a counter.
    Incr {
        #[command(flatten)]
        api: ApiArgs,
        /// The counter.
        name: String,
        /// The amount.
        #[arg(default_value_t = 1)]
        by: i64,
        /// An idempotency key (e.g. the order id): a retry is applied once.
        #[arg(long)]
        id: Option<String>,
    },
    /// Take from a counter, only if it stays at or above its minimum.
    Decr {
        #[command(flatten)]
        api: ApiArgs,
        /// The counter.
        name: String,
        /// The amount.
        #[arg(default_value_t = 1)]
        by: i64,
        /// An idempotency key (e.g. the order id): a retry is applied once.
        #[arg(long)]
        id: Option<String>,
    },
    /// Set a counter.
    Set {
        #[command(flatten)]
        api: ApiArgs,
        /// The counter.
        name: String,
        /// The new value.
        value: i64,
        /// An idempotency key.
        #[arg(long)]
        id: Option<String>,
    },
    /// Read a counter (linearizable).
    Get {
        #[command(flatten)]
        api: ApiArgs,
        /// The counter.
        name: String,
    },
    /// List every counter.
    Ls {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show the voter sites, or change them.
    Members {
        #[command(flatten)]
        api: ApiArgs,
        #[command(subcommand)]
        change: Option<MembersChange>,
    },
}

/// A change of the voter set.
#[derive(Subcommand, Debug)]
pub enum MembersChange {
    /// Add a voter site: its replica id and peer address.
    Add {
        /// The replica id (16 hex digits, from `trellis init` or `trellis status`).
        id: String,
        /// Its peer address, IP:PORT.
        addr: String,
    },
    /// Remove a voter site.
    Remove {
        /// The replica id.
        id: String,
    },
}

fn print_counters(values: &[Value], json_out: bool, whole: &Value) {
    if json_out {
        return print_json(whole);
    }
    let rows: Vec<Vec<String>> = values
        .iter()
        .map(|c| vec![text(&c["name"]), text(&c["value"]), text(&c["min"])])
        .collect();
    table(&["counter", "value", "min"], &rows);
}

fn with_id(mut body: Value, id: &Option<String>) -> Value {
    if let Some(id) = id {
        body["id"] = json!(id);
    }
    body
}

/// Runs one counter subcommand.
pub fn run(command: &CounterCommand) -> anyhow::Result<()> {
    let path = |name: &str, action: &str| format!("/v1/counters/{}{action}", encode(name));
    let (api, method, route, body) = match command {
        CounterCommand::Create {
            api,
            name,
            initial,
            min,
        } => (
            api,
            "POST",
            path(name, ""),
            Some(json!({"initial": initial, "min": min})),
        ),
        CounterCommand::Incr { api, name, by, id } => (
            api,
            "POST",
            path(name, "/increment"),
            Some(with_id(json!({"by": by}), id)),
        ),
        CounterCommand::Decr { api, name, by, id } => (
            api,
            "POST",
            path(name, "/decrement"),
            Some(with_id(json!({"by": by}), id)),
        ),
        CounterCommand::Set {
            api,
            name,
            value,
            id,
        } => (
            api,
            "POST",
            path(name, "/set"),
            Some(with_id(json!({"value": value}), id)),
        ),
        CounterCommand::Get { api, name } => (api, "GET", path(name, ""), None),
        CounterCommand::Ls { api } => (api, "GET", "/v1/counters".to_owned(), None),
        CounterCommand::Members { api, change } => {
            let (method, route, body) = match change {
                None => ("GET", "/v1/counter-voters".to_owned(), None),
                Some(MembersChange::Add { id, addr }) => (
                    "POST",
                    "/v1/counter-voters".to_owned(),
                    Some(json!({"id": id, "addr": addr})),
                ),
                Some(MembersChange::Remove { id }) => {
                    ("DELETE", format!("/v1/counter-voters/{}", encode(id)), None)
                }
            };
            let answer = api.client().json(method, &route, body.as_ref())?;
            if api.json {
                print_json(&answer);
                return Ok(());
            }
            println!("leader: {}", text(&answer["leader"]));
            let mut rows = Vec::new();
            for (role, list) in [
                ("voter", &answer["voters"]),
                ("learner", &answer["learners"]),
            ] {
                for member in list.as_array().into_iter().flatten() {
                    rows.push(vec![
                        text(&member["id"]),
                        text(&member["addr"]),
                        role.to_owned(),
                    ]);
                }
            }
            table(&["id", "address", "role"], &rows);
            return Ok(());
        }
    };
    let answer = api.client().json(method, &route, body.as_ref())?;
    match answer["counters"].as_array() {
        Some(values) => print_counters(values, api.json, &answer),
        None => print_counters(std::slice::from_ref(&answer), api.json, &answer),
    }
    Ok(())
}
