//! The B+ tree behind [`RangeIndex`](super::RangeIndex): entries sit in
//! leaves in key order, and every branch keeps, for each child, the
//! [`Measure`] (entry count and 256-bit hash sum) of that child's subtree.
//!
//! The measures form a group (wrapping addition has an inverse), so the
//! measure of all keys below a bound is one root-to-leaf descent, and the
//! measure of a range is the difference of two such prefixes.
//!
//! Layout, chosen so a descent reads a few contiguous arrays per level:
//! * a leaf holds up to `LEAF` keys in one [`KeyList`] buffer, and beside
//!   them each entry with its cached hash, so partial leaves are summed
//!   without rehashing;
//! * a branch holds up to `BRANCH` children, their measures in a separate
//!   array, and `children - 1` separator keys in one [`KeyList`].
//!
//! Every node but the root is at least a quarter full (see [`min_fill`]),
//! and all leaves are at the same depth. Splits are uneven when keys arrive
//! in ascending or descending order (see [`split_point`]), so both random
//! and sequential inserts leave nodes about 70–75% full; a bulk build fills
//! them completely. Separators are lower bounds: every key in `children[j]` is
//! `>= seps[j - 1]` and `< seps[j]`; a separator need not be a key that is
//! still present.

use std::iter::{FusedIterator, Sum};
use std::mem;
use std::ops::{Add, AddAssign, Sub, SubAssign};

use super::keys::KeyList;
use super::{Fingerprint, IndexEntry, NotSortedError};

/// The count and 256-bit sum of a set of entries, as four little-endian
/// 64-bit limbs: the working form of a [`Fingerprint`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Measure {
    /// How many entries.
    pub(super) count: u64,
    /// The sum of their hashes, least significant limb first.
    pub(super) sum: [u64; 4],
}

impl Measure {
    /// The measure of no entries.
    pub(super) const ZERO: Measure = Measure {
        count: 0,
        sum: [0; 4],
    };

    /// The measure of the single entry `key` → `entry`.
    pub(super) fn of_entry(key: &str, entry: &IndexEntry) -> Measure {
        Fingerprint::of_entry(key, &entry.digest).into()
    }
}

impl Add for Measure {
    type Output = Measure;

    fn add(self, other: Measure) -> Measure {
        let mut sum = [0u64; 4];
        let mut carry = false;
        for (limb, (a, b)) in sum.iter_mut().zip(self.sum.iter().zip(&other.sum)) {
            let (partial, overflow_a) = a.overflowing_add(*b);
            let (total, overflow_b) = partial.overflowing_add(u64::from(carry));
            *limb = total;
            carry = overflow_a || overflow_b;
        }
        Measure {
            count: self.count.wrapping_add(other.count),
            sum,
        }
    }
}

impl Sub for Measure {
    type Output = Measure;

    fn sub(self, other: Measure) -> Measure {
        let mut sum = [0u64; 4];
        let mut borrow = false;
        for (limb, (a, b)) in sum.iter_mut().zip(self.sum.iter().zip(&other.sum)) {
            let (partial, underflow_a) = a.overflowing_sub(*b);
            let (total, underflow_b) = partial.overflowing_sub(u64::from(borrow));
            *limb = total;
            borrow = underflow_a || underflow_b;
        }
        Measure {
            count: self.count.wrapping_sub(other.count),
            sum,
        }
    }
}

impl AddAssign for Measure {
    fn add_assign(&mut self, other: Measure) {
        *self = *self + other;
    }
}

impl SubAssign for Measure {
    fn sub_assign(&mut self, other: Measure) {
        *self = *self - other;
    }
}

impl Sum for Measure {
    fn sum<I: Iterator<Item = Measure>>(iter: I) -> Measure {
        iter.fold(Measure::ZERO, Add::add)
    }
}

/// One entry of a leaf on its way in or out.
#[derive(Clone, Debug)]
struct Slot {
    /// The entry's hash (see [`Fingerprint::of_entry`]) as limbs.
    hash: [u64; 4],
    entry: IndexEntry,
}

impl Slot {
    fn new(key: &str, entry: IndexEntry) -> Slot {
        let hash = Measure::of_entry(key, &entry).sum;
        Slot { hash, entry }
    }

    fn measure(&self) -> Measure {
        hash_measure(&self.hash)
    }
}

/// The measure of the single entry whose hash is `hash`.
fn hash_measure(hash: &[u64; 4]) -> Measure {
    Measure {
        count: 1,
        sum: *hash,
    }
}

/// Entries in key order, as parallel arrays so that searching reads only
/// keys and summing reads only hashes.
#[derive(Clone, Debug)]
struct Leaf {
    keys: KeyList,
    /// `hashes[i]` is [`Slot::hash`] of entry `i`.
    hashes: Vec<[u64; 4]>,
    entries: Vec<IndexEntry>,
}

impl Leaf {
    fn with_capacity(entries: usize) -> Leaf {
        Leaf {
            keys: KeyList::with_capacity(entries),
            hashes: Vec::with_capacity(entries),
            entries: Vec::with_capacity(entries),
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Makes room for `entries` entries in total, exactly.
    fn reserve(&mut self, entries: usize) {
        let more = entries.saturating_sub(self.len());
        self.keys.reserve_keys(entries);
        self.hashes.reserve_exact(more);
        self.entries.reserve_exact(more);
    }

    fn measure(&self) -> Measure {
        self.hashes.iter().map(hash_measure).sum()
    }

    fn insert(&mut self, index: usize, key: &str, slot: Slot) {
        self.keys.insert(index, key);
        self.hashes.insert(index, slot.hash);
        self.entries.insert(index, slot.entry);
    }

    fn push(&mut self, key: &str, slot: Slot) {
        self.insert(self.len(), key, slot);
    }

    fn remove(&mut self, index: usize) -> (String, Slot) {
        let key = self.keys.get(index).to_owned();
        (key, self.delete(index))
    }

    fn delete(&mut self, index: usize) -> Slot {
        self.keys.delete(index);
        Slot {
            hash: self.hashes.remove(index),
            entry: self.entries.remove(index),
        }
    }

    fn split_off(&mut self, at: usize, capacity: usize) -> Leaf {
        Leaf {
            keys: self.keys.split_off(at, capacity),
            hashes: split_off_with_capacity(&mut self.hashes, at, capacity),
            entries: split_off_with_capacity(&mut self.entries, at, capacity),
        }
    }

    fn append(&mut self, other: &mut Leaf) {
        self.keys.append(&mut other.keys);
        self.hashes.append(&mut other.hashes);
        self.entries.append(&mut other.entries);
    }
}

/// Children with their measures; `seps.len() + 1 == measures.len() ==
/// children.len()`.
#[derive(Clone, Debug)]
struct Branch {
    /// Key `j` separates `children[j]` from `children[j + 1]`.
    seps: KeyList,
    measures: Vec<Measure>,
    children: Vec<Node>,
}

impl Branch {
    fn len(&self) -> usize {
        self.children.len()
    }

    /// The child whose key span holds `key`.
    #[inline]
    fn child_index(&self, key: &str) -> usize {
        let key = key.as_bytes();
        self.seps.partition_point(|sep| sep <= key)
    }
}

#[derive(Clone, Debug)]
enum Node {
    Leaf(Leaf),
    Branch(Branch),
}

impl Node {
    fn empty_leaf() -> Node {
        Node::Leaf(Leaf::with_capacity(0))
    }
}

/// The sum of `measure` over `items[..end]`, where `whole` is the sum over
/// all of `items`: adds whichever side of `end` is shorter.
fn measure_before<T>(
    items: &[T],
    end: usize,
    whole: Measure,
    measure: fn(&T) -> Measure,
) -> Measure {
    if end <= items.len() / 2 {
        items[..end].iter().map(measure).sum()
    } else {
        whole - items[end..].iter().map(measure).sum()
    }
}

/// The index of the child holding rank `*rank`, given the children's
/// measures, leaving in `*rank` the rank within that child (the last child
/// takes any overflow).
fn child_at_rank(measures: &[Measure], rank: &mut u64) -> usize {
    let last = measures.len() - 1;
    for (index, measure) in measures[..last].iter().enumerate() {
        if *rank < measure.count {
            return index;
        }
        *rank -= measure.count;
    }
    last
}

/// The fewest items a node of `capacity` other than the root holds: a
/// quarter, so that a node split by an append can stay three quarters full,
/// and at least 2, so that a branch always has a sibling to rebalance with.
const fn min_fill(capacity: usize) -> usize {
    if capacity / 4 > 2 {
        capacity / 4
    } else {
        2
    }
}

/// How many of the `capacity + 1` items of an overfull node stay in the
/// left half: most of them when the new item went to the end (ascending
/// keys, as with sequential or time-ordered ids, leave full nodes behind),
/// few when it went to the front (descending keys), half otherwise.
fn split_point(capacity: usize, min: usize, appending: bool, prepending: bool) -> usize {
    if appending {
        capacity + 1 - min
    } else if prepending {
        min
    } else {
        capacity.div_ceil(2)
    }
}

/// Moves `from[at..]` into a new vector with room for `capacity` items.
fn split_off_with_capacity<T>(from: &mut Vec<T>, at: usize, capacity: usize) -> Vec<T> {
    let mut tail = Vec::with_capacity(capacity.max(from.len() - at));
    tail.extend(from.drain(at..));
    tail
}

/// A new right sibling from a node that split.
struct Split {
    /// The lower bound of the keys in `node`.
    separator: String,
    measure: Measure,
    node: Node,
}

/// What an insertion below a node did.
struct Inserted {
    /// The entry the key had before, if any.
    replaced: Option<IndexEntry>,
    /// How the node's measure changed.
    delta: Measure,
    split: Option<Split>,
}

/// A B+ tree from key to [`IndexEntry`] with subtree measures; leaves hold
/// at most `LEAF` entries and branches at most `BRANCH` children.
#[derive(Clone, Debug)]
pub(super) struct Tree<const LEAF: usize, const BRANCH: usize> {
    root: Node,
    total: Measure,
}

impl<const LEAF: usize, const BRANCH: usize> Tree<LEAF, BRANCH> {
    /// The fewest entries a leaf other than the root holds.
    const LEAF_MIN: usize = min_fill(LEAF);
    /// The fewest children a branch other than the root holds.
    const BRANCH_MIN: usize = min_fill(BRANCH);

    /// An empty tree.
    pub(super) fn new() -> Self {
        const {
            assert!(LEAF >= 4, "a leaf must hold at least 4 entries");
            assert!(BRANCH >= 4, "a branch must hold at least 4 children");
        }
        Tree {
            root: Node::empty_leaf(),
            total: Measure::ZERO,
        }
    }

    /// Builds a tree from entries in strictly increasing key order, in
    /// O(n): leaves are filled completely, left to right.
    pub(super) fn from_sorted<K, I>(entries: I) -> Result<Self, NotSortedError>
    where
        K: AsRef<str>,
        I: IntoIterator<Item = (K, IndexEntry)>,
    {
        // Finished nodes of the level being built, each with its smallest key.
        let mut level: Vec<(String, Measure, Node)> = Vec::new();
        let mut leaf = Leaf::with_capacity(LEAF);
        let mut leaf_measure = Measure::ZERO;
        let mut total = Measure::ZERO;
        for (position, (key, entry)) in entries.into_iter().enumerate() {
            let key = key.as_ref();
            let previous = leaf.keys.last().or_else(|| match level.last() {
                Some((_, _, Node::Leaf(finished))) => finished.keys.last(),
                _ => None,
            });
            if previous.is_some_and(|previous| previous >= key) {
                return Err(NotSortedError {
                    position,
                    key: key.to_owned(),
                });
            }
            let slot = Slot::new(key, entry);
            leaf_measure += slot.measure();
            leaf.push(key, slot);
            if leaf.len() == LEAF {
                total += leaf_measure;
                let full = mem::replace(&mut leaf, Leaf::with_capacity(LEAF));
                level.push(Self::finish_leaf(full, leaf_measure));
                leaf_measure = Measure::ZERO;
            }
        }
        if leaf.len() > 0 || level.is_empty() {
            total += leaf_measure;
            if let Some((_, measure, Node::Leaf(previous))) = level.last_mut() {
                // Top up a short last leaf from its (full) left neighbour.
                let missing = Self::LEAF_MIN.saturating_sub(leaf.len());
                if missing > 0 {
                    let mut moved = previous.split_off(previous.len() - missing, LEAF);
                    let moved_measure = moved.measure();
                    *measure -= moved_measure;
                    leaf_measure += moved_measure;
                    moved.append(&mut leaf);
                    leaf = moved;
                }
            }
            level.push(Self::finish_leaf(leaf, leaf_measure));
        }
        while level.len() > 1 {
            level = Self::build_branch_level(level);
        }
        let root = level
            .pop()
            .map_or_else(Node::empty_leaf, |(_, _, node)| node);
        Ok(Tree { root, total })
    }

    fn finish_leaf(mut leaf: Leaf, measure: Measure) -> (String, Measure, Node) {
        leaf.keys.shrink_bytes();
        let first = leaf.keys.first().unwrap_or_default().to_owned();
        (first, measure, Node::Leaf(leaf))
    }

    /// Groups `level` (each node with its smallest key) into branches of
    /// between `BRANCH / 2` and `BRANCH` children.
    fn build_branch_level(level: Vec<(String, Measure, Node)>) -> Vec<(String, Measure, Node)> {
        let groups = level.len().div_ceil(BRANCH);
        let (base, extra) = (level.len() / groups, level.len() % groups);
        let mut items = level.into_iter();
        let mut next = Vec::with_capacity(groups);
        for group in 0..groups {
            let size = base + usize::from(group < extra);
            let mut branch = Branch {
                seps: KeyList::with_capacity(BRANCH),
                measures: Vec::with_capacity(BRANCH + 1),
                children: Vec::with_capacity(BRANCH + 1),
            };
            let mut first = None;
            for (min_key, measure, node) in items.by_ref().take(size) {
                if first.is_none() {
                    first = Some(min_key);
                } else {
                    branch.seps.push(&min_key);
                }
                branch.measures.push(measure);
                branch.children.push(node);
            }
            branch.seps.shrink_bytes();
            let measure = branch.measures.iter().copied().sum();
            next.push((first.unwrap_or_default(), measure, Node::Branch(branch)));
        }
        next
    }

    /// How many entries.
    pub(super) fn len(&self) -> usize {
        self.total.count as usize
    }

    /// The measure of every entry.
    pub(super) fn total(&self) -> Measure {
        self.total
    }

    /// The entry stored under `key`.
    pub(super) fn get(&self, key: &str) -> Option<&IndexEntry> {
        let mut node = &self.root;
        loop {
            match node {
                Node::Branch(branch) => node = &branch.children[branch.child_index(key)],
                Node::Leaf(leaf) => {
                    let index = leaf.keys.binary_search(key).ok()?;
                    return Some(&leaf.entries[index]);
                }
            }
        }
    }

    /// Inserts or replaces `key`, returning the entry it replaced.
    pub(super) fn insert(&mut self, key: &str, entry: IndexEntry) -> Option<IndexEntry> {
        let inserted = Self::insert_into(&mut self.root, key, entry);
        self.total += inserted.delta;
        if let Some(split) = inserted.split {
            let mut root = Branch {
                seps: KeyList::with_capacity(BRANCH),
                measures: Vec::with_capacity(BRANCH + 1),
                children: Vec::with_capacity(BRANCH + 1),
            };
            root.seps.push(&split.separator);
            root.measures
                .extend([self.total - split.measure, split.measure]);
            root.children
                .push(mem::replace(&mut self.root, Node::empty_leaf()));
            root.children.push(split.node);
            self.root = Node::Branch(root);
        }
        inserted.replaced
    }

    fn insert_into(node: &mut Node, key: &str, entry: IndexEntry) -> Inserted {
        match node {
            Node::Leaf(leaf) => match leaf.keys.binary_search(key) {
                Ok(index) => {
                    let new = Slot::new(key, entry);
                    let delta = new.measure() - hash_measure(&leaf.hashes[index]);
                    leaf.hashes[index] = new.hash;
                    let replaced = Some(mem::replace(&mut leaf.entries[index], new.entry));
                    Inserted {
                        replaced,
                        delta,
                        split: None,
                    }
                }
                Err(index) => {
                    let slot = Slot::new(key, entry);
                    let delta = slot.measure();
                    let split = if leaf.len() < LEAF {
                        if leaf.entries.capacity() < LEAF {
                            leaf.reserve(LEAF);
                        }
                        leaf.insert(index, key, slot);
                        None
                    } else {
                        // Split before inserting so no leaf outgrows LEAF.
                        let left_len = split_point(LEAF, Self::LEAF_MIN, index == LEAF, index == 0);
                        let new_goes_left = index < left_len;
                        let keep = left_len - usize::from(new_goes_left);
                        let mut right = leaf.split_off(keep, LEAF);
                        if new_goes_left {
                            leaf.insert(index, key, slot);
                        } else {
                            right.insert(index - keep, key, slot);
                        }
                        Some(Split {
                            separator: right.keys.get(0).to_owned(),
                            measure: right.measure(),
                            node: Node::Leaf(right),
                        })
                    };
                    Inserted {
                        replaced: None,
                        delta,
                        split,
                    }
                }
            },
            Node::Branch(branch) => {
                let index = branch.child_index(key);
                let mut inserted = Self::insert_into(&mut branch.children[index], key, entry);
                branch.measures[index] += inserted.delta;
                if let Some(split) = inserted.split.take() {
                    branch.measures[index] -= split.measure;
                    if branch.children.capacity() <= BRANCH {
                        branch.children.reserve_exact(BRANCH + 1 - branch.len());
                        branch.measures.reserve_exact(BRANCH + 1 - branch.len());
                        branch.seps.reserve_keys(BRANCH);
                    }
                    branch.seps.insert(index, &split.separator);
                    branch.measures.insert(index + 1, split.measure);
                    branch.children.insert(index + 1, split.node);
                    if branch.len() > BRANCH {
                        // The new child sits at index + 1.
                        let left_len =
                            split_point(BRANCH, Self::BRANCH_MIN, index + 1 == BRANCH, index == 0);
                        inserted.split = Some(Self::split_branch(branch, left_len));
                    }
                }
                inserted
            }
        }
    }

    /// Moves the children of an overfull branch from `middle` on into a
    /// new sibling.
    fn split_branch(branch: &mut Branch, middle: usize) -> Split {
        let children = split_off_with_capacity(&mut branch.children, middle, BRANCH + 1);
        let measures = split_off_with_capacity(&mut branch.measures, middle, BRANCH + 1);
        let seps = branch.seps.split_off(middle, BRANCH);
        let separator = branch.seps.pop().unwrap_or_default();
        let measure = measures.iter().copied().sum();
        Split {
            separator,
            measure,
            node: Node::Branch(Branch {
                seps,
                measures,
                children,
            }),
        }
    }

    /// Removes `key`, returning its entry.
    pub(super) fn remove(&mut self, key: &str) -> Option<IndexEntry> {
        let slot = Self::remove_from(&mut self.root, key)?;
        self.total -= slot.measure();
        if let Node::Branch(branch) = &mut self.root {
            if branch.len() == 1 {
                if let Some(only) = branch.children.pop() {
                    self.root = only;
                }
            }
        }
        Some(slot.entry)
    }

    fn remove_from(node: &mut Node, key: &str) -> Option<Slot> {
        match node {
            Node::Leaf(leaf) => {
                let index = leaf.keys.binary_search(key).ok()?;
                Some(leaf.delete(index))
            }
            Node::Branch(branch) => {
                let index = branch.child_index(key);
                let slot = Self::remove_from(&mut branch.children[index], key)?;
                branch.measures[index] -= slot.measure();
                let underfull = match &branch.children[index] {
                    Node::Leaf(leaf) => leaf.len() < Self::LEAF_MIN,
                    Node::Branch(below) => below.len() < Self::BRANCH_MIN,
                };
                if underfull {
                    Self::rebalance(branch, index);
                }
                Some(slot)
            }
        }
    }

    /// Refills the underfull `branch.children[index]` by merging it with a
    /// sibling or moving one item over from that sibling.
    fn rebalance(branch: &mut Branch, index: usize) {
        let left_index = index.saturating_sub(1);
        let right_index = left_index + 1;
        let (before, after) = branch.children.split_at_mut(right_index);
        let merged = match (&mut before[left_index], &mut after[0]) {
            (Node::Leaf(left), Node::Leaf(right)) => {
                if left.len() + right.len() <= LEAF {
                    left.append(right);
                    true
                } else {
                    let moved = if left.len() < right.len() {
                        let (key, slot) = right.remove(0);
                        let measure = slot.measure();
                        left.push(&key, slot);
                        measure
                    } else {
                        let (key, slot) = left.remove(left.len() - 1);
                        let measure = slot.measure();
                        right.insert(0, &key, slot);
                        Measure::ZERO - measure
                    };
                    branch.seps.replace(left_index, right.keys.get(0));
                    branch.measures[left_index] += moved;
                    branch.measures[right_index] -= moved;
                    false
                }
            }
            (Node::Branch(left), Node::Branch(right)) => {
                if left.len() + right.len() <= BRANCH {
                    left.seps.push(branch.seps.get(left_index));
                    left.seps.append(&mut right.seps);
                    left.measures.append(&mut right.measures);
                    left.children.append(&mut right.children);
                    true
                } else {
                    let moved = if left.len() < right.len() {
                        let child = right.children.remove(0);
                        let measure = right.measures.remove(0);
                        let lower_bound = right.seps.remove(0);
                        left.seps
                            .push(&branch.seps.replace(left_index, &lower_bound));
                        left.measures.push(measure);
                        left.children.push(child);
                        measure
                    } else {
                        let last = left.len() - 1;
                        let child = left.children.remove(last);
                        let measure = left.measures.remove(last);
                        let lower_bound = left.seps.remove(last - 1);
                        right
                            .seps
                            .insert(0, &branch.seps.replace(left_index, &lower_bound));
                        right.measures.insert(0, measure);
                        right.children.insert(0, child);
                        Measure::ZERO - measure
                    };
                    branch.measures[left_index] += moved;
                    branch.measures[right_index] -= moved;
                    false
                }
            }
            _ => unreachable!("siblings are at the same depth"),
        };
        if merged {
            branch.children.remove(right_index);
            let right = branch.measures.remove(right_index);
            branch.measures[left_index] += right;
            branch.seps.delete(left_index);
        }
    }

    /// The number of keys `< key`.
    pub(super) fn rank(&self, key: &str) -> usize {
        let mut rank = 0;
        let mut node = &self.root;
        loop {
            match node {
                Node::Branch(branch) => {
                    let index = branch.child_index(key);
                    rank += branch.measures[..index]
                        .iter()
                        .map(|measure| measure.count)
                        .sum::<u64>();
                    node = &branch.children[index];
                }
                Node::Leaf(leaf) => {
                    return rank as usize
                        + leaf.keys.partition_point(|probe| probe < key.as_bytes());
                }
            }
        }
    }

    /// The measure of all keys `< key`.
    pub(super) fn prefix(&self, key: &str) -> Measure {
        let mut prefix = Measure::ZERO;
        let mut whole = self.total;
        let mut node = &self.root;
        loop {
            match node {
                Node::Branch(branch) => {
                    let index = branch.child_index(key);
                    prefix += measure_before(&branch.measures, index, whole, |measure| *measure);
                    whole = branch.measures[index];
                    node = &branch.children[index];
                }
                Node::Leaf(leaf) => {
                    let index = leaf.keys.partition_point(|probe| probe < key.as_bytes());
                    return prefix + measure_before(&leaf.hashes, index, whole, hash_measure);
                }
            }
        }
    }

    /// The entry with `rank` smaller keys.
    pub(super) fn select(&self, rank: usize) -> Option<(&str, &IndexEntry)> {
        if rank >= self.len() {
            return None;
        }
        let mut rank = rank as u64;
        let mut node = &self.root;
        loop {
            match node {
                Node::Branch(branch) => {
                    node = &branch.children[child_at_rank(&branch.measures, &mut rank)]
                }
                Node::Leaf(leaf) => {
                    let index = rank as usize;
                    return Some((leaf.keys.get(index), &leaf.entries[index]));
                }
            }
        }
    }

    /// The key with `rank` smaller keys, and the measure of those smaller
    /// keys.
    pub(super) fn select_with_prefix(&self, rank: usize) -> Option<(&str, Measure)> {
        if rank >= self.len() {
            return None;
        }
        let mut rank = rank as u64;
        let mut prefix = Measure::ZERO;
        let mut whole = self.total;
        let mut node = &self.root;
        loop {
            match node {
                Node::Branch(branch) => {
                    let index = child_at_rank(&branch.measures, &mut rank);
                    prefix += measure_before(&branch.measures, index, whole, |measure| *measure);
                    whole = branch.measures[index];
                    node = &branch.children[index];
                }
                Node::Leaf(leaf) => {
                    let index = rank as usize;
                    let prefix = prefix + measure_before(&leaf.hashes, index, whole, hash_measure);
                    return Some((leaf.keys.get(index), prefix));
                }
            }
        }
    }

    /// The `count` entries starting at rank `start`, in key order.
    pub(super) fn entries(&self, start: usize, count: usize) -> Entries<'_> {
        let count = count.min(self.len().saturating_sub(start));
        let mut entries = Entries {
            stack: Vec::new(),
            leaf: None,
            position: 0,
            remaining: count,
        };
        if count == 0 {
            return entries;
        }
        let mut rank = start as u64;
        let mut node = &self.root;
        loop {
            match node {
                Node::Branch(branch) => {
                    let index = child_at_rank(&branch.measures, &mut rank);
                    entries.stack.push((branch, index));
                    node = &branch.children[index];
                }
                Node::Leaf(leaf) => {
                    entries.leaf = Some(leaf);
                    entries.position = rank as usize;
                    return entries;
                }
            }
        }
    }

    /// How full the leaves and the branches below the root are, on
    /// average, as fractions of their capacity.
    #[cfg(test)]
    fn fill(&self) -> (f64, f64) {
        /// Adds up (leaves, entries, branches, children) below `node`.
        fn count(node: &Node, is_root: bool, totals: &mut [usize; 4]) {
            match node {
                Node::Leaf(leaf) => {
                    totals[0] += 1;
                    totals[1] += leaf.len();
                }
                Node::Branch(branch) => {
                    if !is_root {
                        totals[2] += 1;
                        totals[3] += branch.len();
                    }
                    for child in &branch.children {
                        count(child, false, totals);
                    }
                }
            }
        }
        let mut totals = [0; 4];
        count(&self.root, true, &mut totals);
        let leaves = totals[1] as f64 / (totals[0] * LEAF) as f64;
        let branches = totals[3] as f64 / (totals[2].max(1) * BRANCH) as f64;
        (leaves, branches)
    }

    /// Panics unless every structural invariant holds.
    #[cfg(test)]
    pub(super) fn check_invariants(&self) {
        let (measure, _) = Self::check_node(&self.root, true, None, None);
        assert_eq!(measure, self.total, "root measure");
    }

    /// Checks `node`, whose keys must lie in `[low, high)`; returns its
    /// measure and height.
    #[cfg(test)]
    fn check_node(
        node: &Node,
        is_root: bool,
        low: Option<&str>,
        high: Option<&str>,
    ) -> (Measure, usize) {
        match node {
            Node::Leaf(leaf) => {
                assert_eq!(leaf.keys.len(), leaf.len(), "keys beside entries");
                assert_eq!(leaf.hashes.len(), leaf.len(), "hashes beside entries");
                assert!(leaf.len() <= LEAF, "leaf overfull");
                assert!(is_root || leaf.len() >= Self::LEAF_MIN, "leaf underfull");
                let keys: Vec<&str> = leaf.keys.iter().collect();
                assert!(
                    keys.windows(2).all(|pair| pair[0] < pair[1]),
                    "leaf keys out of order"
                );
                for ((key, hash), entry) in keys.iter().zip(&leaf.hashes).zip(&leaf.entries) {
                    assert!(low.is_none_or(|low| *key >= low), "key below its span");
                    assert!(high.is_none_or(|high| *key < high), "key above its span");
                    assert_eq!(*hash, Measure::of_entry(key, entry).sum, "stale hash");
                }
                (leaf.measure(), 0)
            }
            Node::Branch(branch) => {
                assert!(branch.len() <= BRANCH, "branch overfull");
                assert!(
                    branch.len() >= if is_root { 2 } else { Self::BRANCH_MIN },
                    "branch underfull"
                );
                assert_eq!(branch.seps.len() + 1, branch.len(), "separator count");
                assert_eq!(branch.measures.len(), branch.len(), "measure count");
                let seps: Vec<&str> = branch.seps.iter().collect();
                assert!(
                    seps.windows(2).all(|pair| pair[0] < pair[1]),
                    "separators out of order"
                );
                let mut total = Measure::ZERO;
                let mut heights = Vec::new();
                for (index, child) in branch.children.iter().enumerate() {
                    let child_low = if index == 0 {
                        low
                    } else {
                        Some(seps[index - 1])
                    };
                    let child_high = seps.get(index).copied().or(high);
                    let (measure, height) = Self::check_node(child, false, child_low, child_high);
                    assert_eq!(measure, branch.measures[index], "stale child measure");
                    total += measure;
                    heights.push(height);
                }
                assert!(
                    heights.windows(2).all(|pair| pair[0] == pair[1]),
                    "leaves at different depths"
                );
                (total, heights[0] + 1)
            }
        }
    }
}

/// The entries of a [`RangeIndex`](super::RangeIndex) in key order, from
/// [`RangeIndex::range`](super::RangeIndex::range) or
/// [`RangeIndex::iter`](super::RangeIndex::iter).
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    /// The branches above the current leaf, each with the child taken.
    stack: Vec<(&'a Branch, usize)>,
    leaf: Option<&'a Leaf>,
    position: usize,
    remaining: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a str, &'a IndexEntry);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let mut leaf = self.leaf?;
        while self.position >= leaf.len() {
            // Climb to the nearest branch with a next child, then take the
            // leftmost path below that child.
            let (branch, index) = self.stack.pop()?;
            if index + 1 < branch.len() {
                self.stack.push((branch, index + 1));
                let mut node = &branch.children[index + 1];
                while let Node::Branch(below) = node {
                    self.stack.push((below, 0));
                    node = &below.children[0];
                }
                if let Node::Leaf(next) = node {
                    leaf = next;
                    self.position = 0;
                }
            }
        }
        self.leaf = Some(leaf);
        let index = self.position;
        self.position += 1;
        self.remaining -= 1;
        Some((leaf.keys.get(index), &leaf.entries[index]))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Entries<'_> {}

impl FusedIterator for Entries<'_> {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use trellis_crdt::{Digest, Timestamp};

    use super::super::tests::key;
    use super::*;

    /// Tiny nodes, so a few dozen keys already make a tree several levels
    /// deep and every split, borrow and merge path runs.
    type SmallTree = Tree<4, 4>;

    fn entry(seed: u8) -> IndexEntry {
        IndexEntry {
            digest: Digest([seed; 32]),
            hlc: Timestamp(u64::from(seed)),
        }
    }

    fn model_prefix(model: &BTreeMap<String, IndexEntry>, key: &str) -> Measure {
        model
            .iter()
            .take_while(|(model_key, _)| model_key.as_str() < key)
            .map(|(key, entry)| Measure::of_entry(key, entry))
            .sum()
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(String, u8),
        Remove(String),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (key(), any::<u8>()).prop_map(|(key, seed)| Op::Insert(key, seed)),
            key().prop_map(Op::Remove),
        ]
    }

    proptest! {
        #![proptest_config(trellis_crdt::testing::config())]

        /// Every operation keeps the tree valid and equal to a `BTreeMap`.
        #[test]
        fn small_tree_matches_model(
            grow in proptest::collection::vec(op(), 0..200),
            shrink in proptest::collection::vec(key(), 0..200),
            probes in proptest::collection::vec(key(), 1..10),
        ) {
            let mut tree = SmallTree::new();
            let mut model = BTreeMap::new();
            let history = grow.into_iter().chain(shrink.into_iter().map(Op::Remove));
            for (step, op) in history.enumerate() {
                match op {
                    Op::Insert(key, seed) => {
                        prop_assert_eq!(tree.insert(&key, entry(seed)), model.insert(key, entry(seed)));
                    }
                    Op::Remove(key) => prop_assert_eq!(tree.remove(&key), model.remove(&key)),
                }
                if step % 8 == 0 {
                    tree.check_invariants();
                }
            }
            tree.check_invariants();
            prop_assert_eq!(tree.len(), model.len());
            let listed: Vec<_> = tree.entries(0, usize::MAX).map(|(key, entry)| (key.to_string(), *entry)).collect();
            let expected: Vec<_> = model.iter().map(|(key, entry)| (key.clone(), *entry)).collect();
            prop_assert_eq!(&listed, &expected);
            for probe in &probes {
                prop_assert_eq!(tree.get(probe), model.get(probe));
                prop_assert_eq!(tree.rank(probe), model.keys().take_while(|key| key.as_str() < probe.as_str()).count());
                prop_assert_eq!(tree.prefix(probe), model_prefix(&model, probe));
            }
            for (rank, (key, entry)) in model.iter().enumerate() {
                prop_assert_eq!(tree.select(rank), Some((key.as_str(), entry)));
                prop_assert_eq!(tree.select_with_prefix(rank), Some((key.as_str(), model_prefix(&model, key))));
                let rest: Vec<_> = tree.entries(rank, 3).map(|(key, _)| key.to_string()).collect();
                let expected: Vec<_> = model.keys().skip(rank).take(3).cloned().collect();
                prop_assert_eq!(rest, expected);
            }
            prop_assert_eq!(tree.select(model.len()), None);
        }

        /// Bulk building gives a valid tree with the same entries.
        #[test]
        fn small_tree_from_sorted_is_valid(keys in proptest::collection::btree_set(key(), 0..150)) {
            let entries: Vec<_> = keys.iter().map(|key| (key.clone(), entry(key.len() as u8))).collect();
            let tree = SmallTree::from_sorted(entries.clone()).map_err(|error| TestCaseError::fail(error.to_string()))?;
            tree.check_invariants();
            let listed: Vec<_> = tree.entries(0, usize::MAX).map(|(key, entry)| (key.to_string(), *entry)).collect();
            prop_assert_eq!(listed, entries);
        }
    }

    #[test]
    fn from_sorted_sizes_around_node_boundaries_are_valid() {
        for size in 0..=80u8 {
            let tree =
                SmallTree::from_sorted((0..size).map(|n| (format!("{n:03}"), entry(n)))).unwrap();
            tree.check_invariants();
            assert_eq!(tree.len(), usize::from(size));
        }
    }

    /// The fill of a tree after inserting 20 000 keys in order.
    fn sequential_fill<const LEAF: usize, const BRANCH: usize>(descending: bool) -> (f64, f64) {
        let mut tree = Tree::<LEAF, BRANCH>::new();
        for n in 0..20_000u32 {
            let n = if descending { 20_000 - n } else { n };
            tree.insert(&format!("lead-{n:06}"), entry(0));
        }
        tree.check_invariants();
        tree.fill()
    }

    #[test]
    fn ascending_and_descending_inserts_leave_nodes_three_quarters_full() {
        for descending in [false, true] {
            for (leaves, branches) in [
                sequential_fill::<8, 8>(descending),
                sequential_fill::<32, 32>(descending),
            ] {
                assert!(
                    leaves >= 0.75,
                    "descending {descending}: leaves {leaves:.2} full"
                );
                assert!(
                    branches >= 0.75,
                    "descending {descending}: branches {branches:.2} full"
                );
            }
        }
    }

    #[test]
    fn measure_arithmetic_carries_across_limbs() {
        let all_ones = Measure {
            count: u64::MAX,
            sum: [u64::MAX; 4],
        };
        let one = Measure {
            count: 1,
            sum: [1, 0, 0, 0],
        };
        assert_eq!(all_ones + one, Measure::ZERO);
        assert_eq!(Measure::ZERO - one, all_ones);
        let carry = Measure {
            count: 0,
            sum: [u64::MAX, 0, 0, 0],
        } + one;
        assert_eq!(carry.sum, [0, 1, 0, 0]);
    }
}
