//! `entra-sync producer`: schedules full syncs, follows authentik's changes,
//! serves the webhook, health and metrics, and publishes tasks until SIGTERM.

use entra_sync_cli::wiring;
use std::path::Path;
use std::process::ExitCode;

/// Runs the producer (active or standby, decided by the leader lock).
pub async fn run(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config)?;
    let store = wiring::store(&config, 8)?;
    let parts = wiring::producer_parts(&config, store)?;
    entra_sync_producer::service::run(parts, super::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
