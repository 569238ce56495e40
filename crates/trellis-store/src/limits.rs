//! Size and naming limits, checked before anything is stored.

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Limits on what the store accepts. The defaults suit business records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longest key, in bytes of UTF-8. Default 512.
    pub max_key_bytes: usize,
    /// Largest record, encoded. Default 1 MiB.
    pub max_record_bytes: usize,
    /// Most fields in one record, nested fields included. Default 1024.
    pub max_fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 512,
            max_record_bytes: 1 << 20,
            max_fields: 1024,
        }
    }
}

/// The longest collection name.
pub const MAX_COLLECTION_NAME: usize = 64;

/// What starts the name of a system collection.
pub const SYSTEM_PREFIX: char = '_';

/// Whether `name` is a system collection: one Trellis itself keeps (such
/// as gossip membership, `_members`), replicated like any other but not
/// writable through the node's API. Its name is `_` followed by a valid
/// collection name.
pub fn is_system_collection(name: &str) -> bool {
    name.starts_with(SYSTEM_PREFIX)
}

impl Limits {
    /// Checks a collection name: 1 to 64 characters from `a-z`, `0-9`,
    /// `_` and `-`, starting with a letter, or a
    /// [system collection](is_system_collection) name: `_` followed by
    /// such a name.
    pub fn check_collection(&self, name: &str) -> Result<(), StoreError> {
        let user_part = name.strip_prefix(SYSTEM_PREFIX).unwrap_or(name);
        let mut chars = user_part.chars();
        let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if starts_with_letter && rest_ok && name.len() <= MAX_COLLECTION_NAME {
            Ok(())
        } else {
            Err(StoreError::InvalidCollection {
                name: name.to_owned(),
            })
        }
    }

    /// Checks a key: non-empty, at most `max_key_bytes`, no control
    /// characters.
    pub fn check_key(&self, key: &str) -> Result<(), StoreError> {
        let reason = if key.is_empty() {
            "a key cannot be empty".to_owned()
        } else if key.len() > self.max_key_bytes {
            format!(
                "key of {} bytes is longer than the limit of {} (limits.max_key_bytes)",
                key.len(),
                self.max_key_bytes
            )
        } else if key.chars().any(char::is_control) {
            "a key cannot contain control characters".to_owned()
        } else {
            return Ok(());
        };
        Err(StoreError::InvalidKey { reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names() {
        let limits = Limits::default();
        for good in ["leads", "crm_contacts", "orders-2026", "a"] {
            assert!(limits.check_collection(good).is_ok(), "{good}");
        }
        assert!(limits.check_collection("_members").is_ok());
        assert!(is_system_collection("_members"));
        assert!(!is_system_collection("members"));
        for bad in [
            "",
            "Leads",
            "1leads",
            "le ads",
            "leads/x",
            &"x".repeat(65),
            "_",
            "__members",
            "_1x",
        ] {
            let err = limits.check_collection(bad).unwrap_err();
            assert!(err.to_string().contains("starting with a letter"), "{bad}");
        }
    }

    #[test]
    fn keys() {
        let limits = Limits::default();
        assert!(limits.check_key("lead-42").is_ok());
        assert!(limits.check_key("").is_err());
        assert!(limits.check_key("a\nb").is_err());
        let err = limits.check_key(&"k".repeat(513)).unwrap_err();
        assert!(err.to_string().contains("max_key_bytes"));
    }
}
