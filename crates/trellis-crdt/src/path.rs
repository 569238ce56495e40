//! `FieldPath`: where a field sits inside a record's nested maps.

use std::fmt;

use compact_str::CompactString;
use serde::{Deserialize, Deserializer, Serialize};
use smallvec::SmallVec;

/// The deepest nesting a record accepts.
pub const MAX_DEPTH: usize = 32;

/// The path of a field: its name, preceded by the names of the nested maps
/// it sits in. `["address", "city"]` is the `city` field of the nested map
/// `address`.
///
/// Nested maps are not stored as separate objects: a map exists while any
/// field under its path exists. That keeps records flat (no recursion when
/// decoding hostile bytes) while giving the semantics of an observed-remove
/// map of maps.
///
/// A top-level name (the common case) is stored inline, and so is each
/// name of up to 24 bytes (`compact_str`'s `CompactString`): records are
/// merged field by field, and a path compared and dropped then has no heap
/// memory to read or free. Paths order, compare and encode as sequences of
/// strings (as a `Vec<String>` would).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct FieldPath(SmallVec<[CompactString; 1]>);

impl<'de> Deserialize<'de> for FieldPath {
    /// Decodes and validates: a path that [`FieldPath::new`] would refuse
    /// (empty, an empty name, deeper than [`MAX_DEPTH`]) is a decode error,
    /// so hostile bytes cannot smuggle in a path nested deeply enough to
    /// exhaust the stack when rendered.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Through `Vec`, whose decoding caps what a hostile length can
        // reserve up front.
        let names = Vec::<String>::deserialize(deserializer)?;
        let path = FieldPath(names.into_iter().map(CompactString::from).collect());
        path.validate().map_err(serde::de::Error::custom)?;
        Ok(path)
    }
}

/// A field path that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path has no segment.
    #[error("a field path needs at least one name")]
    Empty,
    /// A segment is the empty string.
    #[error("field path {0:?} has an empty name; every segment needs at least one character")]
    EmptySegment(String),
    /// The path is nested too deeply.
    #[error("field path {path:?} is nested {depth} levels deep; the limit is {MAX_DEPTH}")]
    TooDeep {
        /// The path, dotted.
        path: String,
        /// Its depth.
        depth: usize,
    },
}

impl FieldPath {
    /// A path from its segments, checked: at least one, none empty, at
    /// most [`MAX_DEPTH`].
    pub fn new<S: Into<CompactString>>(
        segments: impl IntoIterator<Item = S>,
    ) -> Result<Self, PathError> {
        let path = FieldPath(segments.into_iter().map(Into::into).collect());
        path.validate()?;
        Ok(path)
    }

    /// A top-level field.
    pub fn top(name: impl Into<CompactString>) -> Result<Self, PathError> {
        Self::new([name])
    }

    /// Checks the invariants [`FieldPath::new`] establishes.
    pub fn validate(&self) -> Result<(), PathError> {
        if self.0.is_empty() {
            return Err(PathError::Empty);
        }
        if self.0.iter().any(CompactString::is_empty) {
            return Err(PathError::EmptySegment(self.to_string()));
        }
        if self.0.len() > MAX_DEPTH {
            return Err(PathError::TooDeep {
                path: self.to_string(),
                depth: self.0.len(),
            });
        }
        Ok(())
    }

    /// The names, outermost first.
    pub fn segments(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.0.iter().map(CompactString::as_str)
    }

    /// This path extended by `name`.
    pub fn child(&self, name: impl Into<CompactString>) -> FieldPath {
        let mut segments = self.0.clone();
        segments.push(name.into());
        FieldPath(segments)
    }

    /// Whether `self` is `other` or lies inside it.
    pub fn starts_with(&self, other: &FieldPath) -> bool {
        self.0.starts_with(&other.0)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (at, name) in self.segments().enumerate() {
            if at > 0 {
                f.write_str(".")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_path_is_as_small_as_a_string_and_a_length() {
        assert_eq!(
            std::mem::size_of::<CompactString>(),
            std::mem::size_of::<String>()
        );
        assert_eq!(std::mem::size_of::<FieldPath>(), 32);
    }

    #[test]
    fn long_names_are_kept_whole() {
        let long = "n".repeat(25);
        let edge = "é".repeat(12);
        let path = FieldPath::new([long.as_str(), edge.as_str(), "city"]).unwrap();
        assert_eq!(
            path.segments().collect::<Vec<_>>(),
            vec![long.as_str(), edge.as_str(), "city"]
        );
        assert_eq!(path.to_string(), format!("{long}.{edge}.city"));
        assert_eq!(
            format!("{:?}", FieldPath::top("a").unwrap()),
            r#"FieldPath(["a"])"#
        );
    }

    proptest! {
        /// Paths order, compare and encode exactly as their names would
        /// as a `Vec<String>`.
        #[test]
        fn paths_behave_as_vectors_of_strings(
            a in proptest::collection::vec("[a-zé]{1,30}", 1..4),
            b in proptest::collection::vec("[a-zé]{1,30}", 1..4),
        ) {
            let (pa, pb) = (FieldPath::new(a.clone()).unwrap(), FieldPath::new(b.clone()).unwrap());
            prop_assert_eq!(pa.cmp(&pb), a.cmp(&b));
            prop_assert_eq!(pa == pb, a == b);
            prop_assert_eq!(crate::codec::encode(&pa), crate::codec::encode(&a));
            let back: FieldPath = crate::codec::decode(&crate::codec::encode(&a)).unwrap();
            prop_assert_eq!(back, pa);
        }
    }
}
