//! Read-only views for operators (the status page and the gauges of
//! `/metrics`): the last successful full sync, the newest dead letters and
//! the level of each shared rate budget.

use crate::runs::{RUN_COLUMNS, Run, run};
use crate::{Store, StoreError, query_error};
use chrono::{DateTime, Utc};

/// One task in the dead-letter queue, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    /// user, group or membership, when the task could be read.
    pub kind: Option<String>,
    /// The authentik id, when the task could be read.
    pub object_id: Option<String>,
    /// Why it was dead-lettered.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// The level of one shared rate budget.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetLevel {
    /// The budget's key: `graph-writes:{tenant}:{client id}`.
    pub key: String,
    /// Tokens left after the last reservation (negative: reserved ahead).
    pub tokens: f64,
    /// Until when a 429 paused it, if it is paused now.
    pub paused_until: Option<DateTime<Utc>>,
}

impl Store {
    /// The newest finished run of a provider (done, or failed unless
    /// `successful_only`), if any.
    pub async fn last_finished_run(
        &self,
        provider: &str,
        successful_only: bool,
    ) -> Result<Option<Run>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM sync_runs
                     WHERE provider = $1 AND state <> 'running' AND (state = 'done' OR NOT $2)
                     ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT 1"
                ),
                &[&provider, &successful_only],
            )
            .await
            .map_err(query_error("reading the last finished run"))?;
        Ok(row.as_ref().map(run))
    }

    /// The newest dead letters of a provider, newest first, at most `limit`.
    pub async fn recent_dead_letters(
        &self,
        provider: &str,
        limit: i64,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT kind, object_id, reason, at FROM dead_letters WHERE provider = $1
                 ORDER BY at DESC, id DESC LIMIT $2",
                &[&provider, &limit],
            )
            .await
            .map_err(query_error("reading recent dead letters"))?;
        Ok(rows
            .iter()
            .map(|r| DeadLetter {
                kind: r.get(0),
                object_id: r.get(1),
                reason: r.get(2),
                at: r.get(3),
            })
            .collect())
    }

    /// Every shared rate budget's level.
    pub async fn budget_levels(&self) -> Result<Vec<BudgetLevel>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT budget_key, tokens,
                        CASE WHEN throttled_until > clock_timestamp() THEN throttled_until END
                 FROM rate_budgets ORDER BY budget_key",
                &[],
            )
            .await
            .map_err(query_error("reading the rate budgets"))?;
        Ok(rows
            .iter()
            .map(|r| BudgetLevel {
                key: r.get(0),
                tokens: r.get(1),
                paused_until: r.get(2),
            })
            .collect())
    }
}
