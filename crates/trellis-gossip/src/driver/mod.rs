//! The tokio driver: joins the sans-IO [`Gossip`](crate::node::Gossip)
//! core to a [`trellis_net`] endpoint and a [`Store`].
//!
//! [`start`] spawns one task (the *driver*) that owns the protocol state
//! and everything else reports to:
//!
//! - outgoing links (`link.rs`): one per peer, dialed through the
//!   [`ConnectionPool`] (so a peer that stops answering is marked down and
//!   backed off), writing queued frames on one stream;
//! - incoming connections (`inbound.rs`): every peer's stream of
//!   messages, read with the node's frame size limit;
//! - merges: each [`Action::Merge`] is submitted to the store and its
//!   completion, once durable, is fed back as [`Event::Merged`] (so a
//!   push is acknowledged only after it is on disk here);
//! - timers: the protocol's tick, and a slower membership pass that reads
//!   [`MEMBERS`](crate::membership::MEMBERS), probes seed addresses and
//!   dials every known node that has no link.
//!
//! The driver never blocks on a peer: frames for a slow peer queue up to
//! a byte limit and are dropped past it (reconciliation repairs what they
//! carried). Inputs wait in a bounded queue, and at most
//! [`DriverConfig::max_merges_in_flight`] merges are outstanding.

mod actor;
mod inbound;
mod link;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use trellis_crdt::ReplicaId;
use trellis_net::{Endpoint, NetError, PeerConnection, PeerStatus};
use trellis_store::{Applied, Merged, Mutation, Origin, Store, StoreError};

use crate::membership::{member, Member, MEMBERS};
use crate::messages::Message;
use crate::node::{GossipConfig, MergeKind, PeerStats};

/// How a node's gossip driver runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverConfig {
    /// The protocol's own settings.
    pub gossip: GossipConfig,
    /// This site's name, written to the membership entry.
    pub site_name: String,
    /// The address other nodes dial to reach this one, written to the
    /// membership entry. Usually the endpoint's address; differs behind
    /// NAT or when bound to `0.0.0.0`.
    pub advertise: SocketAddr,
    /// Addresses of nodes to contact first. Their ids are learned from
    /// their certificates; listing this node itself is harmless.
    pub seeds: Vec<SocketAddr>,
    /// How often the protocol's timer runs. Default 100 ms.
    pub tick: Duration,
    /// How often membership is re-read and missing links dialed.
    /// Default 500 ms.
    pub dial_every: Duration,
    /// The most bytes queued for one peer before messages to it are
    /// dropped. Default 64 MiB.
    pub peer_queue_bytes: usize,
    /// The most remote merges waiting for the store at once. Default 1024.
    pub max_merges_in_flight: usize,
    /// Inputs (received messages, link reports, local writes) waiting for
    /// the driver. Default 4096.
    pub input_queue: usize,
}

impl DriverConfig {
    /// Defaults for the site `site_name` reachable at `advertise`.
    pub fn new(site_name: impl Into<String>, advertise: SocketAddr) -> Self {
        DriverConfig {
            gossip: GossipConfig::default(),
            site_name: site_name.into(),
            advertise,
            seeds: Vec::new(),
            tick: Duration::from_millis(100),
            dial_every: Duration::from_millis(500),
            peer_queue_bytes: 64 << 20,
            max_merges_in_flight: 1024,
            input_queue: 4096,
        }
    }

    /// Checks every value, naming the first one out of range.
    pub fn validate(&self) -> Result<(), DriverError> {
        let fail = |reason: &str| Err(DriverError::Config(reason.to_owned()));
        if self.site_name.is_empty() {
            return fail("site_name must not be empty");
        }
        if self.tick.is_zero() || self.dial_every.is_zero() {
            return fail("tick and dial_every must be non-zero");
        }
        if self.gossip.reconcile_every_ms == 0 {
            return fail("gossip.reconcile_every_ms must be at least 1");
        }
        if self.peer_queue_bytes == 0 || self.max_merges_in_flight == 0 || self.input_queue == 0 {
            return fail(
                "peer_queue_bytes, max_merges_in_flight and input_queue must be at least 1",
            );
        }
        Ok(())
    }
}

/// Why the driver could not start.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A setting is out of range.
    #[error("invalid gossip configuration: {0}")]
    Config(String),
    /// The store and the certificate name different nodes.
    #[error(
        "the data directory belongs to replica {store} but the node certificate is for {certificate}; \
         use the certificate issued for this data directory's replica id"
    )]
    IdentityMismatch {
        /// The store's replica id.
        store: ReplicaId,
        /// The certificate's node id.
        certificate: ReplicaId,
    },
    /// Writing this node's membership entry failed.
    #[error("cannot record this node in the membership collection: {0}")]
    Store(#[from] StoreError),
    /// The transport refused something.
    #[error(transparent)]
    Net(#[from] NetError),
}

/// One peer as the driver sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's node id.
    pub id: ReplicaId,
    /// Its membership entry, once known.
    pub member: Option<Member>,
    /// Whether an outgoing link is up.
    pub linked: bool,
    /// How the connection pool sees it (down and backing off, say).
    pub status: PeerStatus,
    /// The protocol's figures: last reconciliation, bytes, repairs,
    /// propagation delays.
    pub stats: PeerStats,
}

/// The driver's state, for status pages and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GossipStatus {
    /// Every peer known, in id order.
    pub peers: Vec<PeerInfo>,
    /// Messages dropped because a peer's queue was full or it had no
    /// link; reconciliation repairs what they carried.
    pub dropped_messages: u64,
    /// Remote changes the store refused (clock skew, limits, a closed
    /// store); each is logged.
    pub refused_merges: u64,
}

/// What reaches the driver task.
#[derive(Debug)]
enum Input {
    /// A message from a peer (its id is from its certificate).
    Received {
        from: ReplicaId,
        message: Message,
        bytes: usize,
    },
    /// A peer connected to this node from `addr`.
    Dialed { peer: ReplicaId, addr: SocketAddr },
    /// A seed address turned out to be node `peer`.
    SeedFound { addr: SocketAddr, peer: ReplicaId },
    /// A seed address could not be reached.
    SeedFailed { addr: SocketAddr },
    /// An outgoing link is ready.
    LinkUp { peer: ReplicaId, generation: u64 },
    /// An outgoing link ended, with the error if it failed.
    LinkDown {
        peer: ReplicaId,
        generation: u64,
        error: Option<String>,
    },
    /// A local write is durable; push its delta, and report the peers
    /// that acknowledge it on `acks` if given.
    LocalWrite {
        collection: String,
        key: String,
        applied: Box<Applied>,
        acks: Option<mpsc::UnboundedSender<ReplicaId>>,
    },
    /// A remote merge finished.
    Merged {
        from: ReplicaId,
        kind: MergeKind,
        origin: Origin,
        result: Result<Merged, StoreError>,
    },
    /// Report the driver's state.
    Status(oneshot::Sender<GossipStatus>),
    /// Stop.
    Shutdown(oneshot::Sender<()>),
}

/// Starts gossip for the node whose store is `store` and whose QUIC
/// endpoint is `endpoint`; `incoming` is the endpoint's queue of
/// [`ALPN_GOSSIP`](trellis_net::ALPN_GOSSIP) connections. Must be called
/// inside a tokio runtime.
///
/// Writes this node's membership entry first (if it changed), so that it
/// spreads with the first reconciliation.
pub async fn start<S: Store>(
    store: Arc<S>,
    endpoint: Endpoint,
    incoming: mpsc::Receiver<PeerConnection>,
    config: DriverConfig,
) -> Result<GossipHandle<S>, DriverError> {
    config.validate()?;
    let me = endpoint.local_id();
    if store.replica_id() != me {
        return Err(DriverError::IdentityMismatch {
            store: store.replica_id(),
            certificate: me,
        });
    }
    let entry = Member {
        id: me,
        addr: config.advertise,
        name: config.site_name.clone(),
    };
    if member(&*store, me).as_ref() != Some(&entry) {
        store
            .apply(MEMBERS, &entry.key(), Mutation::Put(entry.to_json()))
            .await?;
    }
    let (inputs, receiver) = mpsc::channel(config.input_queue);
    let driver = actor::Driver::new(Arc::clone(&store), endpoint, config, inputs.clone())?;
    let task = tokio::spawn(async move {
        if let Some(done) = driver.run(receiver, incoming).await {
            // The driver is dropped by now: the store is no longer held.
            let _ = done.send(());
        }
    });
    Ok(GossipHandle {
        store,
        inputs,
        task: Arc::new(AbortOnDrop(task.abort_handle())),
    })
}

/// Talks to a running driver. Cheap to clone; the driver stops when
/// [`shutdown`](Self::shutdown) is called or the last clone is dropped.
pub struct GossipHandle<S> {
    store: Arc<S>,
    inputs: mpsc::Sender<Input>,
    task: Arc<AbortOnDrop>,
}

impl<S> Clone for GossipHandle<S> {
    fn clone(&self) -> Self {
        GossipHandle {
            store: Arc::clone(&self.store),
            inputs: self.inputs.clone(),
            task: Arc::clone(&self.task),
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<S: Store> GossipHandle<S> {
    /// The store gossip replicates.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// Applies a local mutation and, once it is durable, pushes its delta
    /// to connected peers. Writes made to the store directly reach peers
    /// only through reconciliation.
    pub async fn apply(
        &self,
        collection: &str,
        key: &str,
        mutation: Mutation,
    ) -> Result<Applied, StoreError> {
        self.write(collection, key, mutation, None).await
    }

    /// Like [`apply`](Self::apply), and also reports each peer that
    /// acknowledges holding the write durably (its eager push was merged
    /// and fsynced there). Only peers connected at the time of the write
    /// (up to the push fan-out) are pushed to; the others get the write by
    /// reconciliation, unreported.
    pub async fn apply_tracked(
        &self,
        collection: &str,
        key: &str,
        mutation: Mutation,
    ) -> Result<(Applied, mpsc::UnboundedReceiver<ReplicaId>), StoreError> {
        let (acks, acknowledged) = mpsc::unbounded_channel();
        let applied = self.write(collection, key, mutation, Some(acks)).await?;
        Ok((applied, acknowledged))
    }

    async fn write(
        &self,
        collection: &str,
        key: &str,
        mutation: Mutation,
        acks: Option<mpsc::UnboundedSender<ReplicaId>>,
    ) -> Result<Applied, StoreError> {
        let applied = self.store.apply(collection, key, mutation).await?;
        let write = Input::LocalWrite {
            collection: collection.to_owned(),
            key: key.to_owned(),
            applied: Box::new(applied.clone()),
            acks,
        };
        // A stopped driver cannot push; the write is durable regardless and
        // reconciliation spreads it after a restart.
        let _ = self.inputs.send(write).await;
        Ok(applied)
    }

    /// The driver's view of its peers, or `None` if it has stopped.
    pub async fn status(&self) -> Option<GossipStatus> {
        let (reply, answer) = oneshot::channel();
        self.inputs.send(Input::Status(reply)).await.ok()?;
        answer.await.ok()
    }

    /// Stops the driver and every task it started, and waits for that.
    /// The endpoint stays open (it may serve other protocols).
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self.inputs.send(Input::Shutdown(reply)).await.is_ok() {
            let _ = done.await;
        }
        self.task.0.abort();
    }
}

/// A node that speaks only gossip: its own endpoint bound at `bind`
/// (port 0 picks one) and a driver over `store`, advertising the bound
/// address. What tests, benchmarks and gossip-only embedders need; a
/// node that also serves counters builds the endpoint itself and calls
/// [`start`].
pub async fn start_standalone<S: Store>(
    identity: trellis_net::NodeIdentity,
    trust: trellis_net::ClusterTrust,
    net: trellis_net::NetConfig,
    bind: SocketAddr,
    store: S,
    configure: impl FnOnce(&mut DriverConfig),
) -> Result<(GossipHandle<S>, Endpoint), DriverError> {
    let site = identity.site_name().to_owned();
    let mut builder = Endpoint::builder(identity, trust, net);
    let incoming = builder.serve(trellis_net::ALPN_GOSSIP)?;
    let endpoint = builder.bind(bind)?;
    let mut config = DriverConfig::new(site, endpoint.local_addr());
    configure(&mut config);
    let handle = start(Arc::new(store), endpoint.clone(), incoming, config).await?;
    Ok((handle, endpoint))
}
