//! `GET /v1/changes?since=SEQ&limit=N&wait=SECONDS`: the change feed as
//! NDJSON, one change per line, oldest first. Sequence numbers are this
//! node's and survive restarts, so a consumer resumes from the last `seq`
//! it processed. With `wait`, an empty answer is held until a change
//! arrives or the time is up (long polling).
//!
//! Changes to system collections (names starting with `_`, such as
//! `_members`) are included, so the sequence has no gaps; consumers
//! usually skip them.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use trellis_crdt::ReplicaId;
use trellis_gossip::membership::members;
use trellis_store::Store;

use super::{input, ApiError, AppState};

/// The most changes one answer holds.
const MAX_LIMIT: usize = 10_000;
/// The longest a request may wait.
const MAX_WAIT_SECONDS: f64 = 60.0;

/// The query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// Changes after this sequence number (0: from the start).
    #[serde(default)]
    since: u64,
    /// At most this many; default 1000.
    limit: Option<usize>,
    /// Seconds to wait for a change if there is none yet.
    wait: Option<f64>,
}

/// The handler.
pub async fn changes(
    State(state): State<AppState>,
    query: Result<Query<ChangesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = input::query(query)?;
    let limit = query.limit.unwrap_or(1000);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let wait = query.wait.unwrap_or(0.0);
    if !(0.0..=MAX_WAIT_SECONDS).contains(&wait) {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("wait must be between 0 and {MAX_WAIT_SECONDS} seconds"),
        ));
    }
    let store = state.store();
    if wait > 0.0 && store.last_seq() <= query.since {
        let mut seq = store.watch_seq();
        let since = query.since;
        // Time out quietly: an empty answer tells the client to ask again.
        let _ = tokio::time::timeout(
            Duration::from_secs_f64(wait),
            seq.wait_for(|latest| *latest > since),
        )
        .await;
    }
    let changes = store.changes_since(query.since, limit)?;
    let sites: BTreeMap<ReplicaId, String> = members(store)
        .into_iter()
        .map(|member| (member.id, member.name))
        .collect();
    let mut body = String::new();
    for change in changes {
        let line = json!({
            "seq": change.seq,
            "collection": change.collection,
            "key": change.key,
            "origin": sites.get(&change.origin).cloned().unwrap_or_else(|| change.origin.to_string()),
            "origin_id": change.origin.to_string(),
            "origin_time_ms": change.origin_time.millis(),
            "digest": change.digest.to_string(),
        });
        body.push_str(&line.to_string());
        body.push('\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}
