//! The strongly consistent counters: `/v1/counters…` and the voter set
//! at `/v1/counter-voters…`. Every call answers within
//! `counter.request_timeout`; without a quorum the answer is 503
//! `no_quorum`, and a change's outcome is then unknown: retry it with the
//! same `id` (idempotency key) to learn it without applying it twice.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use trellis_counter::{CounterError, CounterValue, Counters, Members};
use trellis_crdt::ReplicaId;

use super::{input, ApiError, AppState};

impl From<CounterError> for ApiError {
    fn from(err: CounterError) -> Self {
        let message = err.to_string();
        let (status, code) = match &err {
            CounterError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            CounterError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            CounterError::AlreadyExists { .. } => (StatusCode::CONFLICT, "already_exists"),
            CounterError::Insufficient { available, .. } => {
                return ApiError::new(StatusCode::CONFLICT, "insufficient", message)
                    .with("available", *available);
            }
            CounterError::BelowMinimum { .. } => (StatusCode::CONFLICT, "below_minimum"),
            CounterError::Overflow { .. } => (StatusCode::CONFLICT, "overflow"),
            CounterError::IdempotencyKeyReused { .. } => {
                (StatusCode::CONFLICT, "idempotency_key_reused")
            }
            CounterError::NoQuorum { .. } => (StatusCode::SERVICE_UNAVAILABLE, "no_quorum"),
            CounterError::NotVoter { .. } => (StatusCode::NOT_FOUND, "not_voter"),
            CounterError::Membership(_) => (StatusCode::CONFLICT, "membership_refused"),
            CounterError::Stopped => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "counter_error"),
        };
        if status.is_server_error() {
            tracing::warn!(%err, "counter call failed");
        }
        ApiError::new(status, code, message)
    }
}

fn counters(state: &AppState) -> Result<&Counters, ApiError> {
    state.counters.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "counters_disabled",
            "this cluster has no counter group: list the voter sites in counter.voters on every node",
        )
    })
}

fn value_json(value: &CounterValue) -> Value {
    json!({"name": value.name, "value": value.value, "min": value.min})
}

/// The body of a create.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// The starting value.
    initial: i64,
    /// The lowest value decrements may leave; default 0.
    #[serde(default)]
    min: i64,
    /// An idempotency key.
    id: Option<String>,
}

/// The body of an increment or decrement.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeBody {
    /// The amount; default 1.
    #[serde(default = "one")]
    by: i64,
    /// An idempotency key: a retry with the same key is applied once.
    id: Option<String>,
}

fn one() -> i64 {
    1
}

/// The body of a set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetBody {
    /// The new value (not below the minimum).
    value: i64,
    /// An idempotency key.
    id: Option<String>,
}

/// `POST /v1/counters/{name}`: create; 409 `already_exists` if it does.
pub async fn create(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let name = input::path(name)?;
    let counters = counters(&state)?;
    let body: CreateBody = input::typed(body, &state)?;
    let value = counters
        .create(&name, body.initial, body.min, body.id.as_deref())
        .await?;
    Ok(Json(value_json(&value)))
}

/// `POST /v1/counters/{name}/increment`.
pub async fn increment(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let name = input::path(name)?;
    let counters = counters(&state)?;
    let body: ChangeBody = input::typed(body, &state)?;
    let value = counters
        .increment(&name, body.by, body.id.as_deref())
        .await?;
    Ok(Json(value_json(&value)))
}

/// `POST /v1/counters/{name}/decrement`: only if the value stays at or
/// above the minimum; 409 `insufficient` with `available` otherwise.
pub async fn decrement(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let name = input::path(name)?;
    let counters = counters(&state)?;
    let body: ChangeBody = input::typed(body, &state)?;
    let value = counters
        .decrement(&name, body.by, body.id.as_deref())
        .await?;
    Ok(Json(value_json(&value)))
}

/// `POST /v1/counters/{name}/set`.
pub async fn set(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let name = input::path(name)?;
    let counters = counters(&state)?;
    let body: SetBody = input::typed(body, &state)?;
    let value = counters.set(&name, body.value, body.id.as_deref()).await?;
    Ok(Json(value_json(&value)))
}

/// `GET /v1/counters/{name}`: a linearizable read.
pub async fn read(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let name = input::path(name)?;
    let value = counters(&state)?.read(&name).await?;
    Ok(Json(value_json(&value)))
}

/// `GET /v1/counters`: every counter.
pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let values = counters(&state)?.list().await?;
    let values: Vec<Value> = values.iter().map(value_json).collect();
    Ok(Json(json!({"counters": values})))
}

fn members_json(members: &Members) -> Value {
    let voters: Vec<Value> = members
        .voters
        .iter()
        .map(|(id, addr)| json!({"id": id.to_string(), "addr": addr.to_string()}))
        .collect();
    let learners: Vec<Value> = members
        .learners
        .iter()
        .map(|(id, addr)| json!({"id": id.to_string(), "addr": addr.to_string()}))
        .collect();
    json!({
        "leader": members.leader.map(|id| id.to_string()),
        "voters": voters,
        "learners": learners,
    })
}

/// `GET /v1/counter-voters`: the voters, learners and leader.
pub async fn members(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let members = counters(&state)?.members().await?;
    Ok(Json(members_json(&members)))
}

/// The body of adding a voter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoterBody {
    /// The site's replica id, 16 hex digits.
    id: String,
    /// Its peer address.
    addr: SocketAddr,
}

fn replica_id(text: &str) -> Result<ReplicaId, ApiError> {
    u64::from_str_radix(text, 16)
        .ok()
        .filter(|id| *id != 0 && text.len() == 16)
        .map(ReplicaId)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_request",
                format!("{text:?} is not a replica id (16 hex digits)"),
            )
        })
}

/// `POST /v1/counter-voters`: add a voter (it catches up, then votes).
pub async fn add_voter(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let counters = counters(&state)?;
    let body: VoterBody = input::typed(body, &state)?;
    let members = counters.add_voter(replica_id(&body.id)?, body.addr).await?;
    Ok(Json(members_json(&members)))
}

/// `DELETE /v1/counter-voters/{id}`: remove a voter.
pub async fn remove_voter(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = input::path(id)?;
    let counters = counters(&state)?;
    let members = counters.remove_voter(replica_id(&id)?).await?;
    Ok(Json(members_json(&members)))
}
