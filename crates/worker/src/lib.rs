//! The worker: reconciles one object per task against Microsoft Graph.
//!
//! - [`runner`] runs the loop: it takes deliveries from RabbitMQ, the direct
//!   lane first, within a number of permits, and stops gracefully.
//! - `handler` does one delivery: decode the task, check the halt, lock the
//!   object, reconcile it, record the [`outcome`], retry or dead-letter a
//!   failure by its class, publish the follow-up tasks, ack.
//! - [`users::UserReconciler`] does one user: read what authentik wants, map
//!   it, let core plan the writes against what Entra last received, write only
//!   the difference, and keep the link; [`groups::GroupReconciler`] does the
//!   same for one group, both through [`objects`]; and
//!   [`memberships::MembershipReconciler`] brings one group's Entra members in
//!   line, sending only the difference both ways.
//! - [`provider`] builds a provider's reconcilers from its configuration
//!   through the provider room (`entra_sync_provider`), which also shares the
//!   tenant's Graph budget; [`health`] serves the worker's [`metrics`] with
//!   its health and readiness.
//!
//! Each module says which invariant of DESIGN.md it keeps.

mod follow_up;
pub mod groups;
mod handler;
pub mod health;
pub mod memberships;
pub mod metrics;
pub mod objects;
mod observed;
pub mod outcome;
pub mod provider;
pub mod runner;
pub mod users;

use entra_sync_core::failure::FailureClass;
use entra_sync_graph::GraphFailure;
use std::time::Duration;

/// Why reconciling an object did not finish, by what should happen next.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReconcileError {
    /// Try again later (network, 429, 5xx, replication delay, authentik or the database unreachable).
    #[error("transient failure: {detail}")]
    Transient {
        /// What failed.
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

impl From<entra_sync_store::StoreError> for ReconcileError {
    fn from(e: entra_sync_store::StoreError) -> Self {
        Self::Transient {
            detail: e.to_string(),
            retry_after: None,
        }
    }
}

impl From<entra_sync_authentik::AuthentikError> for ReconcileError {
    fn from(e: entra_sync_authentik::AuthentikError) -> Self {
        if e.is_configuration() {
            Self::Configuration(e.to_string())
        } else {
            Self::Transient {
                detail: e.to_string(),
                retry_after: None,
            }
        }
    }
}
