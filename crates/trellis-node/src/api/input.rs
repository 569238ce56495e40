//! Reading requests: bodies within the size limit, JSON within the depth
//! limit, path parameters, query strings, and the fallbacks for unknown
//! routes. Every rejection becomes an [`ApiError`] with a 4xx status.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ApiError, AppState};

/// The body, or a 413 / 400 saying why it could not be read.
pub fn body(body: Result<Bytes, BytesRejection>, state: &AppState) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the request body is larger than the limit of {} bytes (api.max_body_bytes)",
                    state.api.max_body_bytes
                ),
            )
        } else {
            ApiError::bad_request("bad_body", rejection.body_text())
        }
    })
}

/// The body parsed as JSON, refused if malformed or nested deeper than
/// `api.max_json_depth`.
pub fn json(body: Result<Bytes, BytesRejection>, state: &AppState) -> Result<Value, ApiError> {
    let bytes = self::body(body, state)?;
    parse_json(&bytes, state.api.max_json_depth)
}

/// `bytes` parsed as JSON, refused if malformed or nested deeper than
/// `limit`: what every request body goes through (the fuzz target
/// `http_bodies` drives it directly).
pub fn parse_json(bytes: &[u8], limit: usize) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|err| {
        ApiError::bad_request(
            "malformed_json",
            format!("the body is not valid JSON: {err}"),
        )
    })?;
    if depth(&value) > limit {
        return Err(ApiError::bad_request(
            "too_deep",
            format!("the JSON body is nested deeper than {limit} levels (api.max_json_depth)"),
        ));
    }
    Ok(value)
}

/// The body as a `T`, with the checks of [`json`].
pub fn typed<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    state: &AppState,
) -> Result<T, ApiError> {
    let value = json(body, state)?;
    serde_json::from_value(value).map_err(|err| {
        ApiError::bad_request("invalid_body", format!("the body is not accepted: {err}"))
    })
}

/// How deeply `value` nests (a scalar is 0, `[]` is 1).
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(fields) => 1 + fields.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The query string as a `T`, or a 400 naming the parameter.
pub fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(value)| value)
        .map_err(|rejection| ApiError::bad_request("bad_query", rejection.body_text()))
}

/// The path parameters as a `T`, or an error naming the bad one (a
/// percent-encoded segment that is not UTF-8, for example), as JSON like
/// every other error rather than axum's plain-text rejection.
pub fn path<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(value)| value)
        .map_err(|rejection| ApiError::new(rejection.status(), "bad_path", rejection.body_text()))
}

/// A path no route serves.
pub async fn no_route() -> ApiError {
    ApiError::not_found("no such route; the API is described at /v1/openapi.json")
}

/// A route that exists, with a method it does not serve.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not serve that method; see /v1/openapi.json",
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::depth;

    #[test]
    fn depth_counts_containers() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({"a": 1})), 1);
        assert_eq!(depth(&json!({"a": {"b": [1]}})), 3);
    }
}
