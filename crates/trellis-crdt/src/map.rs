//! The observed-remove map of nested CRDTs.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Causal, CausalContext, Dot, DotMap, DotStore};

/// An observed-remove map from keys to nested causal CRDTs (registers,
/// sets, flags, counters, or further maps).
///
/// All nested values share the map's causal context. Removing a key drops
/// the dots of its value that the remover has seen.
///
/// **Update concurrent with remove:** the update wins for what it wrote.
/// The entry survives holding exactly the dots the remover had not seen
/// (the concurrent update), and nothing the remover had seen. So a
/// concurrent update to one field of a nested map resurrects the key with
/// only that field.
///
/// ```
/// use trellis_crdt::{Causal, Lattice, MvReg, OrMap, ReplicaId, Timestamp};
///
/// type Profile = OrMap<String, MvReg<String>>;
/// let mut a: Causal<Profile> = Causal::default();
/// a.apply(|map, cx| {
///     map.update(cx, "name".into(), |reg, cx| reg.write(cx, ReplicaId(1), Timestamp(1), "Ada".into()))
/// });
/// let mut b = a.clone();
/// a.apply(|map, _| map.remove(&"name".to_string()));
/// b.apply(|map, cx| {
///     map.update(cx, "name".into(), |reg, cx| reg.write(cx, ReplicaId(2), Timestamp(2), "Grace".into()))
/// });
/// a.merge(b);
/// let name = a.store.get(&"name".to_string()).unwrap();
/// assert_eq!(name.winner(), Some(&"Grace".to_string()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(
    transparent,
    bound(
        serialize = "K: Ord + Serialize, V: Serialize",
        deserialize = "K: Ord + Clone + Serialize + DeserializeOwned, V: DotStore"
    )
)]
pub struct OrMap<K: Ord, V> {
    entries: DotMap<K, V>,
}

impl<K: Ord, V> Default for OrMap<K, V> {
    fn default() -> Self {
        OrMap {
            entries: DotMap::default(),
        }
    }
}

impl<K, V> OrMap<K, V>
where
    K: Ord + Clone + Serialize + DeserializeOwned,
    V: DotStore,
{
    /// Delta: the value under `key` changed by `mutator`, a delta mutator
    /// of the nested type (it sees the current value, or the empty one).
    pub fn update(
        &self,
        cx: &CausalContext,
        key: K,
        mutator: impl FnOnce(&V, &CausalContext) -> Causal<V>,
    ) -> Causal<Self> {
        let delta = match self.entries.get(&key) {
            Some(value) => mutator(value, cx),
            None => mutator(&V::default(), cx),
        };
        let updated = OrMap {
            entries: DotMap::single(key, delta.store),
        };
        Causal::new(updated, delta.context)
    }

    /// A map of the given entries (empty values are left out).
    pub(crate) fn from_entries(entries: impl IntoIterator<Item = (K, V)>) -> Self {
        OrMap {
            entries: DotMap::from_entries(entries),
        }
    }

    /// Delta: `key` removed, as far as this replica has seen its value.
    pub fn remove(&self, key: &K) -> Causal<Self> {
        let seen = self
            .entries
            .get(key)
            .map_or_else(CausalContext::new, DotStore::dots);
        Causal::new(OrMap::default(), seen)
    }

    /// Delta: every key seen so far removed.
    pub fn clear(&self) -> Causal<Self> {
        Causal::new(OrMap::default(), self.dots())
    }

    /// The value under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key)
    }

    /// The entries, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter()
    }

    /// How many keys are present.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<K, V> DotStore for OrMap<K, V>
where
    K: Ord + Clone + Serialize + DeserializeOwned,
    V: DotStore,
{
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn for_each_dot(&self, visit: &mut dyn FnMut(Dot)) {
        self.entries.for_each_dot(visit);
    }

    fn join(&mut self, own: &CausalContext, other: Self, theirs: &CausalContext) {
        self.entries.join(own, other.entries, theirs);
    }
}
