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

/// The database's schema is older than this build's: `entra-sync migrate` has
/// not been run since the upgrade.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the database schema is at version {}, this entra-sync needs version {needed}: run entra-sync migrate",
    .applied.map_or_else(|| "none (no migration applied)".to_owned(), |v| v.to_string())
)]
pub struct SchemaBehind {
    /// The newest migration applied, if any.
    pub applied: Option<i64>,
    /// The newest migration this build carries.
    pub needed: i64,
}

impl Store {
    /// Checks that every migration this build carries is applied; commands
    /// that read or write the state call it first.
    pub async fn check_schema(&self) -> Result<Result<(), SchemaBehind>, StoreError> {
        let needed = embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| i64::from(m.version()))
            .max()
            .unwrap_or(0);
        let conn = self.conn().await?;
        let applied = match conn
            .query_one(
                "SELECT max(version)::bigint FROM refinery_schema_history",
                &[],
            )
            .await
        {
            Ok(row) => row.get::<_, Option<i64>>(0),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => None,
            Err(e) => return Err(query_error("reading the schema version")(e)),
        };
        Ok(match applied {
            Some(v) if v >= needed => Ok(()),
            applied => Err(SchemaBehind { applied, needed }),
        })
    }
}
