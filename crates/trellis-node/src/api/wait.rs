//! The consistency a caller asks for: `?wait=local|majority|all|N` and
//! `timeout` on writes, `?after=TOKEN` and `timeout` on reads.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use trellis_store::Mutation;

use super::{ApiError, AppState};
use crate::causal::CausalToken;
use crate::write::{write, WaitLevel, WriteError};

/// The longest a request may wait.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a request waits when it names no timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// `?wait=…&timeout=…` on a write.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteQuery {
    /// `local` (default), `majority`, `all`, or a number of sites.
    wait: Option<String>,
    /// How long to wait for the level, e.g. `5s` or `250ms`.
    timeout: Option<String>,
}

/// A timeout parameter: `"5s"`, `"250ms"`, or a plain number of seconds.
pub fn parse_timeout(text: Option<&str>) -> Result<Duration, ApiError> {
    let Some(text) = text else {
        return Ok(DEFAULT_TIMEOUT);
    };
    let parsed = text
        .parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .map(Duration::from_secs_f64)
        .or_else(|| humantime::parse_duration(text).ok());
    match parsed {
        Some(timeout) if timeout <= MAX_TIMEOUT => Ok(timeout),
        _ => Err(ApiError::bad_request(
            "bad_query",
            format!("timeout={text:?}: give a duration up to 60s, like 5s or 250ms"),
        )),
    }
}

/// Makes a write at the level asked for and answers it: 200 once the
/// level is met, 202 with how many sites hold it if the timeout came
/// first (the write is not rolled back).
pub async fn answer_write(
    state: &AppState,
    collection: &str,
    key: &str,
    mutation: Mutation,
    query: WriteQuery,
    render: impl FnOnce(&trellis_crdt::Record) -> Value,
) -> Result<Response, ApiError> {
    let level: WaitLevel = match query.wait.as_deref() {
        None => WaitLevel::Local,
        Some(text) => text
            .parse()
            .map_err(|message: String| ApiError::bad_request("bad_query", message))?,
    };
    let timeout = parse_timeout(query.timeout.as_deref())?;
    let outcome = write(&state.gossip, collection, key, mutation, level, timeout)
        .await
        .map_err(|err| match err {
            WriteError::Level(message) => ApiError::bad_request("bad_query", message),
            WriteError::Store(err) => err.into(),
        })?;
    let mut body = render(&outcome.applied.record);
    body["token"] = json!(outcome.token.encode());
    body["sites"] = json!(outcome.sites);
    if outcome.complete() {
        return Ok(Json(body).into_response());
    }
    body["required"] = json!(outcome.required);
    body["cluster_sites"] = json!(outcome.cluster_sites);
    body["message"] = json!(format!(
        "the write is durable at {} of the {} sites asked for after {timeout:?}; it is not \
         rolled back, and replication takes it to the other sites",
        outcome.sites, outcome.required
    ));
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Waits until this site has the write `token` names (504 if `timeout`
/// passes first; 400 for a token that cannot be read).
pub async fn wait_after(
    state: &AppState,
    token: &str,
    timeout: Option<&str>,
) -> Result<(), ApiError> {
    let timeout = parse_timeout(timeout)?;
    let token = CausalToken::decode(token)
        .map_err(|err| ApiError::bad_request("bad_token", err.to_string()))?;
    if token.wait_until_held(state.store(), timeout).await? {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "not_yet",
        format!(
            "this site does not have that write of {}/{} yet after {timeout:?}; replication is on its \
             way: retry, or ask with a longer timeout",
            token.collection, token.key
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_and_are_bounded() {
        assert_eq!(parse_timeout(None).ok(), Some(DEFAULT_TIMEOUT));
        assert_eq!(parse_timeout(Some("5s")).ok(), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_timeout(Some("250ms")).ok(),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_timeout(Some("1.5")).ok(),
            Some(Duration::from_millis(1500))
        );
        for bad in ["61s", "soon", "-1", "NaN", "inf"] {
            assert!(parse_timeout(Some(bad)).is_err(), "{bad}");
        }
    }
}
