//! Canonical digests of CRDT states.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::codec;

/// The blake3 hash of a value's canonical [`codec`] encoding.
///
/// Replicas holding equal state have equal digests on every platform, which
/// is what anti-entropy compares instead of whole states.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of `value`'s canonical encoding.
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Digest {
        let mut hasher = blake3::Hasher::new();
        codec::encode_into_writer(value, &mut hasher);
        Digest(*hasher.finalize().as_bytes())
    }

    /// The digest of a value from its [`codec`] encoding, for callers that
    /// already hold the bytes: `Digest::of_encoding(&codec::encode(v))`
    /// equals `Digest::of(v)`.
    pub fn of_encoding(encoded: &[u8]) -> Digest {
        Digest(*blake3::hash(encoded).as_bytes())
    }

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hexadecimal, 64 characters.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_encoding_matches_digest_of_value() {
        let value = (1u8, "lead".to_string());
        assert_eq!(
            Digest::of(&value),
            Digest::of_encoding(&codec::encode(&value))
        );
    }
}
