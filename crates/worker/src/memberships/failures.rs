//! The per-member failures of one membership reconcile, collected while the
//! other members are written, and the one error they make.

use crate::ReconcileError;
use entra_sync_core::failure::FailureClass;
use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_graph::GraphFailure;

/// Per-member failures collected while the other members are written.
#[derive(Default)]
pub(super) struct Failures(pub(super) Vec<(AkUserPk, GraphFailure)>);

impl Failures {
    /// The error to report: a configuration failure halts the provider; else a
    /// transient one retries the task (which re-sends only what is still
    /// missing); else the members cannot be written.
    pub(super) fn into_result(self, group: AkGroupPk) -> Result<(), ReconcileError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let list = self
            .0
            .iter()
            .map(|(pk, f)| format!("user {pk}: {f}"))
            .collect::<Vec<_>>()
            .join("; ");
        let detail = format!(
            "group {group}: {} member changes failed: {list}",
            self.0.len()
        );
        let classes: Vec<FailureClass> = self.0.iter().map(|(_, f)| f.class).collect();
        if classes.contains(&FailureClass::Configuration) {
            Err(ReconcileError::Configuration(detail))
        } else if classes.contains(&FailureClass::Forbidden) {
            Err(ReconcileError::Forbidden(detail))
        } else if classes.contains(&FailureClass::Transient) {
            let retry_after = self.0.iter().filter_map(|(_, f)| f.retry_after).max();
            let throttled = self
                .0
                .iter()
                .filter(|(_, f)| f.class == FailureClass::Transient)
                .all(|(_, f)| crate::is_throttle(f));
            if throttled {
                Err(ReconcileError::Waiting {
                    wait: crate::waiting::Wait::Throttled,
                    detail,
                    retry_after,
                })
            } else {
                Err(ReconcileError::Transient {
                    detail,
                    retry_after,
                })
            }
        } else {
            Err(ReconcileError::Permanent(detail))
        }
    }
}
