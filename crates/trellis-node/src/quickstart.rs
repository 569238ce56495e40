//! `trellis quickstart`: three sites on loopback, in temporary
//! directories, with a generated CA; a lead written at the first site is
//! shown arriving at the other two, with the measured delay.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{encode, Client, ClientError};
use crate::{setup, DataDir, Node, NodeConfig, NodeError};

/// The sites, the first one first.
pub const SITES: [&str; 3] = ["berlin", "lisbon", "oslo"];

/// Why the walkthrough failed.
#[derive(Debug, thiserror::Error)]
pub enum QuickstartError {
    /// A node did not start.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// An API call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Something did not happen in time.
    #[error("{0}")]
    Timeout(String),
    /// Writing to the terminal failed.
    #[error("cannot write the walkthrough: {0}")]
    Output(#[from] std::io::Error),
}

/// The three running sites and where they live.
pub struct Cluster {
    /// The nodes, in [`SITES`] order.
    pub nodes: Vec<Node>,
    dir: PathBuf,
}

impl Cluster {
    /// Creates a CA and three sites under `dir` and starts them, the
    /// second and third seeded with the first.
    pub async fn start(dir: &Path) -> Result<Cluster, NodeError> {
        let ca_dir = dir.join("ca");
        setup::create_ca(&ca_dir, "quickstart")?;
        let mut nodes: Vec<Node> = Vec::new();
        for site in SITES {
            let data = DataDir::new(dir.join(site));
            data.init(site)?;
            setup::issue_node_cert(&ca_dir, &data, Some(site))?;
            let mut config = NodeConfig::new(data.root());
            config.api.listen = ([127, 0, 0, 1], 0).into();
            config.peer.listen = ([127, 0, 0, 1], 0).into();
            config.peer.reconcile_interval = Duration::from_millis(500);
            if let Some(first) = nodes.first() {
                config.peer.seeds = vec![first.peer_addr()];
            }
            nodes.push(Node::start(config).await?);
        }
        Ok(Cluster {
            nodes,
            dir: dir.to_owned(),
        })
    }

    /// Stops every node and removes the directories.
    pub async fn stop(self) {
        for node in self.nodes {
            node.shutdown().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Calls the API off the async runtime (the client blocks).
async fn call(
    client: &Client,
    method: &'static str,
    path: String,
    body: Option<Value>,
) -> Result<Value, ClientError> {
    let client = client.clone();
    tokio::task::spawn_blocking(move || client.json(method, &path, body.as_ref()))
        .await
        .unwrap_or_else(|err| {
            Err(ClientError::Transport {
                url: String::new(),
                reason: format!("the request task failed: {err}"),
            })
        })
}

/// Waits until every site links to the other two.
async fn wait_linked(clients: &[Client]) -> Result<(), QuickstartError> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut linked = 0;
        for client in clients {
            let status = call(client, "GET", "/v1/status".into(), None).await?;
            linked += status["peers"].as_array().map_or(0, |peers| {
                peers.iter().filter(|p| p["state"] == "up").count()
            });
        }
        if linked == clients.len() * (clients.len() - 1) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(QuickstartError::Timeout(
                "the sites did not connect within 20 s; check the logs".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the walkthrough, printing to `out`. Returns the running cluster
/// (for the caller to keep or stop).
pub async fn demo(dir: &Path, out: &mut impl Write) -> Result<Cluster, QuickstartError> {
    let cluster = Cluster::start(dir).await?;
    writeln!(out, "Three Trellis sites are running on this machine:")?;
    for node in &cluster.nodes {
        writeln!(out, "  {:<7} {}", node.site(), node.api_url())?;
    }
    out.flush()?;
    let clients: Vec<Client> = cluster
        .nodes
        .iter()
        .map(|node| Client::new(&node.api_url(), None, Duration::from_secs(10)))
        .collect();
    wait_linked(&clients).await?;

    let key = "lead-1001";
    let lead = json!({"name": "Ada Lovelace", "email": "ada@example.com", "source": "web form", "stage": "new"});
    let path = format!("/v1/collections/leads/records/{}", encode(key));
    writeln!(out, "\nWriting lead {key} at {} ...", SITES[0])?;
    let written = Instant::now();
    call(&clients[0], "PUT", path.clone(), Some(lead)).await?;
    let acknowledged = written.elapsed();
    writeln!(
        out,
        "  {:<7} acknowledged after {:.1} ms (durable on disk there)",
        SITES[0],
        acknowledged.as_secs_f64() * 1e3
    )?;
    for (site, client) in SITES.iter().zip(&clients).skip(1) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match call(client, "GET", path.clone(), None).await {
                Ok(record) => {
                    writeln!(
                        out,
                        "  {site:<7} has it after {:.1} ms: {}",
                        written.elapsed().as_secs_f64() * 1e3,
                        record["value"]
                    )?;
                    break;
                }
                Err(ClientError::Api { status: 404, .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(err) => return Err(err.into()),
            }
        }
    }

    let a = cluster.nodes[0].api_url();
    let b = cluster.nodes[1].api_url();
    writeln!(out, "\nTry it yourself:")?;
    writeln!(
        out,
        "  curl -X PUT {a}/v1/collections/leads/records/lead-2002 -d '{{\"name\": \"Grace Hopper\"}}'"
    )?;
    writeln!(out, "  curl {b}/v1/collections/leads/records/lead-2002")?;
    writeln!(
        out,
        "  curl -X PATCH {b}/v1/collections/leads/records/lead-2002 -d '{{\"ops\": [{{\"op\": \"incr\", \"field\": \"visits\"}}]}}'"
    )?;
    writeln!(out, "  curl '{a}/v1/changes?since=0'")?;
    writeln!(out, "  curl {a}/v1/status")?;
    out.flush()?;
    Ok(cluster)
}
