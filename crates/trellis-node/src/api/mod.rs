//! The HTTP API (axum), versioned under `/v1`. Every error is
//! `{"error": "<code>", "message": "<text>"}` with a 4xx or 5xx status;
//! bad input never gets a 5xx.
//!
//! - `records.rs`: records and collections.
//! - `patch.rs`: the PATCH operations and their checks.
//! - `changes.rs`: the NDJSON change feed.
//! - `counters.rs`: the strongly consistent counters and their voters.
//! - `status.rs`: `/v1/status` and `/health`.
//! - `metrics.rs`: `/metrics` in the Prometheus text format.
//! - `openapi.rs`: `/v1/openapi.json`.
//! - `input.rs`: body, JSON and query extraction with limits.
//! - `wait.rs`: write wait levels and `?after=` causal reads.
//! - `auth.rs`: bearer tokens.
//! - `listener.rs`: the bounded, timed-out TCP listener.

mod auth;
mod changes;
mod counters;
mod error;
mod input;
mod listener;
mod metrics;
mod openapi;
mod patch;
mod records;
mod status;
mod wait;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::Router;
use trellis_gossip::driver::GossipHandle;
use trellis_store::RedbStore;

pub use error::ApiError;
pub use input::parse_json;
pub use listener::BoundedListener;
pub use openapi::{openapi_document, OPENAPI_JSON};
pub use patch::{check_kinds, parse_patch};

use crate::config::ApiConfig;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Replication, and through it the store.
    pub gossip: GossipHandle<RedbStore>,
    /// This site's name.
    pub site: String,
    /// The API settings (limits, tokens).
    pub api: Arc<ApiConfig>,
    /// When the node started.
    pub started: Instant,
    /// The store's limits, to check names and keys before reading.
    pub limits: trellis_store::Limits,
    /// The counter service, if the cluster has a counter group.
    pub counters: Option<trellis_counter::Counters>,
    /// The stated consistency window.
    pub consistency: crate::ConsistencySection,
    /// When the node started, in wall-clock milliseconds.
    pub started_ms: u64,
}

impl AppState {
    /// How fresh each peer's data is here, against the window.
    pub async fn freshness(&self) -> Option<Vec<crate::window::Freshness>> {
        let status = self.gossip.status().await?;
        Some(crate::window::assess(
            &status,
            &self.consistency,
            crate::clock::now_ms(),
            self.started_ms,
        ))
    }
}

impl AppState {
    /// The store.
    pub fn store(&self) -> &RedbStore {
        self.gossip.store()
    }
}

/// Every route, with authentication and the body limit.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/v1/collections", get(records::collections))
        .route("/v1/collections/{collection}/records", get(records::list))
        .route(
            "/v1/collections/{collection}/records/{key}",
            get(records::get_record)
                .put(records::put_record)
                .patch(records::patch_record)
                .delete(records::delete_record),
        )
        .route("/v1/changes", get(changes::changes))
        .route("/v1/counters", get(counters::list))
        .route(
            "/v1/counters/{name}",
            get(counters::read).post(counters::create),
        )
        .route("/v1/counters/{name}/increment", post(counters::increment))
        .route("/v1/counters/{name}/decrement", post(counters::decrement))
        .route("/v1/counters/{name}/set", post(counters::set))
        .route(
            "/v1/counter-voters",
            get(counters::members).post(counters::add_voter),
        )
        .route("/v1/counter-voters/{id}", delete(counters::remove_voter))
        .route("/v1/status", get(status::status))
        .route("/v1/openapi.json", get(openapi::serve))
        .route("/metrics", get(metrics::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/health", get(status::health))
        .merge(v1)
        .fallback(input::no_route)
        .method_not_allowed_fallback(input::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.api.max_body_bytes))
        .with_state(state)
}
