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

/// The end of one object of a full-sync run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunObjectEnd {
    /// The run.
    pub run: Uuid,
    /// Object kind.
    pub kind: ObjectKind,
    /// authentik id.
    pub object_id: String,
    /// Failed for good, rather than done.
    pub failed: bool,
}

impl RunObjectEnd {
    fn status(&self) -> &'static str {
        if self.failed { "failed" } else { "done" }
    }
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

    /// Appends many attempts to the provisioning log and ends many run
    /// objects (each counted once, as [`Store::finish_run_object`]) in one
    /// transaction: one commit for a batch of tasks.
    pub async fn record_batch(
        &self,
        outcomes: &[Outcome<'_>],
        ends: &[RunObjectEnd],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn
            .transaction()
            .await
            .map_err(query_error("recording a batch of outcomes"))?;
        if !outcomes.is_empty() {
            let providers: Vec<&str> = outcomes.iter().map(|o| o.provider).collect();
            let runs: Vec<Option<Uuid>> = outcomes.iter().map(|o| o.run_id).collect();
            let kinds: Vec<&str> = outcomes.iter().map(|o| o.kind.as_str()).collect();
            let ids: Vec<&str> = outcomes.iter().map(|o| o.object_id).collect();
            let actions: Vec<&str> = outcomes.iter().map(|o| o.action).collect();
            let results: Vec<&str> = outcomes.iter().map(|o| o.result).collect();
            let details: Vec<Option<&serde_json::Value>> =
                outcomes.iter().map(|o| o.detail.as_ref()).collect();
            let attempts: Vec<i32> = outcomes.iter().map(|o| o.attempt as i32).collect();
            tx.execute(
                "INSERT INTO object_outcomes (provider, run_id, kind, object_id, action, result, detail, attempt)
                 SELECT * FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[], $8::int4[])",
                &[
                    &providers, &runs, &kinds, &ids, &actions, &results,
                    &details,
                    &attempts,
                ],
            )
            .await
            .map_err(query_error("recording a batch of outcomes"))?;
        }
        if !ends.is_empty() {
            // The first end of an object wins, as if they came one by one.
            let mut seen = std::collections::HashSet::new();
            let ends: Vec<&RunObjectEnd> = ends
                .iter()
                .filter(|e| seen.insert((e.run, e.kind, e.object_id.as_str())))
                .collect();
            let runs: Vec<Uuid> = ends.iter().map(|e| e.run).collect();
            let kinds: Vec<&str> = ends.iter().map(|e| e.kind.as_str()).collect();
            let ids: Vec<&str> = ends.iter().map(|e| e.object_id.as_str()).collect();
            let statuses: Vec<&str> = ends.iter().map(|e| e.status()).collect();
            tx.execute(
                "UPDATE sync_run_objects o SET status = e.status
                 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS e(run_id, kind, object_id, status)
                 WHERE o.run_id = e.run_id AND o.kind = e.kind AND o.object_id = e.object_id AND o.status = 'pending'",
                &[&runs, &kinds, &ids, &statuses],
            )
            .await
            .map_err(query_error("finishing a batch of run objects"))?;
        }
        tx.commit()
            .await
            .map_err(query_error("recording a batch of outcomes"))?;
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
