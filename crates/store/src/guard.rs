//! The deletion guard's shared count (DESIGN invariant 7): every delete or
//! suspend of a provider, from any path and any worker, is claimed here first,
//! and the claim is refused once the provider's rolling window is full. Also
//! the count of objects whose writes Graph refused with 403, which tells a
//! removed permission from one privileged object.

use crate::{Store, StoreError, query_error};
use entra_sync_core::task::ObjectKind;
use std::time::Duration;
use uuid::Uuid;

/// What is about to be done to a linked object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeprovisionAction {
    /// The Entra object is deleted.
    Delete,
    /// The Entra user is disabled.
    Suspend,
}

impl DeprovisionAction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Delete => "delete",
            Self::Suspend => "suspend",
        }
    }
}

/// One delete or suspend asking the guard to let it through.
#[derive(Debug, Clone, Copy)]
pub struct Deprovisioning<'a> {
    /// The provider.
    pub provider: &'a str,
    /// User or group.
    pub kind: ObjectKind,
    /// The authentik id, as text.
    pub object_id: &'a str,
    /// Delete or suspend.
    pub action: DeprovisionAction,
    /// The full sync the task belongs to, if any.
    pub run_id: Option<Uuid>,
}

/// The limit a provider's deprovisionings are held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardLimit {
    /// At most this many deletes and suspends …
    pub threshold: u32,
    /// … within this rolling window.
    pub window: Duration,
}

/// The guard's answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardDecision {
    /// Counted; send it.
    Allowed,
    /// Counted apart: the run was started with `--allow-deletions`.
    Waived,
    /// Not counted, not to be sent: this one would make `would_be`
    /// deprovisionings within the window.
    Exceeded {
        /// The count this deprovisioning would have reached.
        would_be: u64,
    },
}

impl Store {
    /// Claims one deprovisioning against `limit`. Claims of one provider are
    /// serialised on its row, so two workers never both let the
    /// `threshold + 1`-th through. An object counts once per window, so a
    /// delete retried after a transient failure is not counted again. A task
    /// of a run started with `resume --allow-deletions` is waived, and does
    /// not fill the window.
    pub async fn claim_deprovisioning(
        &self,
        claim: &Deprovisioning<'_>,
        limit: GuardLimit,
    ) -> Result<GuardDecision, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn
            .transaction()
            .await
            .map_err(query_error("starting a deletion-guard claim"))?;
        tx.execute(
            "SELECT 1 FROM providers WHERE name = $1 FOR UPDATE",
            &[&claim.provider],
        )
        .await
        .map_err(query_error("locking a provider's deletion guard"))?;
        let waived = match claim.run_id {
            None => false,
            Some(run) => tx
                .query_opt(
                    "SELECT deletions_allowed FROM sync_runs WHERE id = $1 AND state = 'running'",
                    &[&run],
                )
                .await
                .map_err(query_error("reading a run's deletion waiver"))?
                .is_some_and(|r| r.get(0)),
        };
        if !waived {
            let in_window = count_within(&tx, claim.provider, limit.window).await?;
            let counted = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM deprovisionings
                     WHERE provider = $1 AND kind = $2 AND object_id = $3 AND NOT waived
                       AND at > now() - make_interval(secs => $4))",
                    &[
                        &claim.provider,
                        &claim.kind.as_str(),
                        &claim.object_id,
                        &limit.window.as_secs_f64(),
                    ],
                )
                .await
                .map_err(query_error("reading an object's deletion-guard claim"))?
                .get::<_, bool>(0);
            let would_be = in_window + u64::from(!counted);
            if would_be > u64::from(limit.threshold) {
                tx.rollback()
                    .await
                    .map_err(query_error("ending a refused deletion-guard claim"))?;
                return Ok(GuardDecision::Exceeded { would_be });
            }
        }
        tx.execute(
            "INSERT INTO deprovisionings (provider, kind, object_id, action, run_id, waived)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &claim.provider,
                &claim.kind.as_str(),
                &claim.object_id,
                &claim.action.as_str(),
                &claim.run_id,
                &waived,
            ],
        )
        .await
        .map_err(query_error("recording a deprovisioning"))?;
        tx.commit()
            .await
            .map_err(query_error("committing a deletion-guard claim"))?;
        Ok(if waived {
            GuardDecision::Waived
        } else {
            GuardDecision::Allowed
        })
    }

    /// How many objects `provider` counted deprovisionings of within `window`.
    pub async fn deprovisionings_within(
        &self,
        provider: &str,
        window: Duration,
    ) -> Result<u64, StoreError> {
        let conn = self.conn().await?;
        count_within(&conn, provider, window).await
    }

    /// Records that Graph refused a write to `object_id` with 403, and returns
    /// how many distinct objects of `provider` were refused within `within`
    /// since its last successful write.
    pub async fn record_forbidden_write(
        &self,
        provider: &str,
        kind: ObjectKind,
        object_id: &str,
        within: Duration,
    ) -> Result<u64, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_one(
                "WITH refused AS (
                     INSERT INTO forbidden_writes (provider, kind, object_id) VALUES ($1, $2, $3)
                     ON CONFLICT (provider, kind, object_id) DO UPDATE SET at = now()
                 )
                 SELECT count(*) + 1 FROM forbidden_writes
                 WHERE provider = $1 AND NOT (kind = $2 AND object_id = $3)
                   AND at > now() - make_interval(secs => $4)",
                &[&provider, &kind.as_str(), &object_id, &within.as_secs_f64()],
            )
            .await
            .map_err(query_error("recording a refused write"))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Forgets the 403 refusals of `provider` after a successful write.
    pub async fn clear_forbidden_writes(&self, provider: &str) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "DELETE FROM forbidden_writes WHERE provider = $1",
            &[&provider],
        )
        .await
        .map_err(query_error("clearing refused writes"))?;
        Ok(())
    }
}

async fn count_within(
    client: &impl deadpool_postgres::GenericClient,
    provider: &str,
    window: Duration,
) -> Result<u64, StoreError> {
    let row = client
        .query_one(
            "SELECT count(DISTINCT (kind, object_id)) FROM deprovisionings
             WHERE provider = $1 AND NOT waived AND at > now() - make_interval(secs => $2)",
            &[&provider, &window.as_secs_f64()],
        )
        .await
        .map_err(query_error("counting deprovisionings"))?;
    Ok(row.get::<_, i64>(0) as u64)
}
