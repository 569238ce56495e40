//! Bulk streaming of whole key ranges to a peer that holds nothing of
//! them (a new site, or one far behind), with flow control and resumption.
//!
//! The sender reads the range from its index one chunk at a time (at most
//! [`GossipConfig::records_bytes_per_message`](crate::node::GossipConfig)
//! of records), keeps at most [`WINDOW`] chunks unacknowledged, and
//! advances only when the receiver acknowledges a chunk, which it does
//! once every record in it is durably merged. After a disconnect or a
//! silence, the stream rewinds to the first unacknowledged chunk and goes
//! on from there when the peer is back: nothing is sent twice that was
//! already acknowledged, and memory stays at one window per stream.

use std::collections::VecDeque;

use trellis_crdt::codec;
use trellis_store::index::KeyRange;
use trellis_store::Store;

use crate::messages::Shipped;

/// Chunks a stream may have unacknowledged at once.
pub const WINDOW: usize = 4;

/// The most keys read from the index for one chunk.
const KEYS_PER_READ: usize = 4096;

/// A chunk sent and not yet acknowledged.
#[derive(Debug)]
struct InFlight {
    id: u64,
    /// The keys the chunk covered, to send again after a rewind.
    span: KeyRange,
}

/// One collection's range being streamed to one peer.
#[derive(Debug)]
pub(crate) struct OutStream {
    /// Ranges still to send; the front one is in progress.
    ranges: VecDeque<KeyRange>,
    in_flight: VecDeque<InFlight>,
    /// When the stream last made progress (sent or acknowledged).
    pub last_progress_ms: u64,
}

/// A chunk to send.
pub(crate) struct Chunk {
    pub records: Vec<Shipped>,
    /// Whether the stream has nothing after this chunk.
    pub last: bool,
}

impl OutStream {
    pub fn new(range: KeyRange, now_ms: u64) -> Self {
        OutStream {
            ranges: VecDeque::from([range]),
            in_flight: VecDeque::new(),
            last_progress_ms: now_ms,
        }
    }

    /// Adds `range` unless it is already queued.
    pub fn add(&mut self, range: KeyRange) {
        if !self.ranges.contains(&range) {
            self.ranges.push_back(range);
        }
    }

    /// Whether everything was sent and acknowledged.
    pub fn is_finished(&self) -> bool {
        self.ranges.is_empty() && self.in_flight.is_empty()
    }

    /// Whether chunks are waiting for acknowledgement.
    pub fn is_waiting(&self) -> bool {
        !self.in_flight.is_empty()
    }

    /// The next chunk, if the window has room and anything is left; the
    /// caller sends it under `id`.
    pub fn next_chunk(
        &mut self,
        store: &impl Store,
        collection: &str,
        byte_limit: usize,
        id: u64,
        now_ms: u64,
    ) -> Option<Chunk> {
        if self.in_flight.len() >= WINDOW {
            return None;
        }
        let range = self.ranges.front_mut()?;
        let start = range.start.clone();
        let mut records = Vec::new();
        let mut bytes = 0;
        let mut exhausted = true;
        'read: loop {
            let entries = store.index_entries(collection, range, KEYS_PER_READ);
            let complete = entries.len() < KEYS_PER_READ;
            for (key, entry) in entries {
                let Ok(Some(record)) = store.get(collection, &key) else {
                    // Quarantined or gone meanwhile: reconciliation sorts it out.
                    range.start = successor(&key);
                    continue;
                };
                let size = codec::encode(&record).len() + key.len();
                if !records.is_empty() && bytes + size > byte_limit {
                    exhausted = false;
                    break 'read;
                }
                bytes += size;
                range.start = successor(&key);
                records.push(Shipped {
                    key,
                    record,
                    time: entry.hlc,
                });
            }
            if complete {
                break;
            }
        }
        let span = KeyRange {
            start,
            end: if exhausted {
                range.end.clone()
            } else {
                Some(range.start.clone())
            },
        };
        if exhausted {
            self.ranges.pop_front();
        }
        self.in_flight.push_back(InFlight { id, span });
        self.last_progress_ms = now_ms;
        Some(Chunk {
            records,
            last: self.ranges.is_empty(),
        })
    }

    /// The peer acknowledged chunk `id`; returns whether it was one of
    /// this stream's.
    pub fn ack(&mut self, id: u64, now_ms: u64) -> bool {
        let Some(at) = self.in_flight.iter().position(|chunk| chunk.id == id) else {
            return false;
        };
        self.in_flight.remove(at);
        self.last_progress_ms = now_ms;
        true
    }

    /// Forgets the unacknowledged chunks and queues their keys to be
    /// sent first once the peer is reachable again.
    pub fn rewind(&mut self, now_ms: u64) {
        while let Some(chunk) = self.in_flight.pop_back() {
            self.ranges.push_front(chunk.span);
        }
        self.last_progress_ms = now_ms;
    }
}

/// The smallest key after `key`.
pub(crate) fn successor(key: &str) -> String {
    format!("{key}\0")
}
