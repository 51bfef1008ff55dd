//! `entra-sync worker`: consumes tasks and writes to Graph until SIGTERM.

use entra_sync_queue::Topology;
use entra_sync_worker::runner::{self, WorkerParts, WorkerSettings};
use std::path::Path;
use std::process::ExitCode;

/// Runs the worker loop; `concurrency` overrides `[worker] concurrency`.
pub async fn run(config: Option<&Path>, concurrency: Option<usize>) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config)?;
    let concurrency = concurrency.unwrap_or(config.worker.concurrency).max(1);
    let settings = WorkerSettings {
        concurrency,
        max_attempts: config.worker.max_attempts,
        ..WorkerSettings::default()
    };
    // Each in-flight task holds its object's lock on one connection and uses another.
    let store = super::store(&config, concurrency * 2 + 2)?;
    let parts = WorkerParts {
        store,
        amqp_url: config.amqp.url.expose().to_owned(),
        topology: Topology::new(&config.amqp.queue_prefix),
        authentik: super::authentik(&config)?,
        providers: config.providers.clone(),
        settings,
        listen: Some(config.worker.listen),
    };
    runner::run(parts, super::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
