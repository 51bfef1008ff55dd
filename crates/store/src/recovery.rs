//! What recovering lost work needs: dead letters the broker made, recorded
//! once per message, and the facts stall recovery decides on (when a run last
//! recorded an outcome, when it last republished a phase).

use crate::{Store, StoreError, query_error};
use chrono::{DateTime, Utc};
use entra_sync_core::task::ObjectKind;
use uuid::Uuid;

/// A dead letter the broker made on its own, as taken from the dead-letter queue.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerDeadLetter<'a> {
    /// The message's id, which makes recording it idempotent.
    pub message_id: &'a str,
    /// The task's provider, if the body is a task.
    pub provider: Option<&'a str>,
    /// The task's object kind.
    pub kind: Option<ObjectKind>,
    /// The task's object id.
    pub object_id: Option<&'a str>,
    /// The body, as JSON if it parses.
    pub task: Option<serde_json::Value>,
    /// Why the broker dead-lettered it.
    pub reason: &'a str,
}

/// Where a run's stall recovery stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StallRecovery {
    /// The phase last republished.
    pub phase: String,
    /// When.
    pub republished_at: DateTime<Utc>,
    /// How many times that phase was republished.
    pub count: i32,
}

impl Store {
    /// Records a dead letter the broker made; false if this message was
    /// recorded already (by another worker, or before a crash).
    pub async fn record_broker_dead_letter(
        &self,
        letter: &BrokerDeadLetter<'_>,
    ) -> Result<bool, StoreError> {
        let conn = self.conn().await?;
        let inserted = conn
            .execute(
                "INSERT INTO dead_letters (provider, kind, object_id, task, reason, message_id)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (message_id) WHERE message_id IS NOT NULL DO NOTHING",
                &[
                    &letter.provider,
                    &letter.kind.map(ObjectKind::as_str),
                    &letter.object_id,
                    &letter.task,
                    &letter.reason,
                    &letter.message_id,
                ],
            )
            .await
            .map_err(query_error("recording a dead letter"))?;
        Ok(inserted == 1)
    }

    /// When run `run` last made progress: its newest outcome, its last
    /// republish, or its start, whichever is latest.
    pub async fn run_last_progress(&self, run: Uuid) -> Result<Option<DateTime<Utc>>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT GREATEST(r.started_at, r.stall_republished_at,
                                 (SELECT max(o.at) FROM object_outcomes o WHERE o.run_id = r.id))
                 FROM sync_runs r WHERE r.id = $1",
                &[&run],
            )
            .await
            .map_err(query_error("reading a run's last progress"))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Notes that `phase` of run `run` was republished now (counted per phase).
    pub async fn note_stall_republished(&self, run: Uuid, phase: &str) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "UPDATE sync_runs SET stall_republished_at = now(),
                 stall_republish_count = CASE WHEN stall_phase = $2
                     THEN stall_republish_count + 1 ELSE 1 END,
                 stall_phase = $2
             WHERE id = $1",
            &[&run, &phase],
        )
        .await
        .map_err(query_error("noting a stall recovery"))?;
        Ok(())
    }

    /// Where run `run`'s stall recovery stands, if it ever republished.
    pub async fn stall_recovery(&self, run: Uuid) -> Result<Option<StallRecovery>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT stall_phase, stall_republished_at, stall_republish_count FROM sync_runs
                 WHERE id = $1 AND stall_republished_at IS NOT NULL",
                &[&run],
            )
            .await
            .map_err(query_error("reading a run's stall recovery"))?;
        Ok(row.map(|r| StallRecovery {
            phase: r.get(0),
            republished_at: r.get(1),
            count: r.get(2),
        }))
    }

    /// Whether the rate budget `key` is paused by a 429 now.
    pub async fn budget_paused(&self, key: &str) -> Result<bool, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT 1 FROM rate_budgets WHERE budget_key = $1 AND throttled_until > clock_timestamp()",
                &[&key],
            )
            .await
            .map_err(query_error("reading a rate budget's pause"))?;
        Ok(row.is_some())
    }
}
