//! Applies the SQL migrations in `migrations/`, once each and in order.
//!
//! refinery has no locking of its own and concurrent runs race on its history
//! table, so the run holds a PostgreSQL advisory lock scoped to the schema:
//! two processes migrating at once apply each migration exactly once.

use crate::{Store, StoreError, query_error};

mod embedded {
    refinery::embed_migrations!("../../migrations");
}

/// What a run applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Names of the migrations applied by this run, in order (e.g. `V1__initial_schema`).
    pub applied: Vec<String>,
}

impl Store {
    /// Applies pending migrations under an advisory lock; safe to run twice or
    /// from two processes at once.
    pub async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let mut conn = self.conn().await?;
        conn.execute(
            "SELECT pg_advisory_lock(hashtext('entra-sync-migrate:' || current_schema()))",
            &[],
        )
        .await
        .map_err(query_error("taking the migration lock"))?;
        let client: &mut tokio_postgres::Client = &mut conn;
        let result = embedded::migrations::runner().run_async(client).await;
        conn.execute(
            "SELECT pg_advisory_unlock(hashtext('entra-sync-migrate:' || current_schema()))",
            &[],
        )
        .await
        .map_err(query_error("releasing the migration lock"))?;
        let report = result.map_err(|e| StoreError::Migration(e.to_string()))?;
        let applied = report
            .applied_migrations()
            .iter()
            .map(|m| format!("V{}__{}", m.version(), m.name()))
            .collect();
        Ok(MigrationReport { applied })
    }
}
