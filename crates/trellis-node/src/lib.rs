//! # trellis-node
//!
//! One Trellis node per site: the record store, replication to the other
//! sites over QUIC, and the HTTP API the site's systems talk to. This
//! crate is both the `trellis` binary and a library for embedding and
//! tests.
//!
//! ```no_run
//! use trellis_node::{setup, DataDir, Node, NodeConfig};
//!
//! # async fn example() -> Result<(), trellis_node::NodeError> {
//! // Once: a cluster CA, and a data directory with a certificate per site.
//! let ca_dir = std::path::Path::new("ca");
//! setup::create_ca(ca_dir, "acme")?;
//! let berlin = DataDir::new("berlin");
//! berlin.init("berlin")?;
//! setup::issue_node_cert(ca_dir, &berlin, Some("berlin"))?;
//!
//! // Every start: a config (TOML, env, flags; here in code) and run.
//! let mut config = NodeConfig::new("berlin");
//! config.api.listen = "127.0.0.1:7380".parse().expect("address");
//! let node = Node::start(config).await?;
//! println!("API at {}", node.api_url());
//! node.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Map
//! - `config.rs`: [`NodeConfig`], loaded from TOML, `TRELLIS_…` variables
//!   and `--set` flags, with errors that name the key.
//! - `data_dir.rs`: [`DataDir`], the data directory's layout and identity.
//! - [`setup`]: the cluster CA and node certificates.
//! - `node.rs`: [`Node`], start and graceful shutdown.
//! - [`api`]: the HTTP API.
//! - [`causal`]: causal tokens, for read-your-writes across sites;
//!   [`write`]: writes that wait for a number of sites; [`window`]:
//!   whether the consistency window is met.
//! - [`client`]: a small HTTP client for the CLI's subcommands.
//! - [`quickstart`]: three sites on loopback, a walkthrough.

#![forbid(unsafe_code)]

pub mod api;
pub mod causal;
pub mod client;
mod clock;
mod config;
mod data_dir;
mod node;
pub mod quickstart;
pub mod setup;
pub mod window;
pub mod write;

pub use config::{
    ApiConfig, ConfigError, ConsistencySection, CounterSection, DurabilityMode, LogConfig,
    LogFormat, NodeConfig, PeerConfig, StoreSection,
};
pub use data_dir::{check_site_name, DataDir, Identity};
pub use node::Node;

use std::net::SocketAddr;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory, identity or certificates are missing or wrong.
    #[error("{0}")]
    Setup(String),
    /// The store could not open.
    #[error("cannot open the record store: {0}")]
    Store(#[from] trellis_store::StoreError),
    /// The QUIC endpoint could not start.
    #[error("cannot start the peer endpoint (peer.listen): {0}")]
    Net(#[from] trellis_net::NetError),
    /// Replication could not start.
    #[error("cannot start replication: {0}")]
    Gossip(#[from] trellis_gossip::driver::DriverError),
    /// The counter service could not start.
    #[error("cannot start the counter service: {0}")]
    Counter(#[from] trellis_counter::CounterError),
    /// A listening socket could not be bound.
    #[error("cannot bind {what} at {addr}: {source}; is another process using it?")]
    Bind {
        /// What was being bound.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}
