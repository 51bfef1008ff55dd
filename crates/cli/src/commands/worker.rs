//! `entra-sync worker`: consumes tasks and writes to Graph until SIGTERM.

use entra_sync_cli::wiring;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

/// Runs the worker loop; `concurrency` and `listen` override `[worker]`.
pub async fn run(
    config: Option<&Path>,
    concurrency: Option<usize>,
    listen: Option<SocketAddr>,
) -> anyhow::Result<ExitCode> {
    let mut config = super::load_config(config)?;
    if let Some(listen) = listen {
        config.worker.listen = listen;
    }
    let size = wiring::worker_pool_size(concurrency.unwrap_or(config.worker.concurrency));
    let store = wiring::store(&config, size)?;
    super::check_schema_at_start(&store).await?;
    let parts = wiring::worker_parts(&config, store, concurrency)?;
    entra_sync_worker::runner::run(parts, super::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
