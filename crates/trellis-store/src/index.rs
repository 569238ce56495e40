//! The reconciliation index: an in-memory ordered map from record key to
//! the record's digest and timestamp, with O(log n) fingerprints of any key
//! range.
//!
//! Anti-entropy compares the [`Fingerprint`] of a [`KeyRange`] on two
//! nodes. Where they differ, [`RangeIndex::split`] cuts the range into
//! [`Bucket`]s of nearly equal size whose fingerprints are compared in turn,
//! so the work grows with the difference between the nodes, not with the
//! number of records.
//!
//! ```
//! use trellis_crdt::{Digest, Timestamp};
//! use trellis_store::index::{IndexEntry, KeyRange, RangeIndex};
//!
//! let mut index = RangeIndex::new();
//! for (n, key) in ["apple", "banana", "cherry", "damson"].into_iter().enumerate() {
//!     let entry = IndexEntry { digest: Digest([n as u8; 32]), hlc: Timestamp(0) };
//!     index.insert(key, entry);
//! }
//! let range = KeyRange::new("b", "d");
//! assert_eq!(index.fingerprint(&range).count, 2);
//! let buckets = index.split(&KeyRange::all(), 2);
//! assert_eq!(buckets[0].range, KeyRange::new("", "cherry"));
//! assert_eq!(buckets[1].range, KeyRange::starting_at("cherry"));
//! assert_eq!(buckets[0].fingerprint + buckets[1].fingerprint, index.total());
//! ```

mod keys;
mod tree;

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Sub, SubAssign};

use serde::{Deserialize, Serialize};
use trellis_crdt::{Digest, Timestamp};

pub use self::tree::Entries;
use self::tree::{Measure, Tree};

/// Most entries in one leaf of the tree.
const LEAF_CAPACITY: usize = 64;
/// Most children of one branch of the tree.
const BRANCH_CAPACITY: usize = 64;

/// What the index holds for one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The digest of the record's state; part of the [`Fingerprint`].
    pub digest: Digest,
    /// When the record last changed. Not part of the fingerprint.
    pub hlc: Timestamp,
}

/// A summary of a set of index entries that two nodes compare to learn
/// whether they hold the same entries.
///
/// For an entry with key `k` and digest `d` the entry hash is
///
/// ```text
/// h(k, d) = blake3(len(k) as u64, 8 bytes little-endian ‖ k as UTF-8 ‖ d, 32 bytes)
/// ```
///
/// and the fingerprint of a set `S` is
///
/// ```text
/// count = |S|
/// sum   = Σ h(k, d) over S, mod 2^256
/// ```
///
/// where each 32-byte hash is read as a little-endian 256-bit integer and
/// `sum` is stored the same way. The length prefix keeps `("ab", d)` and
/// `("a", "b"‖d…)` apart. Because the sum is modular addition, fingerprints
/// of disjoint sets add up (`+`) to the fingerprint of their union, and `-`
/// removes a subset again; `count` wraps the same way so that `-` is always
/// the exact inverse of `+`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Fingerprint {
    /// The number of entries.
    pub count: u64,
    /// The sum of the entry hashes mod 2^256, little-endian.
    pub sum: [u8; 32],
}

impl Fingerprint {
    /// The fingerprint of no entries.
    pub const EMPTY: Fingerprint = Fingerprint {
        count: 0,
        sum: [0; 32],
    };

    /// The fingerprint of the single entry `key` → `digest`.
    pub fn of_entry(key: &str, digest: &Digest) -> Fingerprint {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&(key.len() as u64).to_le_bytes());
        hasher.update(key.as_bytes());
        hasher.update(digest.as_bytes());
        Fingerprint {
            count: 1,
            sum: *hasher.finalize().as_bytes(),
        }
    }

    /// Whether this is the fingerprint of no entries ([`Fingerprint::EMPTY`]).
    pub fn is_empty(&self) -> bool {
        *self == Fingerprint::EMPTY
    }
}

/// The union of two disjoint sets (wrapping).
impl Add for Fingerprint {
    type Output = Fingerprint;

    fn add(self, other: Fingerprint) -> Fingerprint {
        (Measure::from(self) + Measure::from(other)).into()
    }
}

/// A set with a subset taken out (wrapping; the inverse of `+`).
impl Sub for Fingerprint {
    type Output = Fingerprint;

    fn sub(self, other: Fingerprint) -> Fingerprint {
        (Measure::from(self) - Measure::from(other)).into()
    }
}

impl AddAssign for Fingerprint {
    fn add_assign(&mut self, other: Fingerprint) {
        *self = *self + other;
    }
}

impl SubAssign for Fingerprint {
    fn sub_assign(&mut self, other: Fingerprint) {
        *self = *self - other;
    }
}

impl Sum for Fingerprint {
    fn sum<I: Iterator<Item = Fingerprint>>(iter: I) -> Fingerprint {
        iter.fold(Fingerprint::EMPTY, Add::add)
    }
}

impl From<Measure> for Fingerprint {
    fn from(measure: Measure) -> Fingerprint {
        let mut sum = [0u8; 32];
        for (bytes, limb) in sum.chunks_exact_mut(8).zip(measure.sum) {
            bytes.copy_from_slice(&limb.to_le_bytes());
        }
        Fingerprint {
            count: measure.count,
            sum,
        }
    }
}

impl From<Fingerprint> for Measure {
    fn from(fingerprint: Fingerprint) -> Measure {
        let mut sum = [0u64; 4];
        for (limb, bytes) in sum.iter_mut().zip(fingerprint.sum.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            *limb = u64::from_le_bytes(word);
        }
        Measure {
            count: fingerprint.count,
            sum,
        }
    }
}

/// A half-open range of keys `[start, end)`, compared as byte strings;
/// `end: None` means no upper bound.
///
/// A range whose `end` is not after its `start` holds no keys (ranges never
/// wrap around). The default range is [`KeyRange::all`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyRange {
    /// The smallest key in the range.
    pub start: String,
    /// The first key after the range, or `None` for no upper bound.
    pub end: Option<String>,
}

impl KeyRange {
    /// Every key: `["", ∞)`.
    pub fn all() -> KeyRange {
        KeyRange::default()
    }

    /// The keys `>= start` and `< end`.
    pub fn new(start: impl Into<String>, end: impl Into<String>) -> KeyRange {
        KeyRange {
            start: start.into(),
            end: Some(end.into()),
        }
    }

    /// The keys `>= start`.
    pub fn starting_at(start: impl Into<String>) -> KeyRange {
        KeyRange {
            start: start.into(),
            end: None,
        }
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &str) -> bool {
        key >= self.start.as_str() && self.end.as_deref().is_none_or(|end| key < end)
    }

    /// Whether the range can hold no key at all (`end <= start`), whatever
    /// the index holds.
    pub fn is_empty(&self) -> bool {
        self.end
            .as_deref()
            .is_some_and(|end| end <= self.start.as_str())
    }
}

impl fmt::Display for KeyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.end {
            Some(end) => write!(f, "[{:?}, {:?})", self.start, end),
            None => write!(f, "[{:?}, ∞)", self.start),
        }
    }
}

/// One part of a range cut by [`RangeIndex::split`], with the fingerprint
/// of the entries in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bucket {
    /// The keys the bucket covers.
    pub range: KeyRange,
    /// The fingerprint of the index entries in `range`.
    pub fingerprint: Fingerprint,
}

/// [`RangeIndex::from_sorted`] was given a key not strictly greater than
/// the key before it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("index entry {position} has key {key:?}, which is not greater than the key before it")]
pub struct NotSortedError {
    /// The zero-based position of the offending entry in the input.
    pub position: usize,
    /// Its key.
    pub key: String,
}

/// An ordered map from record key to [`IndexEntry`] that answers
/// fingerprint, rank and split queries over key ranges in O(log n).
///
/// It is a B+ tree whose branches store, for each child, the count and hash
/// sum of the child's subtree; leaves hold up to 64 entries and branches up
/// to 64 children. A leaf keeps its keys back to back in one buffer, so an
/// entry costs 80 bytes (entry, cached hash, key offset) plus its key bytes
/// at full occupancy. Measured over a million keys of 12–34 bytes, that is
/// about 95–120 bytes per entry when built by
/// [`from_sorted`](RangeIndex::from_sorted), and 125–170 bytes after inserts
/// (nodes are then 70–80% full).
///
/// Key order is byte order of the UTF-8 keys, the same as `str`'s `Ord`.
#[derive(Clone)]
pub struct RangeIndex {
    tree: Tree<LEAF_CAPACITY, BRANCH_CAPACITY>,
}

impl RangeIndex {
    /// An empty index.
    pub fn new() -> RangeIndex {
        RangeIndex { tree: Tree::new() }
    }

    /// Builds an index in O(n) from entries in strictly increasing key
    /// order (as read from an ordered table).
    ///
    /// # Errors
    /// [`NotSortedError`] at the first key that is not greater than the one
    /// before it, including a repeated key. Unordered input can go through
    /// [`FromIterator`] instead, which inserts one entry at a time.
    pub fn from_sorted<K, I>(entries: I) -> Result<RangeIndex, NotSortedError>
    where
        K: AsRef<str>,
        I: IntoIterator<Item = (K, IndexEntry)>,
    {
        Ok(RangeIndex {
            tree: Tree::from_sorted(entries)?,
        })
    }

    /// Sets the entry for `key`, returning the entry it replaced. The key
    /// is copied into the index, so a `&str` or a `String` will do.
    pub fn insert(&mut self, key: impl AsRef<str>, entry: IndexEntry) -> Option<IndexEntry> {
        self.tree.insert(key.as_ref(), entry)
    }

    /// Removes `key`, returning its entry.
    pub fn remove(&mut self, key: &str) -> Option<IndexEntry> {
        self.tree.remove(key)
    }

    /// The entry for `key`.
    pub fn get(&self, key: &str) -> Option<&IndexEntry> {
        self.tree.get(key)
    }

    /// Whether the index holds `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// How many keys the index holds.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether the index holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The fingerprint of every entry, in O(1).
    pub fn total(&self) -> Fingerprint {
        self.tree.total().into()
    }

    /// The fingerprint of the entries in `range`, in O(log n).
    pub fn fingerprint(&self, range: &KeyRange) -> Fingerprint {
        let (low, high) = self.bounds(range);
        (high - low).into()
    }

    /// The measures of the keys below `range.start` and below its end; the
    /// range's entries are the difference.
    fn bounds(&self, range: &KeyRange) -> (Measure, Measure) {
        let low = self.tree.prefix(&range.start);
        let high = match &range.end {
            _ if range.is_empty() => low,
            Some(end) => self.tree.prefix(end),
            None => self.tree.total(),
        };
        (low, high)
    }

    /// The number of keys `< key`, in O(log n).
    pub fn rank(&self, key: &str) -> usize {
        self.tree.rank(key)
    }

    /// The key with `rank` smaller keys, and its entry, in O(log n); `None`
    /// if `rank >= len()`.
    pub fn select(&self, rank: usize) -> Option<(&str, &IndexEntry)> {
        self.tree.select(rank)
    }

    /// Cuts `range` into `min(k, n)` contiguous buckets, where `n` is the
    /// number of entries in the range, in O(k log n).
    ///
    /// The buckets cover exactly `range`: the first starts at
    /// `range.start`, the last ends at `range.end`, and each other boundary
    /// is a key in the index. Their entry counts differ by at most one (the
    /// earlier buckets take the remainder). There is always at least one
    /// bucket: `k = 0` is treated as 1, and a range with no entries comes
    /// back whole with [`Fingerprint::EMPTY`].
    pub fn split(&self, range: &KeyRange, k: usize) -> Vec<Bucket> {
        let (low, high) = self.bounds(range);
        let first_rank = low.count as usize;
        let entries = (high.count - low.count) as usize;
        let buckets = k.clamp(1, entries.max(1));
        let (size, larger) = (entries / buckets, entries % buckets);
        let mut split = Vec::with_capacity(buckets);
        let mut start = range.start.clone();
        let mut start_prefix = low;
        for bucket in 1..buckets {
            let offset = bucket * size + bucket.min(larger);
            let (key, prefix) = self
                .tree
                .select_with_prefix(first_rank + offset)
                .expect("a boundary rank lies inside the range");
            let end = key.to_string();
            split.push(Bucket {
                range: KeyRange {
                    start: std::mem::replace(&mut start, end.clone()),
                    end: Some(end),
                },
                fingerprint: (prefix - start_prefix).into(),
            });
            start_prefix = prefix;
        }
        split.push(Bucket {
            range: KeyRange {
                start,
                end: range.end.clone(),
            },
            fingerprint: (high - start_prefix).into(),
        });
        split
    }

    /// The entries in `range`, in key order.
    pub fn range(&self, range: &KeyRange) -> Entries<'_> {
        let start = self.rank(&range.start);
        let end = match &range.end {
            _ if range.is_empty() => start,
            Some(end) => self.rank(end),
            None => self.len(),
        };
        self.tree.entries(start, end - start)
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> Entries<'_> {
        self.tree.entries(0, self.len())
    }
}

impl Default for RangeIndex {
    fn default() -> RangeIndex {
        RangeIndex::new()
    }
}

impl fmt::Debug for RangeIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Indexes are equal when they hold the same keys with the same entries.
impl PartialEq for RangeIndex {
    fn eq(&self, other: &RangeIndex) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for RangeIndex {}

/// Inserts entries one at a time, in any order; a later entry for a key
/// replaces an earlier one.
impl<K: AsRef<str>> FromIterator<(K, IndexEntry)> for RangeIndex {
    fn from_iter<I: IntoIterator<Item = (K, IndexEntry)>>(entries: I) -> RangeIndex {
        let mut index = RangeIndex::new();
        index.extend(entries);
        index
    }
}

impl<K: AsRef<str>> Extend<(K, IndexEntry)> for RangeIndex {
    fn extend<I: IntoIterator<Item = (K, IndexEntry)>>(&mut self, entries: I) {
        for (key, entry) in entries {
            self.insert(key, entry);
        }
    }
}

impl<'a> IntoIterator for &'a RangeIndex {
    type Item = (&'a str, &'a IndexEntry);
    type IntoIter = Entries<'a>;

    fn into_iter(self) -> Entries<'a> {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Instant;

    use proptest::prelude::*;

    use super::*;

    fn entry(seed: u8) -> IndexEntry {
        IndexEntry {
            digest: Digest([seed; 32]),
            hlc: Timestamp(u64::from(seed)),
        }
    }

    fn index_of(keys: &[&str]) -> RangeIndex {
        keys.iter()
            .enumerate()
            .map(|(n, key)| (key.to_string(), entry(n as u8)))
            .collect()
    }

    /// The model's entries with their fingerprints, hashed once.
    fn hashed(model: &BTreeMap<String, IndexEntry>) -> Vec<(&str, Fingerprint)> {
        model
            .iter()
            .map(|(key, entry)| (key.as_str(), Fingerprint::of_entry(key, &entry.digest)))
            .collect()
    }

    fn brute_fingerprint(hashed: &[(&str, Fingerprint)], range: &KeyRange) -> Fingerprint {
        hashed
            .iter()
            .filter(|(key, _)| range.contains(key))
            .map(|(_, fingerprint)| *fingerprint)
            .sum()
    }

    #[test]
    fn entry_fingerprint_follows_the_documented_formula() {
        let digest = Digest([7; 32]);
        let mut input = Vec::new();
        input.extend_from_slice(&5u64.to_le_bytes());
        input.extend_from_slice(b"lead1");
        input.extend_from_slice(&[7; 32]);
        let expected = Fingerprint {
            count: 1,
            sum: *blake3::hash(&input).as_bytes(),
        };
        assert_eq!(Fingerprint::of_entry("lead1", &digest), expected);
        // The length prefix separates key bytes from digest bytes.
        assert_ne!(
            Fingerprint::of_entry("", &digest),
            Fingerprint::of_entry("\u{7}", &digest)
        );
    }

    #[test]
    fn fingerprint_sum_is_little_endian_with_carry() {
        let max = Fingerprint {
            count: 1,
            sum: [0xff; 32],
        };
        let mut one = Fingerprint {
            count: 1,
            sum: [0; 32],
        };
        one.sum[0] = 1;
        let wrapped = max + one;
        assert_eq!(
            wrapped,
            Fingerprint {
                count: 2,
                sum: [0; 32]
            }
        );
        assert_eq!(wrapped - one, max);
        let mut low = Fingerprint::EMPTY;
        low.sum[..8].copy_from_slice(&[0xff; 8]);
        let mut carried = [0u8; 32];
        carried[8] = 1;
        assert_eq!((low + one).sum, carried);
        assert!(Fingerprint::EMPTY.is_empty());
        assert!(!(one - one + max).is_empty());
        assert!((max - max).is_empty());
    }

    #[test]
    fn empty_index() {
        let index = RangeIndex::new();
        assert!(index.is_empty());
        assert_eq!(index.len(), 0);
        assert_eq!(index.total(), Fingerprint::EMPTY);
        assert_eq!(index.fingerprint(&KeyRange::all()), Fingerprint::EMPTY);
        assert_eq!(index.rank("x"), 0);
        assert_eq!(index.select(0), None);
        assert_eq!(index.get(""), None);
        assert_eq!(index.range(&KeyRange::all()).count(), 0);
        assert_eq!(
            index.split(&KeyRange::all(), 4),
            vec![Bucket {
                range: KeyRange::all(),
                fingerprint: Fingerprint::EMPTY
            }]
        );
        assert_eq!(
            RangeIndex::from_sorted(Vec::<(String, IndexEntry)>::new()),
            Ok(RangeIndex::new())
        );
    }

    #[test]
    fn single_key() {
        let mut index = RangeIndex::new();
        assert_eq!(index.insert("k", entry(1)), None);
        let expected = Fingerprint::of_entry("k", &entry(1).digest);
        assert_eq!(index.total(), expected);
        assert_eq!(index.fingerprint(&KeyRange::new("k", "k\0")), expected);
        assert_eq!(
            index.fingerprint(&KeyRange::new("", "k")),
            Fingerprint::EMPTY
        );
        assert_eq!(index.fingerprint(&KeyRange::starting_at("k")), expected);
        assert_eq!(index.rank("k"), 0);
        assert_eq!(index.rank("l"), 1);
        assert_eq!(index.select(0), Some(("k", &entry(1))));
        assert_eq!(index.select(1), None);
        assert_eq!(index.split(&KeyRange::all(), 3).len(), 1);
        assert_eq!(index.insert("k", entry(2)), Some(entry(1)));
        assert_eq!(index.total(), Fingerprint::of_entry("k", &entry(2).digest));
        assert_eq!(index.remove("k"), Some(entry(2)));
        assert_eq!(index.remove("k"), None);
        assert_eq!(index.total(), Fingerprint::EMPTY);
    }

    #[test]
    fn ranges_past_every_key_and_inverted_ranges_are_empty() {
        let index = index_of(&["a", "b", "c"]);
        let past = KeyRange::starting_at("z");
        assert_eq!(index.fingerprint(&past), Fingerprint::EMPTY);
        assert_eq!(index.range(&past).count(), 0);
        assert_eq!(
            index.split(&past, 5),
            vec![Bucket {
                range: past,
                fingerprint: Fingerprint::EMPTY
            }]
        );
        let inverted = KeyRange::new("c", "a");
        assert!(inverted.is_empty());
        assert_eq!(index.fingerprint(&inverted), Fingerprint::EMPTY);
        assert_eq!(index.range(&inverted).count(), 0);
        assert_eq!(index.split(&inverted, 2).len(), 1);
        assert_eq!(
            index.fingerprint(&KeyRange::new("b", "b")),
            Fingerprint::EMPTY
        );
    }

    #[test]
    fn unbounded_end_reaches_the_last_key() {
        let index = index_of(&["a", "b", "c"]);
        let range = KeyRange::starting_at("b");
        assert_eq!(index.fingerprint(&range).count, 2);
        let keys: Vec<_> = index.range(&range).map(|(key, _)| key).collect();
        assert_eq!(keys, ["b", "c"]);
        assert_eq!(index.fingerprint(&KeyRange::all()), index.total());
    }

    #[test]
    fn split_with_k_above_count_gives_one_key_per_bucket() {
        let index = index_of(&["a", "b", "c"]);
        let buckets = index.split(&KeyRange::new("", "zz"), 10);
        let ranges: Vec<_> = buckets.iter().map(|bucket| bucket.range.clone()).collect();
        assert_eq!(
            ranges,
            [
                KeyRange::new("", "b"),
                KeyRange::new("b", "c"),
                KeyRange::new("c", "zz")
            ]
        );
        assert!(buckets.iter().all(|bucket| bucket.fingerprint.count == 1));
    }

    #[test]
    fn split_with_k_zero_is_one_bucket() {
        let index = index_of(&["a", "b", "c"]);
        let buckets = index.split(&KeyRange::all(), 0);
        assert_eq!(
            buckets,
            vec![Bucket {
                range: KeyRange::all(),
                fingerprint: index.total()
            }]
        );
    }

    #[test]
    fn split_sizes_differ_by_at_most_one() {
        let keys: Vec<String> = (0..10).map(|n| format!("k{n}")).collect();
        let index: RangeIndex = keys.iter().map(|key| (key.clone(), entry(0))).collect();
        let counts: Vec<_> = index
            .split(&KeyRange::all(), 4)
            .iter()
            .map(|bucket| bucket.fingerprint.count)
            .collect();
        assert_eq!(counts, [3, 3, 2, 2]);
    }

    #[test]
    fn from_sorted_rejects_unsorted_and_repeated_keys() {
        let unsorted = vec![("b".to_string(), entry(0)), ("a".to_string(), entry(0))];
        assert_eq!(
            RangeIndex::from_sorted(unsorted),
            Err(NotSortedError {
                position: 1,
                key: "a".into()
            })
        );
        let repeated = vec![("a".to_string(), entry(0)), ("a".to_string(), entry(1))];
        assert_eq!(
            RangeIndex::from_sorted(repeated).map(|index| index.len()),
            Err(NotSortedError {
                position: 1,
                key: "a".into()
            })
        );
    }

    /// Tens of thousands of keys make the tree three levels deep, so this
    /// runs every split, borrow and merge at the real node sizes.
    #[test]
    fn many_inserts_and_removes_keep_the_tree_valid() {
        const KEYS: u64 = 40_000;
        let key = |n: u64| format!("{:08}", n.wrapping_mul(2_654_435_761) % KEYS);
        let mut index = RangeIndex::new();
        for n in 0..KEYS {
            index.insert(key(n), entry(n as u8));
            if n % 5_000 == 0 {
                index.tree.check_invariants();
            }
        }
        index.tree.check_invariants();
        assert_eq!(index.len(), KEYS as usize);
        let bulk =
            RangeIndex::from_sorted(index.iter().map(|(key, entry)| (key.to_string(), *entry)))
                .unwrap();
        bulk.tree.check_invariants();
        assert_eq!(bulk, index);
        assert_eq!(bulk.total(), index.total());
        for n in 0..KEYS {
            assert!(index.remove(&key(n * 7 % KEYS)).is_some());
            if n % 5_000 == 0 {
                index.tree.check_invariants();
            }
        }
        index.tree.check_invariants();
        assert!(index.is_empty());
        assert_eq!(index.total(), Fingerprint::EMPTY);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(String, u8),
        Remove(String),
    }

    /// Short keys from a small alphabet, so they collide, and some longer
    /// ones (built from integers: regex strategies are slow in debug builds).
    pub(super) fn key() -> impl Strategy<Value = String> {
        const DIGITS: &[u8] = b"abcd0123456789efghijklmnopqrstuvwxyz";
        let short = (0u32..85).prop_map(|mut n| {
            // 85 = 1 + 4 + 16 + 64 keys of length 0 to 3 over "abcd".
            let mut key = String::new();
            let mut size = 1;
            while n >= size {
                n -= size;
                size *= 4;
                key.push('a');
            }
            let bytes: Vec<u8> = (0..key.len())
                .map(|i| DIGITS[(n >> (2 * i)) as usize % 4])
                .collect();
            String::from_utf8(bytes).unwrap()
        });
        let long = (any::<u64>(), 4u32..=16).prop_map(|(mut n, len)| {
            (0..len)
                .map(|_| {
                    let digit = DIGITS[(n % 36) as usize];
                    n /= 36;
                    char::from(digit)
                })
                .collect()
        });
        prop_oneof![3 => short, 2 => long]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (key(), any::<u8>()).prop_map(|(key, seed)| Op::Insert(key, seed)),
            1 => key().prop_map(Op::Remove),
        ]
    }

    fn key_range() -> impl Strategy<Value = KeyRange> {
        (key(), proptest::option::weighted(0.8, key()))
            .prop_map(|(start, end)| KeyRange { start, end })
    }

    proptest! {
        #![proptest_config(trellis_crdt::testing::config())]

        /// Fingerprints, splits, ranks and ranges agree with a brute-force
        /// recomputation over a `BTreeMap`.
        #[test]
        fn index_matches_model(
            history in proptest::collection::vec(op(), 0..600),
            ranges in proptest::collection::vec((key_range(), 0usize..12), 1..8),
            probes in proptest::collection::vec(key(), 1..8),
        ) {
            let mut index = RangeIndex::new();
            let mut model = BTreeMap::new();
            for op in history {
                match op {
                    Op::Insert(key, seed) => {
                        prop_assert_eq!(index.insert(key.clone(), entry(seed)), model.insert(key, entry(seed)));
                    }
                    Op::Remove(key) => prop_assert_eq!(index.remove(&key), model.remove(&key)),
                }
            }
            index.tree.check_invariants();
            prop_assert_eq!(index.len(), model.len());
            prop_assert_eq!(index.total(), index.fingerprint(&KeyRange::all()));
            let hashed = hashed(&model);
            prop_assert_eq!(index.total(), brute_fingerprint(&hashed, &KeyRange::all()));

            for (range, k) in &ranges {
                let expected = brute_fingerprint(&hashed, range);
                prop_assert_eq!(index.fingerprint(range), expected);
                let listed: Vec<_> = index.range(range).map(|(key, entry)| (key.to_string(), *entry)).collect();
                let wanted: Vec<_> = model.iter().filter(|(key, _)| range.contains(key)).map(|(key, entry)| (key.clone(), *entry)).collect();
                prop_assert_eq!(&listed, &wanted);

                let buckets = index.split(range, *k);
                let n = wanted.len();
                prop_assert_eq!(buckets.len(), (*k).clamp(1, n.max(1)));
                prop_assert_eq!(&buckets[0].range.start, &range.start);
                prop_assert_eq!(&buckets[buckets.len() - 1].range.end, &range.end);
                for pair in buckets.windows(2) {
                    let boundary = pair[0].range.end.as_deref();
                    prop_assert_eq!(boundary, Some(pair[1].range.start.as_str()));
                    prop_assert!(model.contains_key(&pair[1].range.start), "boundary is not a key");
                    prop_assert!(pair[1].range.start > pair[0].range.start, "empty bucket range");
                }
                let counts: Vec<u64> = buckets.iter().map(|bucket| bucket.fingerprint.count).collect();
                let (smallest, largest) = (counts.iter().min(), counts.iter().max());
                prop_assert!(largest.zip(smallest).is_some_and(|(max, min)| max - min <= 1), "uneven buckets {:?}", counts);
                for bucket in &buckets {
                    prop_assert_eq!(bucket.fingerprint, brute_fingerprint(&hashed, &bucket.range));
                }
                prop_assert_eq!(buckets.iter().map(|bucket| bucket.fingerprint).sum::<Fingerprint>(), expected);
            }

            for probe in &probes {
                prop_assert_eq!(index.rank(probe), model.keys().take_while(|key| key.as_str() < probe.as_str()).count());
                prop_assert_eq!(index.get(probe), model.get(probe));
            }
            for (rank, (key, entry)) in model.iter().enumerate() {
                prop_assert_eq!(index.select(rank), Some((key.as_str(), entry)));
                prop_assert_eq!(index.rank(key), rank);
            }
            prop_assert_eq!(index.select(model.len()), None);

            let bulk = RangeIndex::from_sorted(model.clone()).unwrap();
            bulk.tree.check_invariants();
            prop_assert_eq!(&bulk, &index);
            prop_assert_eq!(bulk.total(), index.total());
            for (range, k) in &ranges {
                prop_assert_eq!(bulk.fingerprint(range), index.fingerprint(range));
                prop_assert_eq!(bulk.split(range, *k), index.split(range, *k));
            }
        }

        /// `+` is commutative and associative and `-` undoes it.
        #[test]
        fn fingerprint_arithmetic_is_a_group(
            a in (any::<u64>(), any::<[u8; 32]>()),
            b in (any::<u64>(), any::<[u8; 32]>()),
            c in (any::<u64>(), any::<[u8; 32]>()),
        ) {
            let [a, b, c] = [a, b, c].map(|(count, sum)| Fingerprint { count, sum });
            prop_assert_eq!(a + b, b + a);
            prop_assert_eq!((a + b) + c, a + (b + c));
            prop_assert_eq!(a + b - b, a);
            prop_assert_eq!(a - a, Fingerprint::EMPTY);
        }
    }

    /// Times fingerprint, split and update over a million keys. Run with
    /// `cargo test -p trellis-store --release --lib -- --ignored --nocapture index_timing`.
    #[test]
    #[ignore = "timing report, not a check"]
    fn index_timing() {
        const KEYS: u64 = 1_000_000;
        const QUERIES: u64 = 200_000;
        let key = |n: u64| {
            format!(
                "collection/record-{:016x}",
                n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            )
        };
        let entry = |n: u64| IndexEntry {
            digest: Digest(*blake3::hash(&n.to_le_bytes()).as_bytes()),
            hlc: Timestamp(n),
        };
        let started = Instant::now();
        let mut sorted: Vec<_> = (0..KEYS).map(|n| (key(n), entry(n))).collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let bulk = RangeIndex::from_sorted(sorted).unwrap();
        println!(
            "from_sorted of {KEYS} keys (with generation and sort): {:?}",
            started.elapsed()
        );

        let started = Instant::now();
        let mut index = RangeIndex::new();
        for n in 0..KEYS {
            index.insert(key(n), entry(n));
        }
        let per_insert = started.elapsed() / KEYS as u32;
        println!("insert (random order, incl. blake3 and key formatting): {per_insert:?} each");
        assert_eq!(bulk.total(), index.total());

        let ranges: Vec<_> = (0..QUERIES)
            .map(|n| {
                let (a, b) = (key(n * 3 + 1), key(n * 7 + 2));
                if a <= b {
                    KeyRange::new(a, b)
                } else {
                    KeyRange::new(b, a)
                }
            })
            .collect();
        for (name, index) in [("inserted", &index), ("bulk", &bulk)] {
            let started = Instant::now();
            let mut checksum = 0u64;
            for range in &ranges {
                checksum = checksum.wrapping_add(index.fingerprint(range).count);
            }
            let per_query = started.elapsed() / QUERIES as u32;
            println!(
                "fingerprint of a random range ({name}): {per_query:?} each (checksum {checksum})"
            );
        }
        let started = Instant::now();
        for range in ranges.iter().take(10_000) {
            std::hint::black_box(index.split(range, 16));
        }
        println!(
            "split into 16 buckets: {:?} each",
            started.elapsed() / 10_000
        );
        let started = Instant::now();
        for n in 0..QUERIES {
            std::hint::black_box(index.rank(&key(n * 13)));
        }
        println!(
            "rank (incl. key formatting): {:?} each",
            started.elapsed() / QUERIES as u32
        );
        let started = Instant::now();
        for n in 0..QUERIES {
            index.remove(&key(n * 5));
        }
        println!(
            "remove (incl. key formatting): {:?} each",
            started.elapsed() / QUERIES as u32
        );
    }
}
