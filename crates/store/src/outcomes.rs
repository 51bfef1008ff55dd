//! The provisioning log (one row per attempt at an object) and dead letters.

use crate::{Store, StoreError, query_error};
use entra_sync_core::task::ObjectKind;
use uuid::Uuid;

/// One attempt at one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<'a> {
    /// Provider name.
    pub provider: &'a str,
    /// The full-sync run, if any.
    pub run_id: Option<Uuid>,
    /// Object kind.
    pub kind: ObjectKind,
    /// authentik id.
    pub object_id: &'a str,
    /// What was done: created, updated, unchanged, deleted, suspended, adopted, skipped, dry_run, …
    pub action: &'a str,
    /// ok, failed, retrying, dead or halted.
    pub result: &'a str,
    /// Details: the failure, the properties written, the dry-run request.
    pub detail: Option<serde_json::Value>,
    /// Which attempt this was.
    pub attempt: u32,
}

impl Store {
    /// Appends to the provisioning log.
    pub async fn record_outcome(&self, outcome: &Outcome<'_>) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "INSERT INTO object_outcomes (provider, run_id, kind, object_id, action, result, detail, attempt)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &outcome.provider,
                &outcome.run_id,
                &outcome.kind.as_str(),
                &outcome.object_id,
                &outcome.action,
                &outcome.result,
                &outcome.detail,
                &(outcome.attempt as i32),
            ],
        )
        .await
        .map_err(query_error("recording an outcome"))?;
        Ok(())
    }

    /// Records a task that went to the dead-letter queue, with its reason.
    pub async fn record_dead_letter(
        &self,
        provider: Option<&str>,
        kind: Option<ObjectKind>,
        object_id: Option<&str>,
        task: Option<serde_json::Value>,
        reason: &str,
    ) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "INSERT INTO dead_letters (provider, kind, object_id, task, reason) VALUES ($1, $2, $3, $4, $5)",
            &[&provider, &kind.map(ObjectKind::as_str), &object_id, &task, &reason],
        )
        .await
        .map_err(query_error("recording a dead letter"))?;
        Ok(())
    }

    /// How many dead letters a provider has.
    pub async fn dead_letter_count(&self, provider: &str) -> Result<i64, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_one(
                "SELECT count(*) FROM dead_letters WHERE provider = $1",
                &[&provider],
            )
            .await
            .map_err(query_error("counting dead letters"))?;
        Ok(row.get(0))
    }

    /// The newest failures of a provider's objects (failed for good,
    /// dead-lettered, halting the provider or held back by the deletion guard),
    /// newest first, at most `limit`.
    pub async fn recent_failures(
        &self,
        provider: &str,
        limit: i64,
    ) -> Result<Vec<Failure>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT kind, object_id, result, detail->>'error', at, run_id FROM object_outcomes
                 WHERE provider = $1 AND result IN ('failed', 'dead', 'halted', 'held_back')
                 ORDER BY at DESC, id DESC LIMIT $2",
                &[&provider, &limit],
            )
            .await
            .map_err(query_error("reading recent failures"))?;
        Ok(rows
            .iter()
            .map(|r| Failure {
                kind: r.get(0),
                object_id: r.get(1),
                result: r.get(2),
                error: r.get(3),
                at: r.get(4),
                run_id: r.get(5),
            })
            .collect())
    }
}

/// One failed attempt at an object, from the provisioning log.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Failure {
    /// user, group or membership.
    pub kind: String,
    /// The authentik id.
    pub object_id: String,
    /// failed, dead or halted.
    pub result: String,
    /// Why.
    pub error: Option<String>,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The full sync it belonged to, if any.
    pub run_id: Option<Uuid>,
}

/// One row of the provisioning log, as `why` and `sync --object` show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LoggedOutcome {
    /// Its place in the log (grows with every row).
    pub id: i64,
    /// user, group or membership.
    pub kind: String,
    /// The full sync it belonged to, if any.
    pub run_id: Option<Uuid>,
    /// What was done.
    pub action: String,
    /// ok, failed, retrying, dead, halted, held_back or dropped.
    pub result: String,
    /// The failure, the properties written, the skipping mapping…
    pub detail: Option<serde_json::Value>,
    /// Which attempt it was.
    pub attempt: i32,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
}

impl Store {
    /// The newest log rows of one object (of any of `kinds`, e.g. a group and
    /// its memberships), newest first, at most `limit`.
    pub async fn object_log(
        &self,
        provider: &str,
        kinds: &[&str],
        object_id: &str,
        limit: i64,
    ) -> Result<Vec<LoggedOutcome>, StoreError> {
        self.read_log(
            "SELECT id, kind, run_id, action, result, detail, attempt, at FROM object_outcomes
             WHERE provider = $1 AND kind = ANY($2) AND object_id = $3
             ORDER BY id DESC LIMIT $4",
            &[&provider, &kinds, &object_id, &limit],
        )
        .await
    }

    /// The log rows of one object written after row `after`, oldest first.
    pub async fn object_log_after(
        &self,
        provider: &str,
        kinds: &[&str],
        object_id: &str,
        after: i64,
    ) -> Result<Vec<LoggedOutcome>, StoreError> {
        self.read_log(
            "SELECT id, kind, run_id, action, result, detail, attempt, at FROM object_outcomes
             WHERE provider = $1 AND kind = ANY($2) AND object_id = $3 AND id > $4
             ORDER BY id",
            &[&provider, &kinds, &object_id, &after],
        )
        .await
    }

    /// The id of the newest log row (0 when the log is empty).
    pub async fn last_log_id(&self) -> Result<i64, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_one("SELECT coalesce(max(id), 0) FROM object_outcomes", &[])
            .await
            .map_err(query_error("reading the provisioning log"))?;
        Ok(row.get(0))
    }

    async fn read_log(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<LoggedOutcome>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(sql, params)
            .await
            .map_err(query_error("reading the provisioning log"))?;
        Ok(rows
            .iter()
            .map(|r| LoggedOutcome {
                id: r.get(0),
                kind: r.get(1),
                run_id: r.get(2),
                action: r.get(3),
                result: r.get(4),
                detail: r.get(5),
                attempt: r.get(6),
                at: r.get(7),
            })
            .collect())
    }
}
