//! `FieldPath`: where a field sits inside a record's nested maps.

use std::fmt;

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
/// A top-level name (the common case) is stored inline, without a heap
/// vector around its one `String`: records are merged field by field, and
/// each path compared and dropped costs one pointer less to follow and one
/// allocation less to free. The encoding is that of a sequence of strings,
/// as for a `Vec<String>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct FieldPath(SmallVec<[String; 1]>);

impl<'de> Deserialize<'de> for FieldPath {
    /// Decodes and validates: a path that [`FieldPath::new`] would refuse
    /// (empty, an empty name, deeper than [`MAX_DEPTH`]) is a decode error,
    /// so hostile bytes cannot smuggle in a path nested deeply enough to
    /// exhaust the stack when rendered.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Through `Vec`, whose decoding caps what a hostile length can
        // reserve up front.
        let path = FieldPath(SmallVec::from_vec(Vec::deserialize(deserializer)?));
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
    pub fn new<S: Into<String>>(segments: impl IntoIterator<Item = S>) -> Result<Self, PathError> {
        let path = FieldPath(segments.into_iter().map(Into::into).collect());
        path.validate()?;
        Ok(path)
    }

    /// A top-level field.
    pub fn top(name: impl Into<String>) -> Result<Self, PathError> {
        Self::new([name])
    }

    /// Checks the invariants [`FieldPath::new`] establishes.
    pub fn validate(&self) -> Result<(), PathError> {
        if self.0.is_empty() {
            return Err(PathError::Empty);
        }
        if self.0.iter().any(String::is_empty) {
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

    /// The segments, outermost first.
    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// This path extended by `name`.
    pub fn child(&self, name: impl Into<String>) -> FieldPath {
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
        f.write_str(&self.0.join("."))
    }
}
