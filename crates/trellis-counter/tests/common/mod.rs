//! A test cluster of counter nodes on 127.0.0.1 with real QUIC.
//!
//! Every node is reached through a UDP relay of its own, and its address
//! in the voter list is the relay's. The relays let a test cut the
//! network between groups of nodes (a partition: datagrams across the cut
//! are dropped in both directions) and let a restarted node come back on
//! a new port behind the same address.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use trellis_counter::{CounterConfig, CounterError, Counters};
use trellis_crdt::ReplicaId;
use trellis_net::{BackoffConfig, ClusterCa, Endpoint, NetConfig, ALPN_COUNTER};

/// Network timeouts short enough for quick tests.
pub fn net_config() -> NetConfig {
    NetConfig {
        connect_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(3),
        keep_alive_interval: Duration::from_millis(500),
        backoff: BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
        },
        ..NetConfig::default()
    }
}

/// Which node each relay and endpoint belongs to, and the partition.
#[derive(Default)]
struct Links {
    /// Real endpoint address → node index.
    node_of: Mutex<HashMap<SocketAddr, usize>>,
    /// The side of the partition each node is on (all 0: no partition).
    side: Mutex<HashMap<usize, u8>>,
    /// Where each relay forwards to: the node's current endpoint.
    target: Mutex<HashMap<usize, SocketAddr>>,
}

impl Links {
    fn blocked(&self, from: SocketAddr, to: usize) -> bool {
        let Some(from) = self.node_of.lock().unwrap().get(&from).copied() else {
            return false;
        };
        let side = self.side.lock().unwrap();
        side.get(&from).copied().unwrap_or(0) != side.get(&to).copied().unwrap_or(0)
    }
}

/// One relay: datagrams to its address go to node `me`'s endpoint, through
/// one upstream socket per sender so answers find their way back.
async fn relay(main: Arc<UdpSocket>, me: usize, links: Arc<Links>) {
    let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, src)) = main.recv_from(&mut buf).await else {
            return;
        };
        if links.blocked(src, me) {
            continue;
        }
        let upstream = match upstreams.get(&src) {
            Some(socket) => socket.clone(),
            None => {
                let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
                upstreams.insert(src, socket.clone());
                let (back, main, links) = (socket.clone(), main.clone(), links.clone());
                tasks.spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok((n, _)) = back.recv_from(&mut buf).await {
                        if !links.blocked(src, me) {
                            let _ = main.send_to(&buf[..n], src).await;
                        }
                    }
                });
                socket
            }
        };
        let target = links.target.lock().unwrap().get(&me).copied();
        if let Some(target) = target {
            let _ = upstream.send_to(&buf[..n], target).await;
        }
    }
}

/// A fresh directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "trellis-counter-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running node.
pub struct Node {
    pub counters: Counters,
    pub endpoint: Endpoint,
}

/// Nodes 1..=n (index 0..n), the first `voters` of them voters.
pub struct Cluster {
    ca: ClusterCa,
    links: Arc<Links>,
    relays: JoinSet<()>,
    /// The advertised (relay) address of every node.
    pub addrs: Vec<SocketAddr>,
    pub nodes: Vec<Option<Node>>,
    voters: usize,
    dir: TempDir,
    /// Applied to every node's configuration.
    pub tune: fn(&mut CounterConfig),
}

/// Test timing: fast elections, 3 s request timeout.
pub fn fast(config: &mut CounterConfig) {
    config.request_timeout = Duration::from_secs(3);
    config.heartbeat_interval = Duration::from_millis(100);
    config.election_timeout = Duration::from_millis(500);
}

impl Cluster {
    /// Starts `n` nodes of which the first `voters` are the voters.
    pub async fn start(
        name: &str,
        n: usize,
        voters: usize,
        tune: fn(&mut CounterConfig),
    ) -> Cluster {
        let links = Arc::new(Links::default());
        let mut relays = JoinSet::new();
        let mut addrs = Vec::new();
        for me in 0..n {
            let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
            addrs.push(socket.local_addr().unwrap());
            relays.spawn(relay(socket, me, links.clone()));
        }
        let mut cluster = Cluster {
            ca: ClusterCa::generate("counter-test").unwrap(),
            links,
            relays,
            addrs,
            nodes: (0..n).map(|_| None).collect(),
            voters,
            dir: TempDir::new(name),
            tune,
        };
        for i in 0..n {
            cluster.start_node(i).await;
        }
        cluster
    }

    pub fn id(i: usize) -> ReplicaId {
        ReplicaId(i as u64 + 1)
    }

    pub fn index(id: ReplicaId) -> usize {
        id.0 as usize - 1
    }

    /// Starts (or restarts, on its old data) node `i`.
    pub async fn start_node(&mut self, i: usize) {
        let identity = self.ca.issue(&format!("site{i}"), Self::id(i)).unwrap();
        let mut builder = Endpoint::builder(identity, self.ca.trust(), net_config());
        let incoming = builder.serve(ALPN_COUNTER).unwrap();
        let endpoint = builder.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        self.links
            .node_of
            .lock()
            .unwrap()
            .insert(endpoint.local_addr(), i);
        self.links
            .target
            .lock()
            .unwrap()
            .insert(i, endpoint.local_addr());
        let voters: BTreeMap<ReplicaId, SocketAddr> = (0..self.voters)
            .map(|v| (Self::id(v), self.addrs[v]))
            .collect();
        let mut config = CounterConfig::new(voters, self.dir.0.join(format!("node{i}")));
        (self.tune)(&mut config);
        let counters = Counters::start(config, endpoint.clone(), incoming)
            .await
            .unwrap();
        self.nodes[i] = Some(Node { counters, endpoint });
    }

    /// Stops node `i` abruptly: its Raft task, RPC server and endpoint
    /// go away; what it fsynced stays on disk.
    pub async fn kill(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.counters.shutdown().await;
            node.endpoint.close();
        }
    }

    pub fn node(&self, i: usize) -> &Counters {
        &self.nodes[i].as_ref().unwrap().counters
    }

    /// Puts the nodes in `group` on one side of a partition, the rest on
    /// the other.
    pub fn partition(&self, group: &[usize]) {
        let mut side = self.links.side.lock().unwrap();
        side.clear();
        for &i in group {
            side.insert(i, 1);
        }
    }

    /// Removes the partition.
    pub fn heal(&self) {
        self.links.side.lock().unwrap().clear();
    }

    /// Waits until the running nodes among `among` agree on a leader in
    /// `among`, and returns its index.
    pub async fn leader(&self, among: &[usize]) -> usize {
        for _ in 0..300 {
            let views: Vec<_> = among
                .iter()
                .filter_map(|&i| self.nodes[i].as_ref())
                .map(|node| node.counters.status().leader)
                .collect();
            if let Some(Some(leader)) = views.first() {
                if views.iter().all(|view| *view == Some(*leader))
                    && among.contains(&Self::index(*leader))
                {
                    return Self::index(*leader);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no leader agreed on among nodes {among:?}");
    }

    /// Waits until node `i` has applied at least `index`.
    pub async fn caught_up(&self, i: usize, index: u64) {
        for _ in 0..400 {
            if self.node(i).status().last_applied >= Some(index) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "node {i} did not apply index {index}: {:?}",
            self.node(i).status()
        );
    }
}

/// Retries a call while it fails with `NoQuorum` (for set-up steps that
/// may run during an election).
pub async fn settle<T, F, Fut>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CounterError>>,
{
    for _ in 0..10 {
        match call().await {
            Ok(value) => return value,
            Err(CounterError::NoQuorum { .. }) => continue,
            Err(err) => panic!("{err}"),
        }
    }
    panic!("the cluster never reached quorum");
}
