//! The deletion guard on every path (DESIGN invariant 7): the one place that
//! lets a delete or a suspension through, builds the operator's reason when it
//! holds one back, and halts the provider with [`HaltKind::DeletionGuard`].
//!
//! - A worker claims every delete and suspension before sending it
//!   ([`DeletionGuard::claim`]); the count is the store's, shared by all
//!   workers and atomic, over the rolling `deletion_window`.
//! - A full sync checks its own deletions plus those already in the window
//!   before its first write ([`DeletionGuard::check_run`]).
//! - A run started by `resume --allow-deletions` is waived; a dry run sends
//!   nothing, so it claims nothing.

use crate::Provider;
use crate::deletions::{AuthentikSide, DeletionPolicy};
use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_core::task::ObjectKind;
use entra_sync_store::guard::{DeprovisionAction, Deprovisioning, GuardDecision, GuardLimit};
use entra_sync_store::link_refs::LinkRef;
use entra_sync_store::providers::HaltKind;
use entra_sync_store::runs::Run;
use entra_sync_store::{Store, StoreError};
use std::fmt;
use uuid::Uuid;

/// Lets deletes and suspensions of one provider through, up to its
/// `deletion_threshold` within its `deletion_window`.
#[derive(Debug, Clone)]
pub struct DeletionGuard {
    store: Store,
    provider: String,
    limit: GuardLimit,
    dry_run: bool,
}

/// The guard's answer to one delete or suspension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Send it.
    Granted,
    /// Not to be sent: the provider is halted with this reason.
    HeldBack(HeldBack),
}

/// The guard's answer to a full sync about to start writing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunCheck {
    /// Within the limit: the run would delete or suspend this many objects.
    Passed(u64),
    /// The run was started by `resume --allow-deletions`: not checked.
    Waived,
    /// Past the limit: nothing is to be written, the provider is halted with this reason.
    HeldBack(HeldBack),
}

/// Deletions held back: the operator's reason, stored as the provider's halt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct HeldBack {
    /// The provider.
    pub provider: String,
    /// The count of deletions and suspensions within the window this would make.
    pub would_be: u64,
    /// The limit it would pass.
    pub limit: GuardLimit,
    /// Of `would_be`, how many a full sync would make, if a full sync was held back.
    pub by_full_sync: Option<u64>,
}

impl fmt::Display for HeldBack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deletion guard: {} deletions or suspensions within {} would exceed deletion_threshold {}",
            self.would_be,
            humantime::format_duration(self.limit.window),
            self.limit.threshold
        )?;
        if let Some(run) = self.by_full_sync {
            write!(f, " ({run} of them by this full sync)")?;
        }
        write!(
            f,
            "; nothing more was deleted. Check authentik, then run entra-sync resume --provider {} --allow-deletions",
            self.provider
        )
    }
}

impl Provider {
    /// The provider's deletion guard, counting in `store`.
    pub fn deletion_guard(&self, store: &Store) -> DeletionGuard {
        DeletionGuard::new(
            store.clone(),
            &self.name,
            self.deletions.limit(),
            self.graph.is_dry_run(),
        )
    }
}

impl DeletionGuard {
    /// The guard of `provider`, held to `limit`; a `dry_run` provider sends
    /// nothing, so its deletions are never counted.
    pub fn new(store: Store, provider: &str, limit: GuardLimit, dry_run: bool) -> Self {
        Self {
            store,
            provider: provider.to_owned(),
            limit,
            dry_run,
        }
    }

    /// Claims one delete or suspension of the authentik object `object_id`,
    /// for the task of full sync `run` if any. Refused, it halts the provider.
    #[tracing::instrument(skip(self), fields(provider = %self.provider))]
    pub async fn claim(
        &self,
        kind: ObjectKind,
        object_id: &str,
        action: DeprovisionAction,
        run: Option<Uuid>,
    ) -> Result<Claim, StoreError> {
        if self.dry_run {
            return Ok(Claim::Granted);
        }
        let claim = Deprovisioning {
            provider: &self.provider,
            kind,
            object_id,
            action,
            run_id: run,
        };
        match self.store.claim_deprovisioning(&claim, self.limit).await? {
            GuardDecision::Allowed | GuardDecision::Waived => Ok(Claim::Granted),
            GuardDecision::Exceeded { would_be } => {
                let held = self.held_back(would_be, None);
                self.halt(&held).await?;
                Ok(Claim::HeldBack(held))
            }
        }
    }

    /// Checks full sync `run` before its first write: the deletions it would
    /// make under `policy`, plus those already within the window, must not
    /// pass the threshold. Past it, the provider halts (which fails the run).
    #[tracing::instrument(skip_all, fields(provider = %self.provider, run = %run.id))]
    pub async fn check_run(
        &self,
        policy: &DeletionPolicy,
        run: &Run,
        authentik: &AuthentikSide<'_>,
        user_links: &[LinkRef<AkUserPk>],
        group_links: &[LinkRef<AkGroupPk>],
    ) -> Result<RunCheck, StoreError> {
        if run.deletions_allowed {
            return Ok(RunCheck::Waived);
        }
        let planned = policy.count_run(authentik, user_links, group_links);
        if self.dry_run || planned == 0 {
            return Ok(RunCheck::Passed(planned));
        }
        let already = self
            .store
            .deprovisionings_within(&self.provider, self.limit.window)
            .await?;
        let would_be = already + planned;
        if would_be <= u64::from(self.limit.threshold) {
            return Ok(RunCheck::Passed(planned));
        }
        let held = self.held_back(would_be, Some(planned));
        self.halt(&held).await?;
        Ok(RunCheck::HeldBack(held))
    }

    fn held_back(&self, would_be: u64, by_full_sync: Option<u64>) -> HeldBack {
        HeldBack {
            provider: self.provider.clone(),
            would_be,
            limit: self.limit,
            by_full_sync,
        }
    }

    async fn halt(&self, held: &HeldBack) -> Result<(), StoreError> {
        let reason = held.to_string();
        if self
            .store
            .halt_as(&self.provider, HaltKind::DeletionGuard, &reason)
            .await?
        {
            tracing::error!(%reason, "provider halted by the deletion guard");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn held(by_full_sync: Option<u64>) -> HeldBack {
        HeldBack {
            provider: "contoso".into(),
            would_be: 21,
            limit: GuardLimit {
                threshold: 20,
                window: Duration::from_secs(3600),
            },
            by_full_sync,
        }
    }

    #[test]
    fn the_reason_says_what_was_held_back_and_how_to_let_it_through() {
        assert_eq!(
            held(None).to_string(),
            "deletion guard: 21 deletions or suspensions within 1h would exceed deletion_threshold 20; \
             nothing more was deleted. Check authentik, then run entra-sync resume --provider contoso --allow-deletions"
        );
    }

    #[test]
    fn a_full_sync_held_back_says_how_many_it_would_make() {
        let reason = held(Some(15)).to_string();
        assert!(
            reason.contains("21 deletions or suspensions within 1h would exceed deletion_threshold 20 (15 of them by this full sync)"),
            "{reason}"
        );
        assert!(reason.ends_with("--allow-deletions"), "{reason}");
    }
}
