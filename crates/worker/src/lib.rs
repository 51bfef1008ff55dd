//! The worker: reconciles one object per task against Microsoft Graph.
//!
//! - [`runner`] runs the loop: it takes deliveries from RabbitMQ, the direct
//!   lane first, within a number of permits, and stops gracefully.
//! - `handler` does one delivery: decode the task, check the halt, lock the
//!   object, reconcile it, record the [`outcome`], retry or dead-letter a
//!   failure by its class, publish the follow-up tasks, ack; `recorder`
//!   commits the outcomes of all in-flight tasks together.
//! - [`users::UserReconciler`] does one user: read what authentik wants, map
//!   it, let core plan the writes against what Entra last received, write only
//!   the difference, and keep the link; [`groups::GroupReconciler`] does the
//!   same for one group, both through [`objects`]; and
//!   [`memberships::MembershipReconciler`] brings one group's Entra members in
//!   line, sending only the difference both ways; `group_scope` finds the
//!   users whose scope a change of the filter group changed.
//! - [`waiting`] is the one rule for a task that cannot finish now, and the
//!   dead-letter follower (`dead_letters.rs`) records what the broker
//!   dead-letters by itself, so no dead letter is silent.
//! - [`provider`] builds a provider's reconcilers from its configuration
//!   through the provider room (`entra_sync_provider`), which also shares the
//!   tenant's Graph budget; [`health`] serves the worker's [`metrics`] with
//!   its health and readiness.
//!
//! Each module says which invariant of DESIGN.md it keeps.

mod dead_letters;
mod follow_up;
mod group_scope;
pub mod groups;
mod handler;
pub mod health;
pub mod memberships;
pub mod metrics;
pub mod objects;
mod observed;
pub mod outcome;
pub mod provider;
mod recorder;
pub mod runner;
mod settle;
pub mod users;
pub mod waiting;

use entra_sync_core::failure::FailureClass;
use entra_sync_graph::GraphFailure;
use std::time::Duration;

/// Why reconciling an object did not finish, by what should happen next.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReconcileError {
    /// The object failed for now (network, 5xx, replication delay): try
    /// again later; this counts as an attempt.
    #[error("transient failure: {detail}")]
    Transient {
        /// What failed.
        detail: String,
        /// How long Graph asked us to wait, if it did.
        retry_after: Option<Duration>,
    },
    /// Not the object's fault (throttled, its lock held elsewhere, PostgreSQL
    /// or authentik unreachable): wait, without counting an attempt.
    #[error("waiting ({}): {detail}", .wait.as_str())]
    Waiting {
        /// What it waits for.
        wait: waiting::Wait,
        /// What happened.
        detail: String,
        /// How long Graph asked us to wait, if it did.
        retry_after: Option<Duration>,
    },
    /// This object cannot be written as it is; record it and move on.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// Graph refused, with 403, a write to this one object (with Graph's
    /// message and a hint): it fails alone, like a permanent failure, and is
    /// counted, since many in a row mean a permission was removed.
    #[error("write refused: {0}")]
    Forbidden(String),
    /// The provider is misconfigured (mapping, credentials, permission): halt it.
    #[error("configuration failure: {0}")]
    Configuration(String),
    /// The deletion guard held a delete or suspension back: it was not sent,
    /// and the guard halted the provider.
    #[error("{0}")]
    HeldBack(entra_sync_provider::HeldBack),
}

impl From<GraphFailure> for ReconcileError {
    fn from(f: GraphFailure) -> Self {
        match f.class {
            FailureClass::Transient if is_throttle(&f) => Self::Waiting {
                wait: waiting::Wait::Throttled,
                retry_after: f.retry_after,
                detail: f.to_string(),
            },
            FailureClass::Transient => Self::Transient {
                retry_after: f.retry_after,
                detail: f.to_string(),
            },
            FailureClass::Configuration => Self::Configuration(f.to_string()),
            FailureClass::Forbidden => Self::Forbidden(f.to_string()),
            _ => Self::Permanent(f.to_string()),
        }
    }
}

/// Whether Graph throttled the request: 429, or 503 with Retry-After.
pub(crate) fn is_throttle(f: &GraphFailure) -> bool {
    f.status == Some(429) || (f.status == Some(503) && f.retry_after.is_some())
}

impl ReconcileError {
    /// A failure of PostgreSQL, described by `detail`: a wait if the
    /// database is unreachable, an object-level transient failure otherwise.
    pub(crate) fn of_store(e: &entra_sync_store::StoreError, detail: String) -> Self {
        if e.is_unreachable() {
            Self::Waiting {
                wait: waiting::Wait::Database,
                detail,
                retry_after: None,
            }
        } else {
            Self::Transient {
                detail,
                retry_after: None,
            }
        }
    }

    /// The same failure, its message replaced by `detail` (which should name
    /// the object).
    pub(crate) fn with_detail(self, detail: String) -> Self {
        match self {
            Self::Transient { retry_after, .. } => Self::Transient {
                detail,
                retry_after,
            },
            Self::Waiting {
                wait, retry_after, ..
            } => Self::Waiting {
                wait,
                detail,
                retry_after,
            },
            Self::Permanent(_) => Self::Permanent(detail),
            Self::Forbidden(_) => Self::Forbidden(detail),
            Self::Configuration(_) => Self::Configuration(detail),
            held @ Self::HeldBack(_) => held,
        }
    }
}

impl From<entra_sync_store::StoreError> for ReconcileError {
    fn from(e: entra_sync_store::StoreError) -> Self {
        Self::of_store(&e, e.to_string())
    }
}

impl From<entra_sync_authentik::AuthentikError> for ReconcileError {
    fn from(e: entra_sync_authentik::AuthentikError) -> Self {
        if e.is_configuration() {
            Self::Configuration(e.to_string())
        } else if e.is_transient() {
            // The client already retried: authentik is down or overloaded.
            Self::Waiting {
                wait: waiting::Wait::Authentik,
                detail: e.to_string(),
                retry_after: None,
            }
        } else {
            Self::Transient {
                detail: e.to_string(),
                retry_after: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use entra_sync_core::failure::{GraphError, Operation};

    fn graph(status: Option<u16>, retry_after: Option<u64>) -> GraphFailure {
        GraphFailure {
            class: FailureClass::Transient,
            operation: Operation::Update,
            action: "update user 'a@contoso.com'".into(),
            status,
            error: GraphError::default(),
            retry_after: retry_after.map(Duration::from_secs),
            signals: Default::default(),
            message: "failed".into(),
        }
    }

    fn wait_of(e: ReconcileError) -> Option<waiting::Wait> {
        match e {
            ReconcileError::Waiting { wait, .. } => Some(wait),
            _ => None,
        }
    }

    #[test]
    fn throttling_is_a_wait_and_other_transient_failures_are_attempts() {
        let throttled = waiting::Wait::Throttled;
        assert_eq!(wait_of(graph(Some(429), Some(30)).into()), Some(throttled));
        assert_eq!(wait_of(graph(Some(429), None).into()), Some(throttled));
        assert_eq!(wait_of(graph(Some(503), Some(5)).into()), Some(throttled));
        for attempt in [
            graph(Some(503), None),
            graph(Some(500), None),
            graph(None, None),
        ] {
            assert!(matches!(
                ReconcileError::from(attempt),
                ReconcileError::Transient { .. }
            ));
        }
    }

    #[tokio::test]
    async fn an_unreachable_database_is_a_wait_and_a_corrupt_row_an_attempt() {
        // Nothing listens on port 1.
        let store =
            entra_sync_store::Store::connect("postgres://postgres@127.0.0.1:1/x", 1, None).unwrap();
        let refused = store.ping().await.unwrap_err();
        assert!(refused.is_unreachable(), "{refused}");
        assert_eq!(wait_of(refused.into()), Some(waiting::Wait::Database));
        let corrupt = entra_sync_store::StoreError::Corrupt("bad".into());
        assert!(matches!(
            ReconcileError::from(corrupt),
            ReconcileError::Transient { .. }
        ));
    }
}
