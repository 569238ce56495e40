//! # trellis-store
//!
//! Durable storage of Trellis records, with what replication needs:
//!
//! - [`RedbStore`], the default: one redb file, crash-safe, written by a
//!   group-commit thread so that concurrent writers share one fsync. A
//!   write is acknowledged only once its batch is durable.
//! - [`MemStore`]: the same logic over in-memory maps, for tests,
//!   deterministic simulation and embedding.
//! - A per-collection reconciliation [`index`]: key → (digest, time), with
//!   O(log n) range fingerprints and equal-count bucket splits for
//!   range-based set reconciliation. Each record's entry is stored in
//!   front of its bytes; on open every entry is checked against its
//!   record and rebuilt from it if it does not match.
//! - A change feed: every applied change, local or remote, gets the next
//!   local sequence number; retention is bounded.
//! - Limits on keys, record size, field count and collection names, and
//!   quarantine of records whose bytes no longer decode.
//!
//! ```
//! use trellis_crdt::{Lattice, ReplicaId};
//! use trellis_store::{MemStore, Mutation, Origin, Store, StoreConfig};
//!
//! let berlin = MemStore::new(ReplicaId(1), StoreConfig::default());
//! let lisbon = MemStore::new(ReplicaId(2), StoreConfig::default());
//! let applied = berlin
//!     .apply("leads", "l1", Mutation::Put(serde_json::json!({"name": "Ada"})))
//!     .wait()?;
//! let origin = Origin { replica: berlin.replica_id(), time: applied.time, full_state: false };
//! let merged = lisbon.merge("leads", "l1", applied.delta.clone(), origin).wait()?;
//! assert!(merged.grew);
//! assert_eq!(merged.digest, applied.digest);
//! // Merging again changes nothing.
//! assert!(!lisbon.merge("leads", "l1", applied.delta, origin).wait()?.grew);
//! # Ok::<(), trellis_store::StoreError>(())
//! ```

#![forbid(unsafe_code)]

mod acker;
mod clock;
mod committer;
mod config;
mod engine;
mod error;
mod feed;
pub mod index;
mod indexes;
mod limits;
mod mem_store;
mod mem_tables;
mod migrate;
mod pending;
mod prepare;
mod reader;
mod redb_store;
mod redb_tables;
mod request;
mod row;
mod stats;
mod store;
mod tables;
mod writer;

pub use config::{Durability, StoreConfig};
pub use error::StoreError;
pub use limits::{is_system_collection, Limits, MAX_COLLECTION_NAME, SYSTEM_PREFIX};
pub use mem_store::{MemStore, WallClock};
pub use pending::Pending;
pub use reader::DEFAULT_SCAN_LIMIT;
pub use redb_store::RedbStore;
pub use store::{
    Applied, Change, CollectionInfo, Merged, Mutation, Origin, Page, Scan, Store, StoreStats,
};
