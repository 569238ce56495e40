//! Bearer tokens: with `api.tokens` set, every route but `/health`
//! requires `Authorization: Bearer <token>`; without, the API only
//! listens on loopback (the configuration refuses anything else).

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

/// Lets a request through if no tokens are configured or it carries one
/// of them; answers 401 otherwise.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if state.api.tokens.is_empty() {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let accepted = presented.is_some_and(|token| {
        state
            .api
            .tokens
            .iter()
            .any(|known| constant_time_eq(known.as_bytes(), token.as_bytes()))
    });
    if accepted {
        return next.run(request).await;
    }
    let message = if presented.is_some() {
        "the bearer token is not one of api.tokens"
    } else {
        "this node requires `Authorization: Bearer <token>` (api.tokens)"
    };
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
