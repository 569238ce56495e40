//! The reconciliation messages, as they travel (codec-encoded, framed by
//! `trellis-net`).
//!
//! A [`Reconcile`] message describes one collection's whole key space as a
//! sequence of [`Part`]s, each covering the keys from the previous part's
//! upper bound (or the empty key) up to its own upper bound (exclusive).
//! Upper bounds are front-coded against the previous part's bound, so the
//! sorted, similar keys of one collection cost a few bytes each.

use serde::{Deserialize, Serialize};
use trellis_crdt::{Record, ReplicaId};
use trellis_store::index::Fingerprint;
use trellis_store::Origin;

/// How many bytes of a range's 256-bit fingerprint sum are sent. 96 bits
/// make an accidental match between different ranges vanishingly rare.
pub const SUM_BYTES: usize = 12;

/// The summary of one side's entries in a range: how many, and the
/// truncated fingerprint sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeSummary {
    /// Entries in the range.
    pub count: u64,
    /// The first [`SUM_BYTES`] of the fingerprint sum.
    pub sum: [u8; SUM_BYTES],
}

impl RangeSummary {
    /// The summary of a fingerprint.
    pub fn of(fingerprint: &Fingerprint) -> Self {
        let mut sum = [0u8; SUM_BYTES];
        sum.copy_from_slice(&fingerprint.sum[..SUM_BYTES]);
        RangeSummary {
            count: fingerprint.count,
            sum,
        }
    }
}

/// An entry's identity in item lists: the first 8 bytes of its fingerprint
/// hash (key and digest together).
pub type ItemHash = [u8; 8];

/// The hash [`Part::Items`] uses for an entry.
pub fn item_hash(key: &str, digest: &trellis_crdt::Digest) -> ItemHash {
    let mut hash = [0u8; 8];
    hash.copy_from_slice(&Fingerprint::of_entry(key, digest).sum[..8]);
    hash
}

/// The exclusive upper bound of a part, front-coded: the first `shared`
/// bytes of the previous part's bound, then `suffix`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Upper {
    /// The end of the key space.
    End,
    /// A key.
    Key {
        /// Bytes shared with the previous part's upper bound.
        shared: u32,
        /// The rest of the key.
        suffix: String,
    },
}

/// What the sender says about one range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Part {
    /// The sender's summary of the range; the receiver compares it with its
    /// own.
    Summary {
        /// Where the range ends.
        upper: Upper,
        /// The sender's summary.
        summary: RangeSummary,
    },
    /// Every one of the sender's entries in the range, as item hashes in
    /// key order. The receiver ships what the sender lacks and answers with
    /// [`Part::Want`] for what it lacks itself.
    Items {
        /// Where the range ends.
        upper: Upper,
        /// The sender's item hashes.
        hashes: Vec<ItemHash>,
    },
    /// The sender holds few entries in the range and asks for the
    /// receiver's item hashes.
    SendItems {
        /// Where the range ends.
        upper: Upper,
    },
    /// The sender lacks the receiver's entries with these item hashes and
    /// asks for their records.
    Want {
        /// Where the range ends.
        upper: Upper,
        /// Item hashes the sender wants.
        hashes: Vec<ItemHash>,
    },
    /// Nothing more to do in the range.
    Done {
        /// Where the range ends.
        upper: Upper,
    },
}

impl Part {
    /// The part's upper bound.
    pub fn upper(&self) -> &Upper {
        match self {
            Part::Summary { upper, .. }
            | Part::Items { upper, .. }
            | Part::SendItems { upper }
            | Part::Want { upper, .. }
            | Part::Done { upper } => upper,
        }
    }
}

/// One round of reconciliation of one collection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconcile {
    /// The collection.
    pub collection: String,
    /// Parts tiling the whole key space, in order.
    pub parts: Vec<Part>,
}

impl Reconcile {
    /// Whether every part is [`Part::Done`]: the collection is reconciled.
    pub fn is_done(&self) -> bool {
        self.parts
            .iter()
            .all(|part| matches!(part, Part::Done { .. }))
    }
}

/// Everything one node sends another over a gossip connection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// The first message on a connection: who the sender is and which
    /// collections it holds.
    Hello {
        /// The sender. The transport checks it against the certificate.
        replica: ReplicaId,
        /// The sender's collections, so that the receiver can reconcile
        /// collections it does not have yet.
        collections: Vec<String>,
    },
    /// A local write's delta, pushed eagerly.
    Push {
        /// Identifies the push for its acknowledgement.
        id: u64,
        /// Collection.
        collection: String,
        /// Key.
        key: String,
        /// The delta.
        delta: Record,
        /// Where and when the write happened.
        origin: Origin,
    },
    /// A push was merged durably.
    PushAck {
        /// The push.
        id: u64,
    },
    /// One round of a reconciliation session.
    Reconcile {
        /// Identifies the session (chosen by its initiator).
        session: u64,
        /// The round.
        round: Reconcile,
    },
    /// Records shipped as full states, after reconciliation found them
    /// missing or different on the receiver.
    Records {
        /// Collection.
        collection: String,
        /// The records.
        records: Vec<Shipped>,
    },
    /// One chunk of a range streamed whole to a receiver that held none
    /// of it; acknowledged with [`Message::StreamAck`] once merged.
    Stream {
        /// Identifies the chunk for its acknowledgement.
        id: u64,
        /// Collection.
        collection: String,
        /// The records, in key order.
        records: Vec<Shipped>,
        /// Whether the sender has nothing more to stream of this
        /// collection.
        last: bool,
    },
    /// Every record of a [`Message::Stream`] chunk was merged durably.
    StreamAck {
        /// The chunk.
        id: u64,
    },
}

/// A record's full state, shipped by reconciliation or a stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shipped {
    /// Key.
    pub key: String,
    /// The sender's full state of the record.
    pub record: Record,
    /// When the record last changed at the sender (its index time).
    pub time: trellis_crdt::Timestamp,
}
