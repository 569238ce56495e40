//! Causal tokens: read-your-writes across sites.
//!
//! Every write returns a token naming the record and the causal context
//! it had right after the write. A site "has the write" once its copy of
//! that record has seen every event of that context (it may have seen
//! more). `GET …?after=TOKEN` waits for that before answering, so a client
//! that wrote at one site reads its own write, or something newer, at any
//! other.
//!
//! The token is opaque to clients: `t1.` then base64url of the codec
//! encoding. Its size grows with the number of sites that wrote the
//! record, not with the record.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use trellis_crdt::{codec, CausalContext, Record};
use trellis_store::{Store, StoreError};

/// What starts every token of this format.
const PREFIX: &str = "t1.";

/// The longest token accepted, in characters.
pub const MAX_TOKEN_LEN: usize = 8192;

/// A write, as a client carries it from one site to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausalToken {
    /// The record's collection.
    pub collection: String,
    /// The record's key.
    pub key: String,
    /// The record's causal context right after the write.
    pub context: CausalContext,
}

/// A token that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid token: {0}; pass the token a write returned, unchanged")]
pub struct TokenError(String);

impl CausalToken {
    /// The token for `record` at `collection/key`, as a write left it.
    pub fn of(collection: &str, key: &str, record: &Record) -> Self {
        CausalToken {
            collection: collection.to_owned(),
            key: key.to_owned(),
            context: record.context().clone(),
        }
    }

    /// The token as text.
    pub fn encode(&self) -> String {
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(codec::encode(self)))
    }

    /// Reads a token made by [`encode`](Self::encode).
    pub fn decode(text: &str) -> Result<Self, TokenError> {
        if text.len() > MAX_TOKEN_LEN {
            return Err(TokenError(format!(
                "longer than {MAX_TOKEN_LEN} characters"
            )));
        }
        let body = text
            .strip_prefix(PREFIX)
            .ok_or_else(|| TokenError(format!("it does not start with {PREFIX:?}")))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|err| TokenError(format!("not base64url: {err}")))?;
        codec::decode_with_limit(&bytes, MAX_TOKEN_LEN).map_err(|err| TokenError(err.to_string()))
    }

    /// Whether `store` has the write: its copy of the record has seen
    /// everything the token's context has.
    pub fn is_held_by(&self, store: &impl Store) -> Result<bool, StoreError> {
        Ok(store
            .get(&self.collection, &self.key)?
            .is_some_and(|record| record.context().includes(&self.context)))
    }

    /// Waits until `store` has the write, for at most `timeout`. Returns
    /// whether it does.
    pub async fn wait_until_held(
        &self,
        store: &impl Store,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        let mut commits = store.watch_seq();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Subscribe before checking, so no commit slips between the two.
            commits.borrow_and_update();
            if self.is_held_by(store)? {
                return Ok(true);
            }
            match tokio::time::timeout_at(deadline, commits.changed()).await {
                Ok(Ok(())) => {}
                // Timed out, or the store closed.
                Ok(Err(_)) | Err(_) => return self.is_held_by(store),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;
    use trellis_crdt::ReplicaId;
    use trellis_store::{MemStore, Mutation, Origin, StoreConfig};

    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_garbage() {
        let store = MemStore::new(ReplicaId(1), StoreConfig::default());
        let applied = store
            .apply("leads", "l1", Mutation::Put(json!({"name": "Ada"})))
            .wait()
            .unwrap();
        let token = CausalToken::of("leads", "l1", &applied.record);
        let text = token.encode();
        assert!(text.starts_with("t1."));
        assert_eq!(CausalToken::decode(&text).unwrap(), token);
        for bad in [
            "",
            "t1.",
            "t1.!!!",
            "x1.AAAA",
            "t1.AAAAAAAA",
            &"t1.A".repeat(5000),
        ] {
            assert!(CausalToken::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_token_is_held_once_the_write_is_merged() {
        let berlin = MemStore::new(ReplicaId(1), StoreConfig::default());
        let lisbon = MemStore::new(ReplicaId(2), StoreConfig::default());
        let first = berlin
            .apply("leads", "l1", Mutation::Put(json!({"name": "Ada"})))
            .await
            .unwrap();
        let second = berlin
            .apply("leads", "l1", Mutation::Put(json!({"name": "Ada L."})))
            .await
            .unwrap();
        let token = CausalToken::of("leads", "l1", &second.record);
        assert!(token.is_held_by(&berlin).unwrap());
        assert!(!token.is_held_by(&lisbon).unwrap());
        let origin = |time| Origin {
            replica: ReplicaId(1),
            time,
            full_state: false,
        };
        // The first write alone is not enough.
        lisbon
            .merge("leads", "l1", first.delta, origin(first.time))
            .await
            .unwrap();
        assert!(!token.is_held_by(&lisbon).unwrap());
        assert!(!token
            .wait_until_held(&lisbon, Duration::from_millis(20))
            .await
            .unwrap());
        // A merge that arrives while waiting ends the wait.
        let waiting = token.wait_until_held(&lisbon, Duration::from_secs(10));
        let merge = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            lisbon
                .merge("leads", "l1", second.delta, origin(second.time))
                .await
                .unwrap();
        };
        let (held, ()) = tokio::join!(waiting, merge);
        assert!(held.unwrap());
    }
}
