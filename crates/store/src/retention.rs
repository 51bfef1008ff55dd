//! Retention: the provisioning log, dead letters and finished runs are pruned
//! by age and count, so the tables stay bounded at any directory size.

use crate::{Store, StoreError, query_error};
use std::time::Duration;

/// How much of the history is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Provisioning-log rows older than this go.
    pub outcomes_max_age: Duration,
    /// At most this many provisioning-log rows stay, the newest.
    pub outcomes_max_rows: u64,
    /// Dead letters older than this go.
    pub dead_letters_max_age: Duration,
    /// At most this many dead letters stay, the newest.
    pub dead_letters_max_rows: u64,
    /// Finished full syncs kept per provider, the newest.
    pub runs_kept: u64,
    /// A finished full sync's per-object rows go this long after it finished.
    pub run_objects_max_age: Duration,
}

/// How many rows one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Provisioning-log rows.
    pub outcomes: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// Finished full syncs (with their per-object rows).
    pub runs: u64,
    /// Per-object rows of finished full syncs that stay.
    pub run_objects: u64,
}

impl Store {
    /// Deletes what `retention` does not keep, in one transaction. Returns
    /// `None` when another process is pruning the same database right now.
    pub async fn prune(&self, retention: &Retention) -> Result<Option<Pruned>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn
            .transaction()
            .await
            .map_err(query_error("starting to prune"))?;
        let locked: bool = tx
            .query_one(
                "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))",
                &[&self.lock_key("retention")],
            )
            .await
            .map_err(query_error("taking the retention lock"))?
            .get(0);
        if !locked {
            return Ok(None);
        }
        let secs = |d: Duration| d.as_secs_f64();
        let rows = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let mut pruned = Pruned::default();
        pruned.outcomes += tx
            .execute(
                "DELETE FROM object_outcomes WHERE at < now() - make_interval(secs => $1)",
                &[&secs(retention.outcomes_max_age)],
            )
            .await
            .map_err(query_error("pruning the provisioning log by age"))?;
        pruned.outcomes += tx
            .execute(
                "DELETE FROM object_outcomes WHERE id <=
                   (SELECT id FROM object_outcomes ORDER BY id DESC OFFSET $1 LIMIT 1)",
                &[&rows(retention.outcomes_max_rows)],
            )
            .await
            .map_err(query_error("pruning the provisioning log by count"))?;
        pruned.dead_letters += tx
            .execute(
                "DELETE FROM dead_letters WHERE at < now() - make_interval(secs => $1)",
                &[&secs(retention.dead_letters_max_age)],
            )
            .await
            .map_err(query_error("pruning dead letters by age"))?;
        pruned.dead_letters += tx
            .execute(
                "DELETE FROM dead_letters WHERE id <=
                   (SELECT id FROM dead_letters ORDER BY id DESC OFFSET $1 LIMIT 1)",
                &[&rows(retention.dead_letters_max_rows)],
            )
            .await
            .map_err(query_error("pruning dead letters by count"))?;
        pruned.runs = tx
            .execute(
                "DELETE FROM sync_runs WHERE id IN (
                   SELECT id FROM (
                     SELECT id, row_number() OVER (PARTITION BY provider ORDER BY started_at DESC) AS n
                     FROM sync_runs WHERE state <> 'running') finished
                   WHERE n > $1)",
                &[&rows(retention.runs_kept)],
            )
            .await
            .map_err(query_error("pruning finished runs"))?;
        pruned.run_objects = tx
            .execute(
                "DELETE FROM sync_run_objects o USING sync_runs r
                 WHERE o.run_id = r.id AND r.state <> 'running'
                   AND r.finished_at < now() - make_interval(secs => $1)",
                &[&secs(retention.run_objects_max_age)],
            )
            .await
            .map_err(query_error("pruning the objects of finished runs"))?;
        tx.commit()
            .await
            .map_err(query_error("committing the pruning"))?;
        Ok(Some(pruned))
    }
}
