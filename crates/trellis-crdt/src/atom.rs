//! `Atom`: the scalar values records hold in registers and sets.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A 64-bit float with a total order (by `f64::total_cmp`) and bitwise
/// equality, so it can be a set element and encodes deterministically.
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct F64(pub f64);

impl PartialEq for F64 {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for F64 {}

impl PartialOrd for F64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for F64 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl std::hash::Hash for F64 {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

impl fmt::Debug for F64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A value a record's register holds or a record's set contains.
///
/// Scalars map one to one onto JSON. JSON arrays (and objects inside
/// arrays) are kept whole as canonical JSON text in [`Atom::Json`]: a
/// register replaces them as a unit. Atoms order first by variant, in the
/// order listed, then by value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Atom {
    /// JSON `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A float.
    Float(F64),
    /// A string.
    Str(String),
    /// A JSON array, as canonical JSON text (object keys sorted).
    Json(String),
}

impl From<&str> for Atom {
    fn from(value: &str) -> Self {
        Atom::Str(value.to_owned())
    }
}

impl From<String> for Atom {
    fn from(value: String) -> Self {
        Atom::Str(value)
    }
}

impl From<i64> for Atom {
    fn from(value: i64) -> Self {
        Atom::Int(value)
    }
}

impl From<bool> for Atom {
    fn from(value: bool) -> Self {
        Atom::Bool(value)
    }
}

impl From<f64> for Atom {
    fn from(value: f64) -> Self {
        Atom::Float(F64(value))
    }
}
