//! `entra-sync migrate`.

use entra_sync_store::Store;
use std::path::Path;
use std::process::ExitCode;

/// Applies pending migrations. Needs only the database URL: from the
/// configuration when one is given, else `DATABASE_URL`.
pub async fn run(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let url = match config {
        Some(_) => super::load_config(config)?.database.url.expose().to_owned(),
        None => std::env::var("DATABASE_URL")
            .map_err(|_| anyhow::anyhow!("no database: pass --config FILE or set DATABASE_URL"))?,
    };
    let store = Store::connect(&url, 2, None)?;
    let report = store.migrate().await?;
    if report.applied.is_empty() {
        tracing::info!("database schema is up to date");
    }
    for name in &report.applied {
        tracing::info!(migration = %name, "applied");
    }
    Ok(ExitCode::SUCCESS)
}
