//! `GET /v1/openapi.json`: the API described in OpenAPI 3. The document
//! is kept by hand next to the routes; a test checks that every route and
//! method the router serves is in it, and nothing else.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, as served.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

/// The document parsed (it is checked to parse in the tests).
pub fn openapi_document() -> serde_json::Value {
    serde_json::from_str(OPENAPI_JSON).unwrap_or_default()
}

/// The handler.
pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}
