//! `Node`: one site's running node: the store, the QUIC endpoint,
//! replication and the HTTP API, started together and stopped together.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use trellis_counter::{CounterConfig, Counters};
use trellis_gossip::driver::{self, DriverConfig, GossipHandle};
use trellis_net::{Endpoint, NetConfig, ALPN_COUNTER, ALPN_GOSSIP};
use trellis_store::{Mutation, RedbStore, StoreError};

use crate::api::{router, AppState, BoundedListener};
use crate::causal::CausalToken;
use crate::write::{self, WaitLevel, WriteError, WriteOutcome};
use crate::{DataDir, NodeConfig, NodeError};

/// How long shutdown waits for peers to hear the endpoint close.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// A running node.
pub struct Node {
    site: String,
    api_addr: SocketAddr,
    peer_addr: SocketAddr,
    gossip: GossipHandle<RedbStore>,
    endpoint: Endpoint,
    stop_api: oneshot::Sender<()>,
    api_task: JoinHandle<()>,
    counters: Option<Counters>,
}

impl Node {
    /// Opens the data directory's store and certificates, binds the QUIC
    /// endpoint and the API, and starts replicating. Must run inside a
    /// multi-threaded tokio runtime.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let data = DataDir::new(&config.data_dir);
        let identity = data.identity()?;
        let id = identity.replica_id()?;
        let (certificate, trust) = data.tls_material()?;
        let store_config = config.store.store_config();
        let path = data.records();
        let store = tokio::task::spawn_blocking(move || RedbStore::open(path, id, store_config))
            .await
            .map_err(|err| NodeError::Setup(format!("opening the store failed: {err}")))??;

        let voters = config.counter.voter_map()?;
        let mut builder = Endpoint::builder(certificate, trust, NetConfig::default());
        let incoming = builder.serve(ALPN_GOSSIP)?;
        let counter_incoming = if voters.is_empty() {
            None
        } else {
            Some(builder.serve(ALPN_COUNTER)?)
        };
        let endpoint = builder.bind(config.peer.listen)?;
        let peer_addr = endpoint.local_addr();
        let mut gossip_config =
            DriverConfig::new(identity.name.clone(), config.peer.advertised(peer_addr));
        gossip_config.seeds = config.peer.seeds.clone();
        gossip_config.gossip.reconcile_every_ms =
            config.peer.reconcile_interval.as_millis().max(1) as u64;
        gossip_config.gossip.jitter_ms = gossip_config.gossip.reconcile_every_ms / 4;
        gossip_config.gossip.seed = id.0;
        let gossip =
            driver::start(Arc::new(store), endpoint.clone(), incoming, gossip_config).await?;
        let counters = match counter_incoming {
            Some(incoming) => {
                let mut counter_config = CounterConfig::new(voters, data.counters());
                counter_config.request_timeout = config.counter.request_timeout;
                Some(Counters::start(counter_config, endpoint.clone(), incoming).await?)
            }
            None => None,
        };

        let listener = tokio::net::TcpListener::bind(config.api.listen)
            .await
            .map_err(|err| NodeError::Bind {
                what: "the HTTP API (api.listen)",
                addr: config.api.listen,
                source: err,
            })?;
        let api_addr = listener.local_addr().map_err(|err| NodeError::Bind {
            what: "the HTTP API (api.listen)",
            addr: config.api.listen,
            source: err,
        })?;
        let state = AppState {
            gossip: gossip.clone(),
            site: identity.name.clone(),
            limits: config.store.store_config().limits,
            api: Arc::new(config.api.clone()),
            started: Instant::now(),
            counters: counters.clone(),
            consistency: config.consistency.clone(),
            started_ms: crate::clock::now_ms(),
        };
        let (stop_api, stopped) = oneshot::channel();
        let app = router(state);
        let listener = BoundedListener::new(
            listener,
            config.api.max_connections,
            config.api.idle_timeout,
        );
        let api_task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(err) = serve.await {
                tracing::error!(%err, "the HTTP API stopped");
            }
        });
        if config.api.tokens.is_empty() {
            tracing::info!(addr = %api_addr, "no api.tokens configured: the API is unauthenticated and listens on loopback only");
        }
        tracing::info!(
            site = %identity.name,
            id = %id,
            api = %format!("http://{api_addr}"),
            peer = %peer_addr,
            "node started"
        );
        Ok(Node {
            site: identity.name,
            api_addr,
            peer_addr,
            gossip,
            endpoint,
            stop_api,
            api_task,
            counters,
        })
    }

    /// The site's name.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// Where the HTTP API listens.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The API's base URL, `http://IP:PORT`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    /// Where the QUIC endpoint listens.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// Replication, for embedders: write through it to have writes pushed.
    pub fn gossip(&self) -> &GossipHandle<RedbStore> {
        &self.gossip
    }

    /// Writes `mutation` to `collection/key` durably here, then waits up
    /// to `timeout` until `level` is met (see [`write::write`]).
    pub async fn write(
        &self,
        collection: &str,
        key: &str,
        mutation: Mutation,
        level: WaitLevel,
        timeout: Duration,
    ) -> Result<WriteOutcome, WriteError> {
        write::write(&self.gossip, collection, key, mutation, level, timeout).await
    }

    /// Waits up to `timeout` until this site has the write `token` names;
    /// returns whether it does.
    pub async fn wait_for(
        &self,
        token: &CausalToken,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        token.wait_until_held(&**self.gossip.store(), timeout).await
    }

    /// The counter service, if `counter.voters` is set.
    pub fn counters(&self) -> Option<&Counters> {
        self.counters.as_ref()
    }

    /// Stops gracefully: the API finishes in-flight requests, replication
    /// stops, the QUIC endpoint closes (peers are told), and the store
    /// commits what is pending and closes.
    pub async fn shutdown(self) {
        let _ = self.stop_api.send(());
        let _ = self.api_task.await;
        if let Some(counters) = &self.counters {
            counters.shutdown().await;
        }
        self.gossip.shutdown().await;
        self.endpoint.close();
        let _ = tokio::time::timeout(CLOSE_GRACE, self.endpoint.wait_idle()).await;
        let store = Arc::clone(self.gossip.store());
        drop(self.gossip);
        // Every other holder is gone; closing commits and fsyncs what is left.
        tokio::task::spawn_blocking(move || store.close())
            .await
            .ok();
        tracing::info!(site = %self.site, "node stopped");
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("site", &self.site)
            .field("api", &self.api_addr)
            .field("peer", &self.peer_addr)
            .finish()
    }
}
