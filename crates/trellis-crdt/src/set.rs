//! The add-wins observed-remove set.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, SeqAccess, Visitor};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Causal, CausalContext, Dot, DotMap, DotSet, DotStore, ReplicaId};

/// An add-wins observed-remove set.
///
/// Each add tags the element with a fresh dot; a remove drops the dots it
/// has seen. An add concurrent with a remove therefore survives: add wins.
/// Removed elements leave no tombstone behind, only their dots in the
/// causal context, which compacts into a version vector.
///
/// ```
/// use trellis_crdt::{AwSet, Causal, Lattice, ReplicaId};
///
/// let mut a: Causal<AwSet<String>> = Causal::default();
/// a.apply(|set, cx| set.add(cx, ReplicaId(1), "vip".to_string()));
/// let mut b = a.clone();
/// a.apply(|set, _| set.remove(&"vip".to_string()));
/// b.apply(|set, cx| set.add(cx, ReplicaId(2), "vip".to_string()));
/// a.merge(b);
/// assert!(a.store.contains(&"vip".to_string()), "the concurrent add wins");
/// ```
///
/// # Encoding
///
/// A sequence of `(element, words)` in element order, where `words` lists
/// the element's dots as `u64`s, two (or three) per dot: a *reference* to
/// the replica, then the dot's counter as a zigzag difference from the
/// previous counter of the same replica in this encoding (from 0). A
/// reference `k ≥ 1` names the `k`-th replica named so far; `0` names a new
/// one, whose id follows before the counter. So each replica id is written
/// once per set, and an element added by a known replica costs its key
/// plus about three bytes instead of a 9-byte id per dot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AwSet<E: Ord> {
    elements: DotMap<E, DotSet>,
}

impl<E: Ord> Default for AwSet<E> {
    fn default() -> Self {
        AwSet {
            elements: DotMap::default(),
        }
    }
}

impl<E> AwSet<E>
where
    E: Ord + Clone + Serialize + DeserializeOwned,
{
    /// Delta: `element` added by `replica`.
    pub fn add(&self, cx: &CausalContext, replica: ReplicaId, element: E) -> Causal<Self> {
        let dot = cx.next_dot(replica);
        let seen = self.dots_of(&element);
        let added = AwSet {
            elements: DotMap::single(element, DotSet::single(dot)),
        };
        Causal::new(added, seen)
    }

    /// Delta: `element` removed, as far as this replica has seen it.
    pub fn remove(&self, element: &E) -> Causal<Self> {
        Causal::new(AwSet::default(), self.dots_of(element))
    }

    /// Delta: every element seen so far removed.
    pub fn clear(&self) -> Causal<Self> {
        Causal::new(AwSet::default(), self.dots())
    }

    /// Whether `element` is present.
    pub fn contains(&self, element: &E) -> bool {
        self.elements.get(element).is_some()
    }

    /// The elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = &E> {
        self.elements.iter().map(|(element, _)| element)
    }

    /// How many elements are present.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    fn dots_of(&self, element: &E) -> CausalContext {
        self.elements
            .get(element)
            .map_or_else(CausalContext::new, DotStore::dots)
    }
}

impl<E> DotStore for AwSet<E>
where
    E: Ord + Clone + Serialize + DeserializeOwned,
{
    fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    fn for_each_dot(&self, visit: &mut dyn FnMut(Dot)) {
        self.elements.for_each_dot(visit);
    }

    fn join(&mut self, own: &CausalContext, other: Self, theirs: &CausalContext) {
        self.elements.join(own, other.elements, theirs);
    }
}

/// Zigzag: small differences of either sign become small unsigned numbers.
fn zigzag(delta: u64) -> u64 {
    (delta << 1) ^ (delta >> 63).wrapping_neg()
}

fn unzigzag(word: u64) -> u64 {
    (word >> 1) ^ (word & 1).wrapping_neg()
}

impl<E: Ord + Serialize> Serialize for AwSet<E> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Replica → (reference, last counter written).
        let mut named: BTreeMap<ReplicaId, (u64, u64)> = BTreeMap::new();
        let mut words = Vec::new();
        let mut seq = serializer.serialize_seq(Some(self.elements.len()))?;
        for (element, dots) in self.elements.iter() {
            words.clear();
            for dot in dots.iter() {
                let next = named.len() as u64 + 1;
                let (reference, last) = named.entry(dot.replica).or_insert((next, 0));
                if *reference == next {
                    words.extend([0, dot.replica.0]);
                } else {
                    words.push(*reference);
                }
                words.push(zigzag(dot.counter.wrapping_sub(*last)));
                *last = dot.counter;
            }
            seq.serialize_element(&(element, &words))?;
        }
        seq.end()
    }
}

impl<'de, E> Deserialize<'de> for AwSet<E>
where
    E: Ord + Clone + Serialize + DeserializeOwned,
{
    /// Decodes and re-canonicalises: dots are sorted and deduplicated,
    /// elements without dots are dropped, and a repeated element keeps its
    /// last dots. A reference to a replica not yet named, a replica named
    /// twice, a dot without its counter and a counter outside
    /// `1..=MAX_COUNTER` are errors.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Elements<E>(PhantomData<E>);

        impl<'de, E> Visitor<'de> for Elements<E>
        where
            E: Ord + Clone + Serialize + DeserializeOwned,
        {
            type Value = AwSet<E>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence of (element, dot words)")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // Each replica named so far: its id and last counter.
                let mut named: Vec<(ReplicaId, u64)> = Vec::new();
                let mut elements = BTreeMap::new();
                while let Some((element, words)) = seq.next_element::<(E, Vec<u64>)>()? {
                    let mut dots = Vec::with_capacity(words.len() / 2);
                    let mut words = words.into_iter();
                    while let Some(reference) = words.next() {
                        let slot = if reference == 0 {
                            let id = ReplicaId(words.next().ok_or_else(|| {
                                de::Error::custom("a set names a new replica without its id")
                            })?);
                            if named.iter().any(|(known, _)| *known == id) {
                                return Err(de::Error::custom(format_args!(
                                    "a set names replica {id} twice"
                                )));
                            }
                            named.push((id, 0));
                            named.len() - 1
                        } else {
                            usize::try_from(reference - 1)
                                .ok()
                                .filter(|&slot| slot < named.len())
                                .ok_or_else(|| {
                                    de::Error::custom(format_args!(
                                        "a set refers to replica {reference} when only {} \
                                         are named",
                                        named.len()
                                    ))
                                })?
                        };
                        let delta = words.next().ok_or_else(|| {
                            de::Error::custom("a set's dot is cut off before its counter")
                        })?;
                        let (replica, last) = &mut named[slot];
                        let counter =
                            crate::replica::valid_counter(last.wrapping_add(unzigzag(delta)))?;
                        *last = counter;
                        dots.push(Dot {
                            replica: *replica,
                            counter,
                        });
                    }
                    elements.insert(element, DotSet::from_dots(dots));
                }
                Ok(AwSet {
                    elements: DotMap::from_entries(elements),
                })
            }
        }

        deserializer.deserialize_seq(Elements(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{codec, Lattice};

    #[test]
    fn zigzag_round_trips_at_the_edges() {
        for delta in [0u64, 1, 2, u64::MAX, u64::MAX - 1, 1 << 62, 1 << 63] {
            assert_eq!(unzigzag(zigzag(delta)), delta);
        }
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(u64::MAX), 1, "-1 is 1");
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn replica_ids_are_written_once() {
        let (a, b) = (ReplicaId(0x1234_5678_9abc_def0), ReplicaId(u64::MAX - 7));
        let mut set: Causal<AwSet<u32>> = Causal::default();
        for element in 0..200u32 {
            let replica = if element % 3 == 0 { a } else { b };
            set.apply(|s, cx| s.add(cx, replica, element));
        }
        // A concurrent add: element 5 holds two dots.
        let mut other = set.clone();
        other.apply(|s, cx| s.add(cx, a, 5));
        set.apply(|s, cx| s.add(cx, b, 5));
        set.merge(other);
        assert_eq!(set.store.elements.get(&5).map(DotSet::len), Some(2));

        let bytes = codec::encode(&set.store);
        // Two ids of 9 bytes once each, then about 4 bytes per element.
        assert!(bytes.len() < 2 * 9 + 200 * 5, "{} bytes", bytes.len());
        let back: AwSet<u32> = codec::decode(&bytes).unwrap();
        assert_eq!(back, set.store);
        let whole: Causal<AwSet<u32>> = codec::decode(&codec::encode(&set)).unwrap();
        assert_eq!(whole, set);
    }

    /// The encoding of a set whose elements (u8) carry the given words.
    fn encoded(entries: &[(u8, &[u64])]) -> Vec<u8> {
        let entries: Vec<(u8, Vec<u64>)> = entries
            .iter()
            .map(|(element, words)| (*element, words.to_vec()))
            .collect();
        codec::encode(&entries)
    }

    fn refused(entries: &[(u8, &[u64])], needle: &str) {
        let err = codec::decode::<AwSet<u8>>(&encoded(entries)).unwrap_err();
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }

    #[test]
    fn bad_replica_references_and_counters_are_refused() {
        let id = 0xabcd;
        refused(&[(1, &[1, 2])], "refers to replica 1 when only 0 are named");
        refused(&[(1, &[0, id, 2]), (2, &[2, 2])], "refers to replica 2");
        refused(&[(1, &[u64::MAX, 2])], "when only 0 are named");
        refused(&[(1, &[0])], "without its id");
        refused(&[(1, &[0, id])], "cut off before its counter");
        refused(&[(1, &[0, id, 2]), (2, &[1])], "cut off before its counter");
        refused(&[(1, &[0, id, 2]), (2, &[0, id, 2])], "names replica");
        // Counter 0, and counters past MAX_COUNTER (by a wrapping delta).
        refused(&[(1, &[0, id, 0])], "outside");
        refused(&[(1, &[0, id, 2]), (2, &[1, 1])], "outside");
        refused(&[(1, &[0, id, zigzag(crate::MAX_COUNTER + 1)])], "outside");
    }

    #[test]
    fn lenient_but_canonical_decoding() {
        // Dots out of order and repeated, an element without dots, and a
        // repeated element: decoded into the canonical state.
        let id = 0xabcd;
        let back = |delta: u64| zigzag(delta.wrapping_neg());
        let bytes = encoded(&[
            (3, &[0, id, zigzag(10), 1, back(5), 1, back(3)]),
            (4, &[]),
            (3, &[1, 0]),
        ]);
        let set: AwSet<u8> = codec::decode(&bytes).unwrap();
        let dots: Vec<Dot> = set.elements.get(&3).unwrap().iter().collect();
        // The last entry for 3 wins; its counter continues from the last
        // one written for the replica (10, then 5, then 2).
        assert_eq!(dots, vec![Dot::new(id, 2)]);
        assert!(!set.contains(&4));
        assert_eq!(
            codec::decode::<AwSet<u8>>(&codec::encode(&set)).unwrap(),
            set
        );
    }
}
