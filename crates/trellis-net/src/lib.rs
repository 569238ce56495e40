//! # trellis-net
//!
//! The QUIC transport of a Trellis node: **one UDP port and one endpoint
//! per node**, mutual TLS against the cluster CA, connections routed by
//! ALPN protocol ([`ALPN_GOSSIP`], [`ALPN_COUNTER`]), and length-prefixed
//! frames carrying [`trellis_crdt::codec`] messages.
//!
//! ```
//! use std::net::SocketAddr;
//! use trellis_crdt::ReplicaId;
//! use trellis_net::{write_frame, ClusterCa, Endpoint, NetConfig, ALPN_GOSSIP};
//!
//! // `trellis cert ca` and `trellis cert node` do this once per cluster / site.
//! let ca = ClusterCa::generate("acme")?;
//! let berlin = ca.issue("berlin", ReplicaId(1))?;
//! let lisbon = ca.issue("lisbon", ReplicaId(2))?;
//!
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! runtime.block_on(async {
//!     let localhost: SocketAddr = "127.0.0.1:0".parse()?;
//!     let mut builder = Endpoint::builder(berlin, ca.trust(), NetConfig::default());
//!     let mut gossip = builder.serve(ALPN_GOSSIP)?;
//!     let server = builder.bind(localhost)?;
//!     let client = Endpoint::builder(lisbon, ca.trust(), NetConfig::default()).bind(localhost)?;
//!
//!     // Lisbon dials Berlin expecting node 1: Berlin's certificate must say so.
//!     let to_berlin = client.connect(server.local_addr(), ALPN_GOSSIP, ReplicaId(1)).await?;
//!     let (mut send, _recv) = to_berlin.open_bi().await?;
//!     write_frame(&mut send, &("hello", 42u64)).await?;
//!     send.finish()?;
//!
//!     // Berlin learns who called from the certificate, not from the message.
//!     let from_lisbon = gossip.recv().await.ok_or("endpoint closed")?;
//!     assert_eq!(from_lisbon.peer(), ReplicaId(2));
//!     let (_send, mut recv) = from_lisbon.accept_bi().await?;
//!     let message: Option<(String, u64)> = from_lisbon.read_frame(&mut recv).await?;
//!     assert_eq!(message, Some(("hello".to_owned(), 42)));
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Map
//!
//! - `certs.rs`: [`ClusterCa`], [`NodeIdentity`], [`ClusterTrust`], made
//!   with rcgen, loaded and saved as PEM (`pem_file.rs`:
//!   [`read_pem_file`], [`write_pem_file`]).
//! - [`identity`]: the node id in a certificate (a DNS name
//!   `<16 hex digits>.node.trellis`) and [`peer_id`].
//! - `tls.rs`: rustls configurations (ring provider, TLS 1.3, client
//!   certificates required, no resumption).
//! - `protocol.rs`: the ALPN names. `endpoint.rs`: [`EndpointBuilder`],
//!   [`Endpoint`] (the UDP port, the accept loop and its limits, dialing).
//!   `connection.rs`: [`PeerConnection`], a connection with its verified
//!   peer id.
//! - [`frame`]: the wire layout, [`read_frame`] / [`write_frame`] and the
//!   sans-IO [`FrameDecoder`].
//! - `pool.rs`: [`ConnectionPool`], cached outgoing connections;
//!   `backoff.rs`: [`Backoff`], the reconnect schedule.
//! - `config.rs`: [`NetConfig`]; [`codes`]: application error codes;
//!   `error.rs`: [`CertError`], [`NetError`], [`FrameError`].
//!
//! ## Guarantees
//!
//! - A connection exists only between holders of certificates issued by a
//!   trusted CA, in both directions; [`PeerConnection::peer`] is the id the
//!   CA signed.
//! - Bad frames close their stream with an application error code and a
//!   `warn` log line; they never panic and never affect other streams.
//! - Incoming connections, streams per connection, frame sizes and accept
//!   queues are all bounded ([`NetConfig`]).

#![forbid(unsafe_code)]

mod backoff;
mod certs;
pub mod codes;
mod config;
mod connection;
mod endpoint;
mod error;
pub mod frame;
pub mod identity;
mod pem_file;
mod pool;
mod protocol;
mod tls;

pub use backoff::{random_jitter, Backoff};
pub use certs::{
    random_replica_id, ClusterCa, ClusterTrust, NodeIdentity, CA_VALIDITY_DAYS, MAX_NAME_LEN,
    NODE_VALIDITY_DAYS,
};
pub use config::{BackoffConfig, NetConfig, DEFAULT_MAX_FRAME_SIZE};
pub use connection::PeerConnection;
pub use endpoint::{Endpoint, EndpointBuilder};
pub use error::{CertError, FrameError, NetError};
pub use frame::{encode_frame, read_frame, write_frame, FrameDecoder, FRAME_VERSION};
pub use identity::{node_dns_name, node_id_from_certificate, parse_node_dns_name, peer_id};
pub use pem_file::{read_pem_file, write_pem_file};
pub use pool::{ConnectionPool, PeerStatus};
pub use protocol::{ALPN_COUNTER, ALPN_GOSSIP, MAX_PROTOCOL_LEN};

/// The quinn version this crate is built on, so dependents name the same
/// stream and connection types without depending on quinn themselves.
pub use quinn;
