//! `trellis`: run a node, set one up, or talk to a running one.

mod commands;
mod counter_commands;
mod logging;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use trellis_node::{setup, DataDir, LogFormat, Node, NodeConfig};

/// mimalloc rather than the system allocator. A write allocates a few
/// dozen small objects on the thread that serves it (the record, its
/// delta, its bytes) and frees most of them on the store's commit and ack
/// threads; glibc's malloc spends a large share of a write's CPU on that
/// pattern, and mimalloc much less (docs/benchmarks.md, `store_writes`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "trellis",
    version,
    about = "One Trellis node per site: records replicate to every site without coordination"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a node's data directory and identity.
    Init {
        /// The data directory to create.
        #[arg(long)]
        data: PathBuf,
        /// The site's name (a-z, 0-9, '-').
        #[arg(long)]
        name: String,
    },
    /// Create the cluster CA or issue a node certificate.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Run a node.
    Run(RunArgs),
    /// Start three sites on this machine and show a write replicating.
    Quickstart {
        /// Exit after the walkthrough instead of running until Ctrl-C.
        #[arg(long)]
        exit_after_demo: bool,
    },
    /// Replace a record with a JSON object.
    Put {
        #[command(flatten)]
        target: commands::Target,
        /// The record, a JSON object, e.g. '{"name": "Ada"}'.
        value: String,
        #[command(flatten)]
        wait: commands::WaitArgs,
    },
    /// Read a record.
    Get {
        #[command(flatten)]
        target: commands::Target,
        /// Also show concurrent values of each field.
        #[arg(long)]
        conflicts: bool,
        /// Answer only once this site has the write that returned TOKEN.
        #[arg(long, value_name = "TOKEN")]
        after: Option<String>,
        /// How long to wait for --after, e.g. 5s.
        #[arg(long)]
        timeout: Option<String>,
    },
    /// Apply field operations, a JSON array, e.g. '[{"op":"incr","field":"visits"}]'.
    Patch {
        #[command(flatten)]
        target: commands::Target,
        /// The operations.
        ops: String,
        #[command(flatten)]
        wait: commands::WaitArgs,
    },
    /// Delete a record.
    Delete {
        #[command(flatten)]
        target: commands::Target,
        #[command(flatten)]
        wait: commands::WaitArgs,
    },
    /// List collections, or the records of one.
    Ls(commands::ListArgs),
    /// Show the change feed.
    Changes(commands::ChangesArgs),
    /// Show this node, its peers and its collections.
    Status {
        #[command(flatten)]
        api: commands::ApiArgs,
    },
    /// Strongly consistent counters (stock): create, incr, decr, set, get, ls, members.
    #[command(subcommand)]
    Counter(counter_commands::CounterCommand),
}

#[derive(Subcommand)]
enum CertCommand {
    /// Create the cluster CA (keep ca.key off the nodes).
    Ca {
        /// The directory for ca.pem and ca.key.
        #[arg(long)]
        out: PathBuf,
        /// The cluster's name, in the CA certificate.
        #[arg(long, default_value = "trellis")]
        cluster: String,
    },
    /// Issue a node's certificate into its data directory.
    Node {
        /// The CA directory (`trellis cert ca --out`).
        #[arg(long)]
        ca_dir: PathBuf,
        /// The node's data directory (`trellis init --data`).
        #[arg(long)]
        data: PathBuf,
        /// The site's name, checked against the data directory.
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// The config file (TOML); see trellis.example.toml.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The data directory (same as --set data_dir=DIR).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Override a config key, e.g. --set api.listen=127.0.0.1:7381. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Log as JSON lines (same as --set log.format=json).
    #[arg(long)]
    log_json: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Init { data, name } => {
            let identity = DataDir::new(&data).init(&name)?;
            println!(
                "Created {} for site {} (replica {}).\nNext: trellis cert node --ca-dir CA_DIR --data {}",
                data.display(),
                identity.name,
                identity.id,
                data.display()
            );
            Ok(())
        }
        Command::Cert(CertCommand::Ca { out, cluster }) => {
            setup::create_ca(&out, &cluster)?;
            println!(
                "Created the cluster CA in {}: ca.pem (give to every node) and ca.key (keep safe, off the nodes).",
                out.display()
            );
            Ok(())
        }
        Command::Cert(CertCommand::Node { ca_dir, data, name }) => {
            let dir = DataDir::new(&data);
            setup::issue_node_cert(&ca_dir, &dir, name.as_deref())?;
            println!("Installed the node certificate in {}.", dir.tls().display());
            Ok(())
        }
        Command::Run(args) => run(args),
        Command::Quickstart { exit_after_demo } => quickstart(exit_after_demo),
        Command::Put {
            target,
            value,
            wait,
        } => commands::put(&target, &value, &wait),
        Command::Get {
            target,
            conflicts,
            after,
            timeout,
        } => commands::get(&target, conflicts, after.as_deref(), timeout.as_deref()),
        Command::Patch { target, ops, wait } => commands::patch(&target, &ops, &wait),
        Command::Delete { target, wait } => commands::delete(&target, &wait),
        Command::Ls(args) => commands::ls(&args),
        Command::Changes(args) => commands::changes(&args),
        Command::Status { api } => commands::status(&api),
        Command::Counter(command) => counter_commands::run(&command),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut overrides = args.overrides;
    if let Some(data) = args.data {
        overrides.push(format!(
            "data_dir={}",
            toml_string(&data.display().to_string())
        ));
    }
    if args.log_json {
        overrides.push("log.format=json".into());
    }
    if args.config.is_none() && !overrides.iter().any(|o| o.starts_with("data_dir=")) {
        anyhow::bail!("give a config file (--config trellis.toml) or at least --data DIR");
    }
    let config = NodeConfig::load(args.config.as_deref(), std::env::vars(), &overrides)?;
    logging::init(config.log.format, &config.log.level)?;
    runtime()?.block_on(async {
        let node = Node::start(config).await?;
        shutdown_signal().await;
        tracing::info!("shutting down");
        node.shutdown().await;
        Ok(())
    })
}

/// A TOML string literal for `text`.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(err) => {
                    tracing::warn!(%err, "cannot listen for SIGTERM; stop with Ctrl-C");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

fn quickstart(exit_after_demo: bool) -> anyhow::Result<()> {
    // The walkthrough's own output tells the story; the sites' logs would
    // bury it (elections at start, peers leaving at the end).
    logging::init(LogFormat::Pretty, "error,openraft=off")?;
    let dir = std::env::temp_dir().join(format!("trellis-quickstart-{}", std::process::id()));
    runtime()?.block_on(async {
        let mut out = std::io::stdout();
        let cluster = trellis_node::quickstart::demo(&dir, &mut out).await;
        let cluster = match cluster {
            Ok(cluster) => cluster,
            Err(err) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(err.into());
            }
        };
        if !exit_after_demo {
            println!(
                "\nThe sites run until Ctrl-C. Data lives in {}.",
                dir.display()
            );
            shutdown_signal().await;
        }
        cluster.stop().await;
        Ok(())
    })
}
