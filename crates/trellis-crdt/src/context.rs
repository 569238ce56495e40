//! The causal context: which events a state has seen.

use std::collections::{btree_map, BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize};

use crate::{Dot, ReplicaId};

/// A compact set of [`Dot`]s: every event a state has observed.
///
/// It is stored as a version vector (for each replica, the highest counter
/// up to which *every* event has been seen) plus a *dot cloud* holding the
/// events seen out of order. Whenever a gap closes the cloud is folded back
/// into the vector, so a replica's context stays a few bytes per replica no
/// matter how many events it has seen.
///
/// The representation is canonical: two contexts holding the same set of
/// dots are equal field by field and encode to the same bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct CausalContext {
    vector: BTreeMap<ReplicaId, u64>,
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    /// The empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// A context holding exactly `dots`.
    pub fn from_dots(dots: impl IntoIterator<Item = Dot>) -> Self {
        let mut context = CausalContext {
            vector: BTreeMap::new(),
            cloud: dots.into_iter().filter(|dot| dot.counter > 0).collect(),
        };
        context.compact();
        context
    }

    /// Whether `dot` has been observed.
    pub fn contains(&self, dot: &Dot) -> bool {
        dot.counter > 0
            && self
                .vector
                .get(&dot.replica)
                .is_some_and(|&seen| dot.counter <= seen)
            || self.cloud.contains(dot)
    }

    /// Whether no event at all has been observed.
    pub fn is_empty(&self) -> bool {
        self.vector.is_empty() && self.cloud.is_empty()
    }

    /// The highest counter of `replica` observed, contiguous or not.
    pub fn max_counter(&self, replica: ReplicaId) -> u64 {
        let contiguous = self.vector.get(&replica).copied().unwrap_or(0);
        let scattered = self
            .cloud
            .range(Dot::new(replica, 0)..=Dot::new(replica, u64::MAX))
            .next_back()
            .map_or(0, |dot| dot.counter);
        contiguous.max(scattered)
    }

    /// The next fresh dot for `replica`. It is not recorded; call
    /// [`insert`](Self::insert) (or merge a delta holding it) for that.
    pub fn next_dot(&self, replica: ReplicaId) -> Dot {
        Dot::new(replica, self.max_counter(replica).saturating_add(1))
    }

    /// Records `dot` as observed.
    pub fn insert(&mut self, dot: Dot) {
        if dot.counter == 0 || self.contains(&dot) {
            return;
        }
        let seen = self.vector.entry(dot.replica).or_insert(0);
        if dot.counter == seen.saturating_add(1) {
            *seen += 1;
            self.absorb_cloud(dot.replica);
        } else {
            if *seen == 0 {
                self.vector.remove(&dot.replica);
            }
            self.cloud.insert(dot);
        }
    }

    /// Adds every dot of `other` (the join of two contexts).
    pub fn union(&mut self, other: &CausalContext) {
        for (&replica, &seen) in &other.vector {
            match self.vector.get_mut(&replica) {
                Some(entry) => *entry = (*entry).max(seen),
                None if seen > 0 => {
                    self.vector.insert(replica, seen);
                }
                None => {}
            }
        }
        if self.cloud.is_empty() && other.cloud.is_empty() {
            // Both are plain version vectors: the maxima are the union,
            // already compact (no zero entry was added).
            return;
        }
        self.cloud.extend(other.cloud.iter().copied());
        self.compact();
    }

    /// Whether every dot of `other` is in this context: whoever holds this
    /// context has seen every event `other` has.
    pub fn includes(&self, other: &CausalContext) -> bool {
        let vector_covered = other.vector.iter().all(|(&replica, &seen)| {
            let mine = self.vector.get(&replica).copied().unwrap_or(0);
            // Beyond my contiguous prefix, each of the other's events must be
            // in my cloud; the cloud is small, so this stays cheap.
            mine >= seen
                || (mine + 1..=seen).all(|counter| self.cloud.contains(&Dot::new(replica, counter)))
        });
        vector_covered && other.cloud.iter().all(|dot| self.contains(dot))
    }

    /// How many dots the context holds (saturating at `u64::MAX`).
    pub fn dot_count(&self) -> u64 {
        let contiguous = self
            .vector
            .values()
            .fold(0u64, |sum, &seen| sum.saturating_add(seen));
        contiguous.saturating_add(self.cloud.len() as u64)
    }

    /// Every dot the context holds, in order. This enumerates the version
    /// vector's ranges, so check [`dot_count`](Self::dot_count) first.
    pub fn iter(&self) -> impl Iterator<Item = Dot> + '_ {
        let contiguous = self.vector.iter().flat_map(|(&replica, &seen)| {
            (1..=seen).map(move |counter| Dot::new(replica, counter))
        });
        let mut all: Vec<Dot> = contiguous.chain(self.cloud.iter().copied()).collect();
        all.sort_unstable();
        all.into_iter()
    }

    /// The version vector part: for each replica, the counter up to which
    /// every event has been observed.
    pub fn vector(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.vector.iter().map(|(&replica, &seen)| (replica, seen))
    }

    /// The dots observed out of order, beyond the version vector.
    pub fn cloud(&self) -> impl Iterator<Item = Dot> + '_ {
        self.cloud.iter().copied()
    }

    /// Folds every cloud dot that the vector now covers or extends.
    fn compact(&mut self) {
        self.vector.retain(|_, seen| *seen > 0);
        let mut remaining = BTreeSet::new();
        for dot in std::mem::take(&mut self.cloud) {
            match self.vector.entry(dot.replica) {
                btree_map::Entry::Occupied(mut seen)
                    if dot.counter <= seen.get().saturating_add(1) =>
                {
                    let extended = (*seen.get()).max(dot.counter);
                    seen.insert(extended);
                }
                btree_map::Entry::Vacant(slot) if dot.counter == 1 => {
                    slot.insert(1);
                }
                _ => {
                    remaining.insert(dot);
                }
            }
        }
        self.cloud = remaining;
    }

    /// After `replica`'s vector entry grew, pulls in cloud dots that now
    /// continue it.
    fn absorb_cloud(&mut self, replica: ReplicaId) {
        let Some(seen) = self.vector.get_mut(&replica) else {
            return;
        };
        while *seen < u64::MAX && self.cloud.remove(&Dot::new(replica, *seen + 1)) {
            *seen += 1;
        }
    }
}

impl<'de> Deserialize<'de> for CausalContext {
    /// Decodes and re-canonicalises: stale encodings (zero entries, cloud
    /// dots the vector covers) are folded, and counters beyond
    /// [`MAX_COUNTER`](crate::MAX_COUNTER) are refused.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            vector: BTreeMap<ReplicaId, u64>,
            cloud: BTreeSet<Dot>,
        }
        let raw = Raw::deserialize(deserializer)?;
        for &seen in raw.vector.values() {
            if seen != 0 {
                crate::replica::valid_counter::<D::Error>(seen)?;
            }
        }
        let mut context = CausalContext {
            vector: raw.vector,
            cloud: raw.cloud,
        };
        context.compact();
        Ok(context)
    }
}

impl FromIterator<Dot> for CausalContext {
    fn from_iter<I: IntoIterator<Item = Dot>>(iter: I) -> Self {
        Self::from_dots(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(replica: u64, counter: u64) -> Dot {
        Dot::new(replica, counter)
    }

    #[test]
    fn inclusion_follows_the_dots() {
        let small = CausalContext::from_dots([dot(1, 1), dot(1, 2), dot(2, 5)]);
        let big = CausalContext::from_dots([dot(1, 1), dot(1, 2), dot(1, 3), dot(2, 5), dot(3, 1)]);
        assert!(big.includes(&small));
        assert!(!small.includes(&big));
        assert!(small.includes(&small));
        assert!(small.includes(&CausalContext::new()));
        // A vector entry is covered by cloud dots too.
        let cloudy = CausalContext::from_dots([dot(2, 5), dot(1, 2), dot(1, 1)]);
        assert!(cloudy.includes(&CausalContext::from_dots([dot(1, 1), dot(1, 2)])));
        assert!(!cloudy.includes(&CausalContext::from_dots([dot(2, 4)])));
    }

    #[test]
    fn contiguous_dots_fold_into_the_vector() {
        let mut context = CausalContext::new();
        context.insert(dot(1, 2));
        context.insert(dot(1, 3));
        assert_eq!(context.cloud().count(), 2);
        context.insert(dot(1, 1));
        assert_eq!(context.cloud().count(), 0);
        assert_eq!(
            context.vector().collect::<Vec<_>>(),
            vec![(ReplicaId(1), 3)]
        );
        assert!(context.contains(&dot(1, 3)));
        assert!(!context.contains(&dot(1, 4)));
        assert_eq!(context.next_dot(ReplicaId(1)), dot(1, 4));
    }

    #[test]
    fn union_compacts_and_is_canonical() {
        let a = CausalContext::from_dots([dot(1, 1), dot(1, 3), dot(2, 5)]);
        let b = CausalContext::from_dots([dot(1, 2), dot(2, 1)]);
        let mut ab = a.clone();
        ab.union(&b);
        let mut ba = b.clone();
        ba.union(&a);
        assert_eq!(ab, ba);
        assert_eq!(
            ab,
            CausalContext::from_dots([dot(1, 1), dot(1, 2), dot(1, 3), dot(2, 1), dot(2, 5)])
        );
        assert_eq!(ab.cloud().collect::<Vec<_>>(), vec![dot(2, 5)]);
    }

    #[test]
    fn next_dot_skips_past_cloud_dots() {
        let context = CausalContext::from_dots([dot(7, 4)]);
        assert_eq!(context.next_dot(ReplicaId(7)), dot(7, 5));
    }

    #[test]
    fn zero_counters_are_ignored() {
        let mut context = CausalContext::new();
        context.insert(dot(1, 0));
        assert!(context.is_empty());
    }
}
