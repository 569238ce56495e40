//! `ApiError`: every failure the API answers, as
//! `{"error": "<code>", "message": "<text>"}` with its status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use trellis_store::StoreError;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code.
    pub code: &'static str,
    /// What was wrong and what to do, for people.
    pub message: String,
    /// More fields for the body, such as `available` for an insufficient
    /// decrement.
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: serde_json::Map::new(),
        }
    }

    /// Adds `name: value` to the error's body.
    pub fn with(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(name.to_owned(), value.into());
        self
    }

    /// 400: the request is malformed or breaks a limit.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.code, "message": self.message});
        if let Some(fields) = body.as_object_mut() {
            fields.extend(self.details);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        let message = err.to_string();
        let (status, code) = match &err {
            StoreError::InvalidCollection { .. } => (StatusCode::BAD_REQUEST, "invalid_collection"),
            StoreError::InvalidKey { .. } => (StatusCode::BAD_REQUEST, "invalid_key"),
            StoreError::RecordTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "record_too_large")
            }
            StoreError::TooManyFields { .. } => (StatusCode::BAD_REQUEST, "too_many_fields"),
            StoreError::InvalidChange(_) => (StatusCode::BAD_REQUEST, "invalid_value"),
            StoreError::ClockSkew(_) => (StatusCode::SERVICE_UNAVAILABLE, "clock_skew"),
            StoreError::Corrupt { .. } | StoreError::Quarantined { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "record_quarantined")
            }
            StoreError::ChangesTruncated { .. } => (StatusCode::GONE, "changes_truncated"),
            StoreError::Closed => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "storage_error"),
        };
        if status.is_server_error() {
            tracing::warn!(%err, "request failed in the store");
        }
        ApiError::new(status, code, message)
    }
}
