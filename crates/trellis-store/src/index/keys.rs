//! [`KeyList`]: the keys of one tree node, stored back to back in a single
//! buffer.
//!
//! Keeping a node's keys together means a binary search over them touches
//! a few adjacent cache lines instead of one heap allocation per key, and
//! saves the per-key allocation and pointer.

/// An ordered list of strings in one buffer: key `i` is
/// `bytes[ends[i - 1]..ends[i]]` (with `ends[-1] = 0`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct KeyList {
    bytes: String,
    ends: Vec<usize>,
}

impl KeyList {
    /// An empty list with room for `keys` keys.
    pub(super) fn with_capacity(keys: usize) -> KeyList {
        KeyList {
            bytes: String::new(),
            ends: Vec::with_capacity(keys),
        }
    }

    /// How many keys.
    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the list holds no keys.
    pub(super) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Makes room for `keys` keys in total, exactly.
    pub(super) fn reserve_keys(&mut self, keys: usize) {
        self.ends
            .reserve_exact(keys.saturating_sub(self.ends.len()));
    }

    /// Drops spare room in the key bytes (after a bulk build).
    pub(super) fn shrink_bytes(&mut self) {
        self.bytes.shrink_to_fit();
    }

    #[inline]
    fn start(&self, index: usize) -> usize {
        if index == 0 {
            0
        } else {
            self.ends[index - 1]
        }
    }

    /// Key `index`.
    #[inline]
    pub(super) fn get(&self, index: usize) -> &str {
        &self.bytes[self.start(index)..self.ends[index]]
    }

    /// The bytes of key `index`: byte order is the order of `str`, and
    /// skipping the character-boundary checks keeps searches fast.
    #[inline]
    fn get_bytes(&self, index: usize) -> &[u8] {
        &self.bytes.as_bytes()[self.start(index)..self.ends[index]]
    }

    /// The first key, if any.
    pub(super) fn first(&self) -> Option<&str> {
        (!self.is_empty()).then(|| self.get(0))
    }

    /// The last key, if any.
    pub(super) fn last(&self) -> Option<&str> {
        self.len().checked_sub(1).map(|index| self.get(index))
    }

    /// The number of leading keys for which `below` holds (given the
    /// key's bytes), given that it holds for a prefix of the list.
    #[inline]
    pub(super) fn partition_point(&self, below: impl Fn(&[u8]) -> bool) -> usize {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = low + (high - low) / 2;
            if below(self.get_bytes(middle)) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    /// `Ok(index)` of `key`, or `Err(index)` where it would be inserted.
    pub(super) fn binary_search(&self, key: &str) -> Result<usize, usize> {
        let key = key.as_bytes();
        let index = self.partition_point(|probe| probe < key);
        if index < self.len() && self.get_bytes(index) == key {
            Ok(index)
        } else {
            Err(index)
        }
    }

    /// Makes room for `more` key bytes, leaving at most about an eighth of
    /// the buffer spare (rather than doubling it): nodes are many and small.
    fn reserve_bytes(&mut self, more: usize) {
        if self.bytes.capacity() - self.bytes.len() < more {
            self.bytes.reserve_exact(more + self.bytes.len() / 8);
        }
    }

    /// Inserts `key` so that it becomes key `index`.
    pub(super) fn insert(&mut self, index: usize, key: &str) {
        self.reserve_bytes(key.len());
        let start = self.start(index);
        self.bytes.insert_str(start, key);
        for end in &mut self.ends[index..] {
            *end += key.len();
        }
        self.ends.insert(index, start + key.len());
    }

    /// Appends `key`.
    pub(super) fn push(&mut self, key: &str) {
        self.insert(self.len(), key);
    }

    /// Removes key `index`.
    pub(super) fn delete(&mut self, index: usize) {
        let (start, end) = (self.start(index), self.ends[index]);
        self.bytes.replace_range(start..end, "");
        self.ends.remove(index);
        for later in &mut self.ends[index..] {
            *later -= end - start;
        }
    }

    /// Removes and returns key `index`.
    pub(super) fn remove(&mut self, index: usize) -> String {
        let key = self.get(index).to_owned();
        self.delete(index);
        key
    }

    /// Removes and returns the last key.
    pub(super) fn pop(&mut self) -> Option<String> {
        let last = self.len().checked_sub(1)?;
        Some(self.remove(last))
    }

    /// Replaces key `index` with `key`, returning the old key.
    pub(super) fn replace(&mut self, index: usize, key: &str) -> String {
        let old = self.remove(index);
        self.insert(index, key);
        old
    }

    /// Moves keys `at..` into a new list with room for `capacity` keys.
    pub(super) fn split_off(&mut self, at: usize, capacity: usize) -> KeyList {
        let start = self.start(at);
        let mut ends = Vec::with_capacity(capacity.max(self.len() - at));
        ends.extend(self.ends.drain(at..).map(|end| end - start));
        let bytes = self.bytes.split_off(start);
        self.bytes.shrink_to(start + start / 8);
        KeyList { bytes, ends }
    }

    /// Moves every key of `other` (all greater than this list's) to the
    /// end of this list.
    pub(super) fn append(&mut self, other: &mut KeyList) {
        let offset = self.bytes.len();
        self.reserve_bytes(other.bytes.len());
        self.bytes.push_str(&other.bytes);
        self.ends.extend(other.ends.iter().map(|end| end + offset));
        other.bytes.clear();
        other.ends.clear();
    }

    /// The keys in order.
    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(|index| self.get(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(keys: &[&str]) -> KeyList {
        let mut list = KeyList::default();
        for key in keys {
            list.push(key);
        }
        list
    }

    fn keys(list: &KeyList) -> Vec<&str> {
        list.iter().collect()
    }

    #[test]
    fn edits_keep_keys_intact() {
        let mut list = list(&["b", "dd", "fff"]);
        list.insert(0, "");
        list.insert(2, "cc");
        assert_eq!(keys(&list), ["", "b", "cc", "dd", "fff"]);
        assert_eq!(list.binary_search("cc"), Ok(2));
        assert_eq!(list.binary_search("c"), Err(2));
        assert_eq!(list.binary_search("z"), Err(5));
        assert_eq!(list.remove(1), "b");
        assert_eq!(list.replace(0, "a"), "");
        assert_eq!(keys(&list), ["a", "cc", "dd", "fff"]);
        let mut tail = list.split_off(2, 8);
        assert_eq!(keys(&list), ["a", "cc"]);
        assert_eq!(keys(&tail), ["dd", "fff"]);
        assert_eq!(tail.pop().as_deref(), Some("fff"));
        list.append(&mut tail);
        assert!(tail.is_empty());
        assert_eq!(keys(&list), ["a", "cc", "dd"]);
        assert_eq!((list.first(), list.last()), (Some("a"), Some("dd")));
        assert_eq!(list.partition_point(|key| key <= b"cc".as_slice()), 2);
    }

    #[test]
    fn multibyte_keys_split_on_key_boundaries() {
        let mut list = list(&["é", "ü", "漢字"]);
        let tail = list.split_off(1, 4);
        assert_eq!(keys(&list), ["é"]);
        assert_eq!(keys(&tail), ["ü", "漢字"]);
    }
}
