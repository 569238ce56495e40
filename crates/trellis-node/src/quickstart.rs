//! `trellis quickstart`: three sites on loopback, in temporary
//! directories, with a generated CA; a lead written at the first site is
//! shown arriving at the other two, with the measured delay, and the three
//! sites then sell one item of stock each, concurrently, until it runs
//! out: exactly the stock is sold.

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
        // Every site is a counter voter, so each needs the others' peer
        // addresses before it starts: pick free ports first.
        let mut sites = Vec::new();
        for site in SITES {
            let data = DataDir::new(dir.join(site));
            let identity = data.init(site)?;
            setup::issue_node_cert(&ca_dir, &data, Some(site))?;
            sites.push((data, identity.id, free_udp_port()?));
        }
        let voters: Vec<String> = sites
            .iter()
            .map(|(_, id, addr)| format!("{id}@{addr}"))
            .collect();
        let mut nodes: Vec<Node> = Vec::new();
        for (data, _, peer_addr) in &sites {
            let mut config = NodeConfig::new(data.root());
            config.api.listen = ([127, 0, 0, 1], 0).into();
            config.peer.listen = *peer_addr;
            config.peer.reconcile_interval = Duration::from_millis(500);
            config.counter.voters = voters.clone();
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
        let mut stopping = tokio::task::JoinSet::new();
        for node in self.nodes {
            stopping.spawn(node.shutdown());
        }
        while stopping.join_next().await.is_some() {}
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback UDP address free at the moment of asking.
fn free_udp_port() -> Result<std::net::SocketAddr, NodeError> {
    let socket = std::net::UdpSocket::bind(("127.0.0.1", 0))
        .and_then(|socket| socket.local_addr())
        .map_err(|err| {
            NodeError::Setup(format!("cannot find a free UDP port on 127.0.0.1: {err}"))
        })?;
    Ok(socket)
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

    sell_stock(&clients, out).await?;

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
    writeln!(
        out,
        "  curl -X POST {b}/v1/counters/sku-42/decrement -d '{{\"by\": 1, \"id\": \"order-1\"}}'"
    )?;
    writeln!(out, "  curl {a}/v1/status")?;
    out.flush()?;
    Ok(cluster)
}

/// The stock demo: a counter of `STOCK` items, and every site selling one
/// at a time, concurrently, until told there is none left.
async fn sell_stock(clients: &[Client], out: &mut impl Write) -> Result<(), QuickstartError> {
    const STOCK: i64 = 10;
    writeln!(
        out,
        "\nStock is strongly consistent: sku-42 starts at {STOCK}, and all three sites sell from it at once ..."
    )?;
    call(
        &clients[0],
        "POST",
        "/v1/counters/sku-42".into(),
        Some(json!({"initial": STOCK, "min": 0})),
    )
    .await?;
    let mut sellers = tokio::task::JoinSet::new();
    for (site, client) in SITES.iter().zip(clients) {
        let client = client.clone();
        sellers.spawn(async move {
            let mut sold = 0;
            let mut refused = 0;
            for order in 0.. {
                let body = json!({"by": 1, "id": format!("{site}-order-{order}")});
                match call(
                    &client,
                    "POST",
                    "/v1/counters/sku-42/decrement".into(),
                    Some(body),
                )
                .await
                {
                    Ok(_) => sold += 1,
                    Err(ClientError::Api { code, .. }) if code == "insufficient" => {
                        refused += 1;
                        break;
                    }
                    Err(err) => return Err(err),
                }
            }
            Ok::<_, ClientError>((*site, sold, refused))
        });
    }
    let mut total = 0;
    let mut results = Vec::new();
    while let Some(result) = sellers.join_next().await {
        let (site, sold, refused) =
            result.map_err(|err| QuickstartError::Timeout(format!("a seller failed: {err}")))??;
        total += sold;
        results.push((site, sold, refused));
    }
    results.sort();
    for (site, sold, refused) in results {
        writeln!(
            out,
            "  {site:<7} sold {sold}, then was refused ({refused} x insufficient)"
        )?;
    }
    let left = call(&clients[2], "GET", "/v1/counters/sku-42".into(), None).await?;
    writeln!(
        out,
        "  {total} sold in all, {} left: exactly the stock, never more",
        left["value"]
    )?;
    Ok(())
}
