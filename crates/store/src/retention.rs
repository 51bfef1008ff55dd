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
        let mut pruned = Pruned {
            outcomes: prune_log(
                &tx,
                &OUTCOMES,
                retention.outcomes_max_age,
                retention.outcomes_max_rows,
            )
            .await?,
            dead_letters: prune_log(
                &tx,
                &DEAD_LETTERS,
                retention.dead_letters_max_age,
                retention.dead_letters_max_rows,
            )
            .await?,
            ..Pruned::default()
        };
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
                &[&retention.run_objects_max_age.as_secs_f64()],
            )
            .await
            .map_err(query_error("pruning the objects of finished runs"))?;
        tx.commit()
            .await
            .map_err(query_error("committing the pruning"))?;
        Ok(Some(pruned))
    }
}

/// A log table pruned by age (its `at`) and by count (its `id`, newest kept).
struct LogTable {
    name: &'static str,
    by_age: &'static str,
    by_count: &'static str,
}

const OUTCOMES: LogTable = LogTable {
    name: "object_outcomes",
    by_age: "pruning the provisioning log by age",
    by_count: "pruning the provisioning log by count",
};

const DEAD_LETTERS: LogTable = LogTable {
    name: "dead_letters",
    by_age: "pruning dead letters by age",
    by_count: "pruning dead letters by count",
};

/// Deletes `table`'s rows older than `max_age`, then all but the newest
/// `max_rows`; returns how many went.
async fn prune_log(
    tx: &tokio_postgres::Transaction<'_>,
    table: &LogTable,
    max_age: Duration,
    max_rows: u64,
) -> Result<u64, StoreError> {
    let name = table.name;
    let by_age = tx
        .execute(
            &format!("DELETE FROM {name} WHERE at < now() - make_interval(secs => $1)"),
            &[&max_age.as_secs_f64()],
        )
        .await
        .map_err(query_error(table.by_age))?;
    let by_count = tx
        .execute(
            &format!(
                "DELETE FROM {name} WHERE id <=
                   (SELECT id FROM {name} ORDER BY id DESC OFFSET $1 LIMIT 1)"
            ),
            &[&rows(max_rows)],
        )
        .await
        .map_err(query_error(table.by_count))?;
    Ok(by_age + by_count)
}

/// A row count as PostgreSQL's bigint, saturating.
fn rows(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
