//! Range-based set reconciliation, sans-IO: read a [`Reconcile`] message
//! and the local index, decide what to answer and which records to ship.
//!
//! Each side compares the other's summary of a range with its own. Equal
//! ranges are done. A range the other side holds nothing of is streamed to
//! it whole. A small range is settled by exchanging item hashes; a large
//! one is split into [`Tuning::branch`] buckets of equal count and the
//! buckets' summaries go back. Cost therefore grows with the difference,
//! not the data: two converged replicas settle a collection in one round
//! trip of a few dozen bytes.

use std::collections::BTreeSet;

use trellis_store::index::KeyRange;

use crate::messages::{item_hash, ItemHash, Part, RangeSummary, Reconcile, Upper};
use crate::IndexView;

/// How ranges are split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Buckets a differing range is split into. Default 16.
    pub branch: usize,
    /// A side holding at most this many entries of a differing range sends
    /// item hashes instead of splitting. Default 32.
    pub items_threshold: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            branch: 16,
            items_threshold: 32,
        }
    }
}

/// A message that breaks the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The parts do not tile the key space in order.
    #[error("reconciliation message for {collection:?} is malformed: {reason}")]
    Malformed {
        /// The collection.
        collection: String,
        /// What is wrong.
        reason: String,
    },
}

/// What to do after reading a message.
#[derive(Debug, Default, PartialEq)]
pub struct Step {
    /// The answer, or `None` when the message said every range is done.
    pub reply: Option<Reconcile>,
    /// Keys whose records to send to the peer (as full states).
    pub ship: Vec<String>,
    /// Ranges the peer holds nothing of: send every record in them.
    pub ship_ranges: Vec<KeyRange>,
}

/// The opening message for `collection`: one summary of everything.
pub fn start(view: &impl IndexView, collection: &str) -> Reconcile {
    let mut reply = PartsBuilder::default();
    reply.summary(None, RangeSummary::of(&view.fingerprint(&KeyRange::all())));
    reply.finish(collection)
}

/// Answers `message` from the local index.
pub fn respond(
    view: &impl IndexView,
    message: &Reconcile,
    tuning: Tuning,
) -> Result<Step, ProtocolError> {
    if message.is_done() {
        // Still validate, so a malformed message is reported.
        ranges(message)?;
        return Ok(Step::default());
    }
    let mut step = Step::default();
    let mut reply = PartsBuilder::default();
    for (range, part) in ranges(message)? {
        let upper = range.end.clone();
        match part {
            Part::Summary { summary, .. } => {
                let mine = view.fingerprint(&range);
                let my_summary = RangeSummary::of(&mine);
                if my_summary == *summary {
                    reply.done(upper);
                } else if summary.count == 0 {
                    step.ship_ranges.push(range);
                    reply.done(upper);
                } else if mine.count == 0 {
                    reply.summary(upper, my_summary);
                } else if mine.count <= tuning.items_threshold {
                    reply.items(upper, item_hashes(view, &range));
                } else if summary.count <= tuning.items_threshold {
                    reply.push(upper, |upper| Part::SendItems { upper });
                } else {
                    for bucket in view.split(&range, tuning.branch.max(2)) {
                        reply.summary(
                            bucket.range.end.clone(),
                            RangeSummary::of(&bucket.fingerprint),
                        );
                    }
                }
            }
            Part::Items { hashes, .. } => {
                let theirs: BTreeSet<&ItemHash> = hashes.iter().collect();
                let mine = hashes_of(view, &range);
                let my_hashes: BTreeSet<&ItemHash> = mine.iter().map(|(hash, _)| hash).collect();
                step.ship.extend(
                    mine.iter()
                        .filter(|(hash, _)| !theirs.contains(hash))
                        .map(|(_, key)| key.clone()),
                );
                let wanted: Vec<ItemHash> = hashes
                    .iter()
                    .filter(|hash| !my_hashes.contains(hash))
                    .copied()
                    .collect();
                if wanted.is_empty() {
                    reply.done(upper);
                } else {
                    reply.push(upper, |upper| Part::Want {
                        upper,
                        hashes: wanted,
                    });
                }
            }
            Part::SendItems { .. } => {
                reply.items(upper, item_hashes(view, &range));
            }
            Part::Want { hashes, .. } => {
                let wanted: BTreeSet<&ItemHash> = hashes.iter().collect();
                step.ship.extend(
                    hashes_of(view, &range)
                        .into_iter()
                        .filter(|(hash, _)| wanted.contains(hash))
                        .map(|(_, key)| key),
                );
                reply.done(upper);
            }
            Part::Done { .. } => reply.done(upper),
        }
    }
    step.reply = Some(reply.finish(&message.collection));
    Ok(step)
}

/// The item hashes of the local entries of `range`, in key order.
fn item_hashes(view: &impl IndexView, range: &KeyRange) -> Vec<ItemHash> {
    hashes_of(view, range)
        .into_iter()
        .map(|(hash, _)| hash)
        .collect()
}

/// The local entries of `range` with their item hashes.
fn hashes_of(view: &impl IndexView, range: &KeyRange) -> Vec<(ItemHash, String)> {
    view.entries(range)
        .into_iter()
        .map(|(key, digest)| (item_hash(&key, &digest), key))
        .collect()
}

/// The range each part covers, checking that the parts tile the key space
/// in increasing order.
fn ranges(message: &Reconcile) -> Result<Vec<(KeyRange, &Part)>, ProtocolError> {
    let malformed = |reason: &str| ProtocolError::Malformed {
        collection: message.collection.clone(),
        reason: reason.to_owned(),
    };
    let mut out = Vec::with_capacity(message.parts.len());
    let mut lower = String::new();
    let mut ended = false;
    for part in &message.parts {
        if ended {
            return Err(malformed("a part follows the one that ends the key space"));
        }
        let end = match part.upper() {
            Upper::End => {
                ended = true;
                None
            }
            Upper::Key { shared, suffix } => {
                let shared =
                    usize::try_from(*shared).map_err(|_| malformed("shared prefix too long"))?;
                let prefix = lower
                    .get(..shared)
                    .ok_or_else(|| malformed("shared prefix longer than the previous bound"))?;
                let key = format!("{prefix}{suffix}");
                if key <= lower {
                    return Err(malformed("bounds do not increase"));
                }
                Some(key)
            }
        };
        let range = KeyRange {
            start: std::mem::take(&mut lower),
            end: end.clone(),
        };
        lower = end.unwrap_or_default();
        out.push((range, part));
    }
    if !ended {
        return Err(malformed("the parts do not reach the end of the key space"));
    }
    Ok(out)
}

/// Builds a message's parts: coalesces neighbouring done ranges and
/// front-codes the bounds.
#[derive(Default)]
struct PartsBuilder {
    parts: Vec<(Option<String>, RawPart)>,
}

enum RawPart {
    Summary(RangeSummary),
    Items(Vec<ItemHash>),
    Other(Box<dyn FnOnce(Upper) -> Part>),
    Done,
}

impl PartsBuilder {
    fn summary(&mut self, upper: Option<String>, summary: RangeSummary) {
        self.parts.push((upper, RawPart::Summary(summary)));
    }

    fn items(&mut self, upper: Option<String>, hashes: Vec<ItemHash>) {
        self.parts.push((upper, RawPart::Items(hashes)));
    }

    fn push(&mut self, upper: Option<String>, part: impl FnOnce(Upper) -> Part + 'static) {
        self.parts.push((upper, RawPart::Other(Box::new(part))));
    }

    fn done(&mut self, upper: Option<String>) {
        if let Some((last_upper, RawPart::Done)) = self.parts.last_mut() {
            *last_upper = upper;
        } else {
            self.parts.push((upper, RawPart::Done));
        }
    }

    fn finish(self, collection: &str) -> Reconcile {
        let mut previous = String::new();
        let parts = self
            .parts
            .into_iter()
            .map(|(upper, raw)| {
                let upper = match upper {
                    None => Upper::End,
                    Some(key) => {
                        let shared = shared_prefix(&previous, &key);
                        let coded = Upper::Key {
                            shared: u32::try_from(shared).unwrap_or(0),
                            suffix: key[shared..].to_owned(),
                        };
                        previous = key;
                        coded
                    }
                };
                match raw {
                    RawPart::Summary(summary) => Part::Summary { upper, summary },
                    RawPart::Items(hashes) => Part::Items { upper, hashes },
                    RawPart::Other(make) => make(upper),
                    RawPart::Done => Part::Done { upper },
                }
            })
            .collect();
        Reconcile {
            collection: collection.to_owned(),
            parts,
        }
    }
}

/// The length of the longest common prefix, on a character boundary.
fn shared_prefix(a: &str, b: &str) -> usize {
    let mut shared = 0;
    for ((i, x), y) in a.char_indices().zip(b.chars()) {
        if x != y {
            break;
        }
        shared = i + x.len_utf8();
    }
    shared
}
