//! The client's errors, classified for the caller.

use reqwest::StatusCode;
use std::time::Duration;

/// A failed authentik request. Messages name the request; none contains the token.
#[derive(Debug, thiserror::Error)]
pub enum AuthentikError {
    /// authentik refused the token (401) or its permissions (403): a configuration error.
    #[error(
        "authentik rejected the API token for {request} (HTTP {status}): check the token and that its user may view users, groups and events"
    )]
    Configuration {
        /// The request, e.g. `GET /api/v3/core/users/`.
        request: String,
        /// 401 or 403.
        status: u16,
    },
    /// Network failure, 5xx or 429 that outlasted the retries.
    #[error("{request} failed after {attempts} attempts: {detail}")]
    Transient {
        /// The request.
        request: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        detail: String,
    },
    /// Any other unexpected status (e.g. 400).
    #[error("{request} returned HTTP {status}: {body}")]
    Status {
        /// The request.
        request: String,
        /// The status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The response was not the JSON expected.
    #[error("{request} returned a body that does not parse: {detail}")]
    Decode {
        /// The request.
        request: String,
        /// The parser's message.
        detail: String,
    },
    /// The base URL or token cannot be used.
    #[error("invalid authentik client configuration: {0}")]
    InvalidUrl(String),
}

impl AuthentikError {
    /// Whether this is a configuration error (halt the provider until fixed).
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::Configuration { .. } | Self::InvalidUrl(_))
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

/// A failure worth retrying.
pub(crate) struct Failure {
    pub(crate) detail: String,
    pub(crate) retry_after: Option<Duration>,
}

impl Failure {
    pub(crate) fn transient(detail: String, retry_after: Option<Duration>) -> Self {
        Self {
            detail,
            retry_after,
        }
    }

    /// A retryable failure for 429 and 5xx; the final error otherwise.
    pub(crate) fn classify(
        request: &str,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: String,
    ) -> Result<Self, AuthentikError> {
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(AuthentikError::Configuration {
                request: request.to_owned(),
                status: status.as_u16(),
            });
        }
        let body: String = body.chars().take(300).collect();
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Ok(Self::transient(
                format!("HTTP {status}: {body}"),
                retry_after,
            ));
        }
        Err(AuthentikError::Status {
            request: request.to_owned(),
            status: status.as_u16(),
            body,
        })
    }
}
