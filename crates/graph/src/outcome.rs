//! Typed outcomes and failures of Graph calls.

use crate::signals::ThrottleSignals;
use entra_sync_core::failure::{FailureClass, FailureContext, GraphError, Operation};
use serde_json::Value;
use std::time::Duration;

/// The result of a mutating call.
#[derive(Debug, Clone, PartialEq)]
pub enum Written<T> {
    /// Graph applied it.
    Done {
        /// What Graph returned (the created object, a report, or `()`).
        value: T,
        /// The response's throttling signals.
        signals: ThrottleSignals,
    },
    /// The desired state was already there (deleting a missing object, removing a non-member).
    AlreadyDone {
        /// The response's throttling signals.
        signals: ThrottleSignals,
    },
    /// Dry run: nothing was sent; this is what would have been.
    DryRun(RequestRecord),
}

impl<T> Written<T> {
    /// The value of a `Done` outcome.
    pub fn value(self) -> Option<T> {
        match self {
            Written::Done { value, .. } => Some(value),
            _ => None,
        }
    }

    /// Whether nothing was sent because of dry run.
    pub fn is_dry_run(&self) -> bool {
        matches!(self, Written::DryRun(_))
    }
}

/// A request as it would have been sent.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// JSON body, if any.
    pub body: Option<Value>,
}

impl RequestRecord {
    /// A record of a withheld request; passwords in the body are replaced by
    /// `***`, since the record is logged and stored.
    pub fn new(method: impl Into<String>, url: impl Into<String>, body: Option<Value>) -> Self {
        Self {
            method: method.into(),
            url: url.into(),
            body: body.map(redact_passwords),
        }
    }
}

fn redact_passwords(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    if k.eq_ignore_ascii_case("password") && v.is_string() {
                        (k, Value::String("***".into()))
                    } else {
                        (k, redact_passwords(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact_passwords).collect()),
        other => other,
    }
}

/// A failed Graph call, classified by `entra_sync_core::failure::classify`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{action} failed: {message} ({class:?}{})", status_label(.status))]
pub struct GraphFailure {
    /// What to do about it.
    pub class: FailureClass,
    /// The kind of request.
    pub operation: Operation,
    /// The call and the object it was about, e.g. `create user 'adele@contoso.com'`.
    pub action: String,
    /// HTTP status; `None` for network errors and timeouts.
    pub status: Option<u16>,
    /// Graph's error body (empty for network errors).
    pub error: GraphError,
    /// When to try again, from Retry-After (only set for transient failures).
    pub retry_after: Option<Duration>,
    /// The response's throttling signals.
    pub signals: ThrottleSignals,
    /// Human-readable cause.
    pub message: String,
}

fn status_label(status: &Option<u16>) -> String {
    match status {
        Some(s) => format!(", HTTP {s}"),
        None => ", no response".into(),
    }
}

impl GraphFailure {
    /// A failure from a Graph answer to a request described by `context`. A
    /// write refused with 403 carries a hint at the likely cause.
    pub(crate) fn from_answer(
        class: FailureClass,
        context: FailureContext,
        action: &str,
        status: u16,
        error: GraphError,
        signals: ThrottleSignals,
    ) -> Self {
        let mut message = if error.code.is_empty() && error.message.is_empty() {
            format!("Graph answered {status}")
        } else {
            format!("{}: {}", error.code, error.message)
        };
        if class == FailureClass::Forbidden {
            message = format!("{message} ({})", context.forbidden_hint());
        }
        Self {
            class,
            operation: context.operation,
            action: action.to_string(),
            status: Some(status),
            retry_after: if class == FailureClass::Transient {
                signals.retry_after
            } else {
                None
            },
            error,
            signals,
            message,
        }
    }

    /// A failure without a Graph answer: a network error, a timeout or an unreadable body.
    pub(crate) fn transport(operation: Operation, action: &str, message: String) -> Self {
        Self {
            class: FailureClass::Transient,
            operation,
            action: action.to_string(),
            status: None,
            error: GraphError::default(),
            retry_after: None,
            signals: ThrottleSignals::default(),
            message,
        }
    }

    /// A request this client refuses to send (a programming error of the caller).
    pub(crate) fn invalid_request(operation: Operation, action: &str, message: String) -> Self {
        Self {
            class: FailureClass::Permanent,
            ..Self::transport(operation, action, message)
        }
    }
}

#[cfg(test)]
mod record_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn withheld_requests_never_carry_a_password() {
        let body = json!({"requests": [{"body": {"userPrincipalName": "a@b.com", "passwordProfile": {"password": "Hunter2!x", "forceChangePasswordNextSignIn": false}}}]});
        let record = RequestRecord::new("POST", "https://graph/v1.0/$batch", Some(body));
        let text = record.body.unwrap().to_string();
        assert!(!text.contains("Hunter2"), "{text}");
        assert!(
            text.contains("\"password\":\"***\"") && text.contains("a@b.com"),
            "{text}"
        );
    }
}
