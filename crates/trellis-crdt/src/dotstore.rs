//! Dot stores: the payload half of a causal CRDT.
//!
//! A causal CRDT is a dot store paired with a [`CausalContext`] (see
//! [`Causal`](crate::Causal)). The store holds the dots that are still
//! *live*; the context holds every dot ever *seen*. A dot that one side has
//! seen but no longer holds was removed there, and the join drops it; a dot
//! the other side has never seen is new, and the join keeps it. That is how
//! removals propagate without tombstones.
//!
//! There are three shapes, after Almeida, Shoker and Baquero's
//! *Delta State Replicated Data Types*:
//! - [`DotFun`]: dot → value (for registers and counters);
//! - [`DotSet`]: a set of dots (for flags and set elements);
//! - [`DotMap`]: key → nested dot store (for sets and maps).

use std::cmp::Ordering;
use std::collections::{btree_map, BTreeMap};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use smallvec::{smallvec, SmallVec};

use crate::{CausalContext, Dot};

/// The payload of a causal CRDT: something that holds dots and joins
/// against a pair of causal contexts.
pub trait DotStore: Clone + Default + PartialEq + Serialize + DeserializeOwned {
    /// Whether the store holds no dot at all (the bottom element).
    fn is_empty(&self) -> bool;

    /// Calls `visit` with every dot the store holds.
    fn for_each_dot(&self, visit: &mut dyn FnMut(Dot));

    /// Joins `other` (whose context is `theirs`) into `self` (whose context
    /// is `own`).
    ///
    /// A dot survives if both stores hold it, or if one store holds it and
    /// the other side's context has never seen it.
    fn join(&mut self, own: &CausalContext, other: Self, theirs: &CausalContext);

    /// Every dot the store holds, as a context: the context a delta needs
    /// to remove all of them.
    fn dots(&self) -> CausalContext {
        let mut dots = Vec::new();
        self.for_each_dot(&mut |dot| dots.push(dot));
        CausalContext::from_dots(dots)
    }
}

/// A map from dot to value, sorted by dot.
///
/// Values under one dot never differ (a dot names one event), so the join
/// keeps either copy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DotFun<V> {
    /// Sorted by dot. One entry is stored inline: most registers, set
    /// elements and flags hold a single dot, and a heap allocation per
    /// element would dominate merges.
    entries: SmallVec<[(Dot, V); 1]>,
}

impl<V> Default for DotFun<V> {
    fn default() -> Self {
        DotFun {
            entries: SmallVec::new(),
        }
    }
}

impl<V> DotFun<V> {
    /// A store holding one entry.
    pub fn single(dot: Dot, value: V) -> Self {
        DotFun {
            entries: smallvec![(dot, value)],
        }
    }

    /// The entries, in dot order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Dot, &V)> + ExactSizeIterator {
        self.entries.iter().map(|(dot, value)| (dot, value))
    }

    /// How many entries are live.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is live.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value under `dot`, if it is live.
    pub fn get(&self, dot: &Dot) -> Option<&V> {
        self.entries
            .binary_search_by(|(probe, _)| probe.cmp(dot))
            .ok()
            .map(|at| &self.entries[at].1)
    }
}

impl<V> DotStore for DotFun<V>
where
    V: Clone + PartialEq + Serialize + DeserializeOwned,
{
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn for_each_dot(&self, visit: &mut dyn FnMut(Dot)) {
        self.entries.iter().for_each(|(dot, _)| visit(*dot));
    }

    fn join(&mut self, own: &CausalContext, other: Self, theirs: &CausalContext) {
        let mut theirs_entries = other.entries;
        if theirs_entries.is_empty() && self.entries.is_empty() {
            return;
        }
        let same_dots = self.entries.len() == theirs_entries.len()
            && self
                .entries
                .iter()
                .zip(&theirs_entries)
                .all(|(a, b)| a.0 == b.0);
        if same_dots {
            // Both sides hold exactly these dots: nothing changes, and no
            // allocation is needed (the common case when replicas agree).
            return;
        }
        if let ([(mine, _)], [(yours, _)]) = (&self.entries[..], &theirs_entries[..]) {
            // One entry on each side, under different dots (the common
            // shape of a register written concurrently or overwritten).
            let keep_mine = !theirs.contains(mine);
            let keep_yours = !own.contains(yours);
            let yours_first = yours < mine;
            let entry = theirs_entries.pop();
            match (keep_mine, keep_yours, entry) {
                (true, true, Some(entry)) if yours_first => self.entries.insert(0, entry),
                (true, true, Some(entry)) => self.entries.push(entry),
                (false, true, Some(entry)) => self.entries[0] = entry,
                (false, false, _) => self.entries.clear(),
                _ => {}
            }
            return;
        }
        if theirs_entries.len() > IN_PLACE_JOIN {
            self.join_walk(own, theirs_entries, theirs);
            return;
        }
        // In place: my entries stay where they are unless the other side
        // has seen their dot and dropped it; the other side's entries that
        // I have never seen are inserted at their place. No value moves
        // unless it changes sides, and nothing is allocated unless the
        // store grows past its inline entry.
        if !self.entries.is_empty() {
            self.entries.retain(|(dot, _)| {
                theirs_entries
                    .binary_search_by(|(probe, _)| probe.cmp(dot))
                    .is_ok()
                    || !theirs.contains(dot)
            });
        }
        for (dot, value) in theirs_entries {
            if let Err(at) = self.entries.binary_search_by(|(probe, _)| probe.cmp(&dot)) {
                if !own.contains(&dot) {
                    self.entries.insert(at, (dot, value));
                }
            }
        }
    }
}

/// Up to this many entries on the other side, a [`DotFun`] join inserts
/// them into place one by one; beyond it, both sides are walked in step.
const IN_PLACE_JOIN: usize = 8;

impl<V> DotFun<V> {
    /// Joins by walking both sides in dot order: O(n + m), for large
    /// stores.
    fn join_walk(
        &mut self,
        own: &CausalContext,
        other: SmallVec<[(Dot, V); 1]>,
        theirs: &CausalContext,
    ) {
        let mine = std::mem::take(&mut self.entries);
        let mut joined = SmallVec::with_capacity(mine.len().max(other.len()));
        merge_sorted(mine, other, |dot, mine, yours| {
            let survivor = match (mine, yours) {
                (Some(value), Some(_)) => Some(value),
                (Some(value), None) => Some(value).filter(|_| !theirs.contains(&dot)),
                (None, Some(value)) => Some(value).filter(|_| !own.contains(&dot)),
                (None, None) => None,
            };
            joined.extend(survivor.map(|value| (dot, value)));
        });
        self.entries = joined;
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for DotFun<V> {
    /// Decodes and re-canonicalises: entries are sorted by dot and the
    /// first entry under a repeated dot wins.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut entries: Vec<(Dot, V)> = Vec::deserialize(deserializer)?;
        entries.sort_by_key(|entry| entry.0);
        entries.dedup_by(|later, earlier| later.0 == earlier.0);
        Ok(DotFun {
            entries: SmallVec::from_vec(entries),
        })
    }
}

/// A set of dots: the live events that keep something present.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DotSet(DotFun<()>);

impl DotSet {
    /// A set holding one dot.
    pub fn single(dot: Dot) -> Self {
        DotSet(DotFun::single(dot, ()))
    }

    /// A set of the given dots, in any order; repeats count once.
    pub(crate) fn from_dots(mut dots: Vec<Dot>) -> Self {
        dots.sort_unstable();
        dots.dedup();
        DotSet(DotFun {
            entries: dots.into_iter().map(|dot| (dot, ())).collect(),
        })
    }

    /// The dots, in order.
    pub fn iter(&self) -> impl Iterator<Item = Dot> + '_ {
        self.0.iter().map(|(dot, ())| *dot)
    }

    /// How many dots are live.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no dot is live.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl DotStore for DotSet {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn for_each_dot(&self, visit: &mut dyn FnMut(Dot)) {
        self.0.for_each_dot(visit);
    }

    fn join(&mut self, own: &CausalContext, other: Self, theirs: &CausalContext) {
        self.0.join(own, other.0, theirs);
    }
}

/// A map from key to a nested dot store. Keys whose store becomes empty
/// disappear.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DotMap<K: Ord, V> {
    entries: BTreeMap<K, V>,
}

impl<K: Ord, V> Default for DotMap<K, V> {
    fn default() -> Self {
        DotMap {
            entries: BTreeMap::new(),
        }
    }
}

impl<K: Ord, V: DotStore> DotMap<K, V> {
    /// A map holding one entry (nothing if `value` is empty).
    pub fn single(key: K, value: V) -> Self {
        let mut entries = BTreeMap::new();
        if !value.is_empty() {
            entries.insert(key, value);
        }
        DotMap { entries }
    }

    /// A map of the given entries (empty values are left out).
    pub(crate) fn from_entries(entries: impl IntoIterator<Item = (K, V)>) -> Self {
        DotMap {
            entries: entries
                .into_iter()
                .filter(|(_, value)| !value.is_empty())
                .collect(),
        }
    }

    /// The nested store under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key)
    }

    /// The entries, in key order.
    pub fn iter(&self) -> std::collections::btree_map::Iter<'_, K, V> {
        self.entries.iter()
    }

    /// Entries whose key lies in `range`, in key order.
    pub fn range<R: std::ops::RangeBounds<K>>(
        &self,
        range: R,
    ) -> std::collections::btree_map::Range<'_, K, V> {
        self.entries.range(range)
    }

    /// How many keys are present.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is present.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<K, V> DotStore for DotMap<K, V>
where
    K: Ord + Clone + Serialize + DeserializeOwned,
    V: DotStore,
{
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn for_each_dot(&self, visit: &mut dyn FnMut(Dot)) {
        self.entries
            .values()
            .for_each(|value| value.for_each_dot(visit));
    }

    #[inline]
    fn join(&mut self, own: &CausalContext, other: Self, theirs: &CausalContext) {
        if self.entries.is_empty() && other.entries.is_empty() {
            return;
        }
        self.join_entries(own, other, theirs);
    }
}

impl<K, V> DotMap<K, V>
where
    K: Ord + Clone + Serialize + DeserializeOwned,
    V: DotStore,
{
    /// The join of two maps, at least one of them not empty: key by key
    /// for a small delta, otherwise by walking both.
    fn join_entries(&mut self, own: &CausalContext, other: Self, theirs: &CausalContext) {
        if self.entries.len() >= SMALL_MAP
            && other.entries.len().saturating_mul(SMALL_DELTA_RATIO) <= self.entries.len()
            && theirs.dot_count() <= SMALL_DELTA_DOTS
        {
            self.join_small(own, other, theirs);
        } else {
            self.join_all(own, other, theirs);
        }
    }
}

/// A join is done key by key, rather than by walking both maps, when this
/// map has at least `SMALL_MAP` keys (below that, walking is cheaper)...
const SMALL_MAP: usize = 64;
/// ...the other side has at most 1/`SMALL_DELTA_RATIO` as many keys...
const SMALL_DELTA_RATIO: usize = 16;
/// ...and its context at most this many dots: the shape of a delta.
const SMALL_DELTA_DOTS: u64 = 1024;

impl<K, V> DotMap<K, V>
where
    K: Ord + Clone + Serialize + DeserializeOwned,
    V: DotStore,
{
    /// Joins a small delta in O(d log n): the keys it holds are joined one
    /// by one. Dots its context removes from keys it does not hold (a
    /// removal delta) cost one read-only pass over the map.
    fn join_small(&mut self, own: &CausalContext, other: Self, theirs: &CausalContext) {
        let mut touched = Vec::new();
        for (key, value) in &other.entries {
            value.for_each_dot(&mut |dot| touched.push(dot));
            if let Some(mine) = self.entries.get(key) {
                mine.for_each_dot(&mut |dot| touched.push(dot));
            }
        }
        touched.sort_unstable();
        let elsewhere: Vec<Dot> = theirs
            .iter()
            .filter(|dot| own.contains(dot) && touched.binary_search(dot).is_err())
            .collect();

        for (key, value) in other.entries {
            match self.entries.entry(key) {
                btree_map::Entry::Occupied(mut slot) => {
                    slot.get_mut().join(own, value, theirs);
                    if slot.get().is_empty() {
                        slot.remove();
                    }
                }
                btree_map::Entry::Vacant(slot) => {
                    let mut fresh = V::default();
                    fresh.join(own, value, theirs);
                    if !fresh.is_empty() {
                        slot.insert(fresh);
                    }
                }
            }
        }
        if elsewhere.is_empty() {
            return;
        }
        self.entries.retain(|_, value| {
            let mut hit = false;
            value.for_each_dot(&mut |dot| hit |= elsewhere.binary_search(&dot).is_ok());
            if hit {
                value.join(own, V::default(), theirs);
            }
            !value.is_empty()
        });
    }

    /// Joins by walking both maps in key order: O(n + m).
    fn join_all(&mut self, own: &CausalContext, other: Self, theirs: &CausalContext) {
        let same_keys = self.entries.len() == other.entries.len()
            && self
                .entries
                .keys()
                .zip(other.entries.keys())
                .all(|(a, b)| a == b);
        if same_keys {
            // Join value by value in place: no map is rebuilt (the common
            // case of two replicas of a record with the same fields).
            let mut emptied = false;
            for (mine, yours) in self.entries.values_mut().zip(other.entries.into_values()) {
                mine.join(own, yours, theirs);
                emptied |= mine.is_empty();
            }
            if emptied {
                self.entries.retain(|_, value| !value.is_empty());
            }
            return;
        }
        let mut joined = Vec::with_capacity(self.entries.len().max(other.entries.len()));
        merge_sorted(
            std::mem::take(&mut self.entries),
            other.entries,
            |key, mine, yours| {
                let value = match (mine, yours) {
                    (Some(mut value), yours) => {
                        value.join(own, yours.unwrap_or_default(), theirs);
                        value
                    }
                    (None, Some(value)) => {
                        let mut fresh = V::default();
                        fresh.join(own, value, theirs);
                        fresh
                    }
                    (None, None) => return,
                };
                if !value.is_empty() {
                    joined.push((key, value));
                }
            },
        );
        self.entries = joined.into_iter().collect();
    }
}

/// Walks two key-sorted sequences in step, calling `visit` once per key
/// with the value from each side that has it.
fn merge_sorted<K: Ord, V>(
    left: impl IntoIterator<Item = (K, V)>,
    right: impl IntoIterator<Item = (K, V)>,
    mut visit: impl FnMut(K, Option<V>, Option<V>),
) {
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let order = match (left.peek(), right.peek()) {
            (Some((a, _)), Some((b, _))) => a.cmp(b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => return,
        };
        match order {
            Ordering::Equal => {
                if let (Some((key, a)), Some((_, b))) = (left.next(), right.next()) {
                    visit(key, Some(a), Some(b));
                }
            }
            Ordering::Less => {
                if let Some((key, a)) = left.next() {
                    visit(key, Some(a), None);
                }
            }
            Ordering::Greater => {
                if let Some((key, b)) = right.next() {
                    visit(key, None, Some(b));
                }
            }
        }
    }
}

impl<'de, K, V> Deserialize<'de> for DotMap<K, V>
where
    K: Ord + Deserialize<'de>,
    V: DotStore,
{
    /// Decodes and re-canonicalises: keys holding an empty store are
    /// dropped.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut entries: BTreeMap<K, V> = BTreeMap::deserialize(deserializer)?;
        entries.retain(|_, value| !value.is_empty());
        Ok(DotMap { entries })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ReplicaId;

    type Elements = DotMap<u8, DotSet>;

    /// A state with `keys` elements from replica 1, then replica 2's
    /// deltas: adds (fresh dot, old dots removed) and removes.
    fn delta_for(
        state: &Elements,
        context: &CausalContext,
        op: (bool, u8),
    ) -> (Elements, CausalContext) {
        let (add, key) = op;
        let seen = state
            .get(&key)
            .map_or_else(CausalContext::new, DotStore::dots);
        if add {
            let dot = context.next_dot(ReplicaId(2));
            let mut delta_context = seen;
            delta_context.insert(dot);
            (DotMap::single(key, DotSet::single(dot)), delta_context)
        } else {
            (DotMap::default(), seen)
        }
    }

    /// A dot store and its context from sampled dots: the store holds the
    /// dots marked live, the context every sampled dot.
    fn fun_state(dots: &[(u8, u8, bool)]) -> (DotFun<u8>, CausalContext) {
        let context = CausalContext::from_dots(
            dots.iter()
                .map(|&(replica, counter, _)| Dot::new(u64::from(replica), u64::from(counter))),
        );
        let mut entries: Vec<(Dot, u8)> = dots
            .iter()
            .filter(|(_, _, live)| *live)
            .map(|&(replica, counter, _)| {
                (Dot::new(u64::from(replica), u64::from(counter)), counter)
            })
            .collect();
        entries.sort_unstable();
        entries.dedup_by_key(|entry| entry.0);
        (
            DotFun {
                entries: SmallVec::from_vec(entries),
            },
            context,
        )
    }

    /// Joins the two stores in place and by walking both sides, and
    /// checks that the results are equal.
    fn in_place_join_equals_walk(
        mine: &[(u8, u8, bool)],
        yours: &[(u8, u8, bool)],
    ) -> Result<(), TestCaseError> {
        let (mine, own) = fun_state(mine);
        let (yours, theirs) = fun_state(yours);
        let mut in_place = mine.clone();
        in_place.join(&own, yours.clone(), &theirs);
        let mut walked = mine;
        walked.join_walk(&own, yours.entries, &theirs);
        prop_assert_eq!(in_place, walked);
        Ok(())
    }

    proptest! {
        /// The in-place join of a `DotFun` equals the walk of both sides.
        #[test]
        fn in_place_fun_join_equals_walk(
            mine in proptest::collection::vec((1u8..4, 1u8..8, any::<bool>()), 0..12),
            yours in proptest::collection::vec((1u8..4, 1u8..8, any::<bool>()), 0..12),
        ) {
            in_place_join_equals_walk(&mine, &yours)?;
        }

        /// The same, for stores of one or two entries (registers).
        #[test]
        fn in_place_small_fun_join_equals_walk(
            mine in proptest::collection::vec((1u8..3, 1u8..4, any::<bool>()), 1..3),
            yours in proptest::collection::vec((1u8..3, 1u8..4, any::<bool>()), 1..3),
        ) {
            in_place_join_equals_walk(&mine, &yours)?;
        }

        /// The key-by-key join of a small delta equals the full walk.
        #[test]
        fn small_delta_join_equals_full_join(
            keys in 32u8..100,
            ops in proptest::collection::vec((any::<bool>(), 0u8..120), 1..6),
        ) {
            let state = Elements {
                entries: (0..keys)
                    .map(|key| (key, DotSet::single(Dot::new(1, u64::from(key) + 1))))
                    .collect(),
            };
            let context = state.dots();
            prop_assert_eq!(state.len(), usize::from(keys));
            let mut other = Elements::default();
            let mut other_context = CausalContext::new();
            let mut scratch_state = state.clone();
            let mut scratch_context = context.clone();
            for op in ops {
                let (delta, delta_context) = delta_for(&scratch_state, &scratch_context, op);
                scratch_state.join_all(&scratch_context, delta.clone(), &delta_context);
                scratch_context.union(&delta_context);
                other.join_all(&other_context, delta, &delta_context);
                other_context.union(&delta_context);
            }
            let mut small = state.clone();
            small.join_small(&context, other.clone(), &other_context);
            let mut full = state;
            full.join_all(&context, other, &other_context);
            prop_assert_eq!(small, full);
        }
    }
}
