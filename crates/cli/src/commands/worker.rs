//! `entra-sync worker`: consumes tasks and writes to Graph until SIGTERM.

use entra_sync_cli::wiring;
use std::path::Path;
use std::process::ExitCode;

/// Runs the worker loop; `concurrency` overrides `[worker] concurrency`.
pub async fn run(config: Option<&Path>, concurrency: Option<usize>) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config)?;
    let size = wiring::worker_pool_size(concurrency.unwrap_or(config.worker.concurrency));
    let store = wiring::store(&config, size)?;
    let parts = wiring::worker_parts(&config, store, concurrency)?;
    entra_sync_worker::runner::run(parts, super::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
