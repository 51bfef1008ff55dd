//! Reading and settling dead letters: tasks that exhausted their retries,
//! listed, retried or dropped by an operator (`entra-sync dead-letters`).

use crate::{Store, StoreError, query_error};
use tokio_postgres::Row;

/// One dead letter, as recorded when its task went to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeadLetter {
    /// Its id, to retry or drop it alone.
    pub id: i64,
    /// user, group or membership, when the task could be read.
    pub kind: Option<String>,
    /// The authentik id, when the task could be read.
    pub object_id: Option<String>,
    /// The task as it was published.
    pub task: Option<serde_json::Value>,
    /// Why it was dead-lettered.
    pub reason: String,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
}

const COLUMNS: &str = "id, kind, object_id, task, reason, at";

fn dead_letter(r: &Row) -> DeadLetter {
    DeadLetter {
        id: r.get(0),
        kind: r.get(1),
        object_id: r.get(2),
        task: r.get(3),
        reason: r.get(4),
        at: r.get(5),
    }
}

impl Store {
    /// A provider's dead letters, oldest first; only `ids` when given.
    pub async fn dead_letters(
        &self,
        provider: &str,
        ids: Option<&[i64]>,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM dead_letters
                     WHERE provider = $1 AND ($2::bigint[] IS NULL OR id = ANY($2))
                     ORDER BY at, id"
                ),
                &[&provider, &ids],
            )
            .await
            .map_err(query_error("reading dead letters"))?;
        Ok(rows.iter().map(dead_letter).collect())
    }

    /// Deletes dead letters of a provider by id; returns those it deleted
    /// (one already gone, e.g. dropped by someone else, is left out).
    pub async fn delete_dead_letters(
        &self,
        provider: &str,
        ids: &[i64],
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!(
                    "DELETE FROM dead_letters WHERE provider = $1 AND id = ANY($2) RETURNING {COLUMNS}"
                ),
                &[&provider, &ids],
            )
            .await
            .map_err(query_error("deleting dead letters"))?;
        let mut deleted: Vec<DeadLetter> = rows.iter().map(dead_letter).collect();
        deleted.sort_by_key(|d| (d.at, d.id));
        Ok(deleted)
    }
}
