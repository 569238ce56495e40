//! `GET /v1/status` (this node, its peers, its collections, the counter
//! group as this node sees it) and
//! `GET /health` (200, or 503 with the reasons).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use trellis_gossip::driver::{GossipStatus, PeerInfo};
use trellis_net::PeerStatus;
use trellis_store::index::KeyRange;
use trellis_store::Store;

use super::{ApiError, AppState};
use crate::clock::now_ms;
use crate::window::{assess, Freshness};

/// `GET /v1/status`.
pub async fn status(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let gossip = gossip_status(&state).await?;
    let store = state.store();
    let now = now_ms();
    let freshness = assess(&gossip, &state.consistency, now, state.started_ms);
    let peers: Vec<Value> = gossip
        .peers
        .iter()
        .zip(&freshness)
        .map(|(peer, fresh)| peer_json(peer, fresh, now))
        .collect();
    let collections: Vec<Value> = store
        .collections()?
        .into_iter()
        .map(|info| {
            let fingerprint = store.fingerprint(&info.name, &KeyRange::all());
            json!({
                "name": info.name,
                "count": info.live,
                "keys": info.keys,
                "digest": hex(&fingerprint.sum),
            })
        })
        .collect();
    let stats = store.stats();
    let counters = state.counters.as_ref().map(|counters| {
        let status = counters.status();
        json!({
            "leader": status.leader.map(|id| id.to_string()),
            "term": status.term,
            "voters": status.voters.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "last_log_index": status.last_log_index,
            "last_applied": status.last_applied,
            "snapshot": status.snapshot,
        })
    });
    Ok(Json(json!({
        "node": {
            "id": store.replica_id().to_string(),
            "name": state.site,
            "uptime_s": state.started.elapsed().as_secs(),
            "last_seq": store.last_seq(),
            "store": stats,
        },
        "peers": peers,
        "collections": collections,
        "replication": {
            "dropped_messages": gossip.dropped_messages,
            "refused_merges": gossip.refused_merges,
        },
        "counters": counters,
    })))
}

fn peer_json(peer: &PeerInfo, fresh: &Freshness, now: u64) -> Value {
    let stats = &peer.stats;
    let (state, detail) = match &peer.status {
        PeerStatus::Down {
            failures,
            retry_in,
            last_error,
        } => (
            "down",
            json!({"failures": failures, "retry_in_ms": retry_in.as_millis() as u64, "last_error": last_error}),
        ),
        _ if peer.linked => ("up", Value::Null),
        _ => ("connecting", Value::Null),
    };
    let mut delays: Vec<u64> = stats.delays_ms.iter().copied().collect();
    delays.sort_unstable();
    let percentile = |p: f64| -> Value {
        if delays.is_empty() {
            return Value::Null;
        }
        let at = ((delays.len() as f64 * p).ceil() as usize).clamp(1, delays.len());
        json!(delays[at - 1])
    };
    json!({
        "id": peer.id.to_string(),
        "name": peer.member.as_ref().map(|m| m.name.clone()),
        "addr": peer.member.as_ref().map(|m| m.addr.to_string()),
        "state": state,
        "down": detail,
        "last_sync_age_ms": stats.last_reconciled_ms.map(|at| now.saturating_sub(at)),
        "lag_ms": {"p50": percentile(0.5), "p99": percentile(0.99), "samples": delays.len()},
        "staleness_ms": fresh.staleness_ms,
        "window_ms": fresh.window_ms,
        "within_window": fresh.within(),
        "freshness": fresh.sentence(),
        "bytes_in": stats.bytes_in,
        "bytes_out": stats.bytes_out,
        "records_repaired": stats.records_repaired,
        "changes_applied": stats.changes_applied,
    })
}

async fn gossip_status(state: &AppState) -> Result<GossipStatus, ApiError> {
    state.gossip.status().await.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "replication has stopped; the node is shutting down",
        )
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `GET /health`: 200 `{"status": "ok"}`, or 503 with `reasons`: the
/// store cannot be read, replication has stopped, or a peer's data here
/// is older than the consistency window.
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let mut reasons = Vec::new();
    match state.freshness().await {
        None => reasons.push("replication has stopped".to_owned()),
        Some(peers) => reasons.extend(
            peers
                .iter()
                .filter(|fresh| !fresh.within())
                .map(Freshness::sentence),
        ),
    }
    if let Err(err) = state.store().collections() {
        reasons.push(format!("the store cannot be read: {err}"));
    }
    if reasons.is_empty() {
        (StatusCode::OK, Json(json!({"status": "ok"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unhealthy", "reasons": reasons})),
        )
    }
}
