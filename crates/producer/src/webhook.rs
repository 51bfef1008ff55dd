//! The authentik notification webhook: `POST /hooks/authentik`, which wakes the events follower.
//!
//! It only cuts latency: it enqueues nothing and never reads the body beyond
//! checking it is JSON, because the events feed stays the source of truth (a
//! lost or forged webhook costs at most one extra poll).
//! - `Authorization: Bearer <secret>` is required (compared in constant time); otherwise 401.
//! - Bodies over [`MAX_BODY_BYTES`] get 413, bodies that are not JSON 400.
//! - Any JSON body is accepted: authentik's default
//!   (`{"body", "severity", "user_email", …}`) or a custom `webhook_mapping_body`.
//! - A valid call answers 204 and calls [`Notify::notify_one`] (a wake-up that
//!   arrives while the follower is busy is kept for its next wait).

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::routing::post;
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;
use tokio::sync::Notify;

/// The largest body accepted (authentik's default body is well under 1 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The path the router serves.
pub const PATH: &str = "/hooks/authentik";

/// The shared secret authentik sends as a bearer token. Never printed.
#[derive(Clone)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// Compares in constant time (over SHA-256 digests, so lengths leak nothing either).
    fn matches(&self, presented: &[u8]) -> bool {
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(presented);
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

#[derive(Clone)]
struct HookState {
    secret: WebhookSecret,
    wake: Arc<Notify>,
}

/// The router with `POST /hooks/authentik`, for the producer's HTTP server.
/// `wake` is the events follower's [`Notify`] (see [`crate::events::run`]).
pub fn router(secret: WebhookSecret, wake: Arc<Notify>) -> Router {
    Router::new()
        .route(PATH, post(receive))
        .with_state(HookState { secret, wake })
}

async fn receive(State(state): State<HookState>, request: Request) -> StatusCode {
    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|token| state.secret.matches(token));
    if !authorized {
        return StatusCode::UNAUTHORIZED;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return StatusCode::PAYLOAD_TOO_LARGE;
    }
    let Ok(body) = to_bytes(request.into_body(), MAX_BODY_BYTES).await else {
        return StatusCode::PAYLOAD_TOO_LARGE;
    };
    if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
        return StatusCode::BAD_REQUEST;
    }
    tracing::debug!("authentik webhook received; waking the events follower");
    state.wake.notify_one();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_exactly_and_never_print() {
        let s = WebhookSecret::new("s3cret");
        assert!(s.matches(b"s3cret"));
        assert!(!s.matches(b"s3cre"));
        assert!(!s.matches(b"s3cret "));
        assert!(!format!("{s:?}").contains("s3cret"));
    }
}
