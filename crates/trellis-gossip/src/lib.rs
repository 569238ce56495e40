//! # trellis-gossip
//!
//! The replication protocol of Trellis as plain state machines: messages
//! go in, messages and decisions come out, and time is a parameter. No
//! sockets, no async runtime.
//!
//! This first part is **range-based set reconciliation** ([`reconcile`]):
//! two replicas compare fingerprints of key ranges of a collection's
//! reconciliation index, split the ranges that differ, and settle small
//! ones by item hashes, so that the bytes exchanged grow with the
//! difference, not with the data.
//!
//! ```
//! use trellis_crdt::{Digest, Timestamp};
//! use trellis_gossip::reconcile::{respond, start, Tuning};
//! use trellis_store::index::{IndexEntry, RangeIndex};
//!
//! let entry = |n: u8| IndexEntry { digest: Digest([n; 32]), hlc: Timestamp(0) };
//! let mut berlin = RangeIndex::new();
//! let mut lisbon = RangeIndex::new();
//! for n in 0..100u8 {
//!     berlin.insert(format!("lead-{n:03}"), entry(n));
//!     lisbon.insert(format!("lead-{n:03}"), entry(n));
//! }
//! lisbon.insert("lead-042", entry(7)); // one record differs
//!
//! // Berlin opens; the replicas answer each other until one says "done".
//! let mut message = start(&berlin, "leads");
//! let mut shipped = Vec::new();
//! let mut sides = [&lisbon, &berlin];
//! loop {
//!     let step = respond(sides[0], &message, Tuning::default())?;
//!     shipped.extend(step.ship);
//!     match step.reply {
//!         Some(reply) => message = reply,
//!         None => break,
//!     }
//!     sides.swap(0, 1);
//! }
//! // Each side ships its own version of the differing record.
//! assert_eq!(shipped, vec!["lead-042".to_string(), "lead-042".to_string()]);
//! # Ok::<(), trellis_gossip::reconcile::ProtocolError>(())
//! ```

#![forbid(unsafe_code)]

pub mod driver;
pub mod exchange;
pub mod membership;
pub mod messages;
pub mod node;
pub mod pair;
pub mod reconcile;
mod stream;
mod view;

pub use view::{IndexView, StoreCollection};
