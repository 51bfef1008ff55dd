//! `entra-sync producer`: schedules full syncs, follows authentik's changes,
//! serves the webhook, health and metrics, and publishes tasks until SIGTERM.

use entra_sync_cli::wiring;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

/// Runs the producer (active or standby, decided by the leader lock);
/// `listen` overrides `[producer] listen`.
pub async fn run(config: Option<&Path>, listen: Option<SocketAddr>) -> anyhow::Result<ExitCode> {
    let mut config = super::load_config(config)?;
    if let Some(listen) = listen {
        config.producer.listen = listen;
    }
    let store = wiring::store(&config, 8)?;
    super::check_schema_at_start(&store).await?;
    let pruning = tokio::spawn(entra_sync_producer::retention::prune_loop(
        store.clone(),
        wiring::retention(&config),
        config.retention.interval,
    ));
    let parts = wiring::producer_parts(&config, store)?;
    let served = entra_sync_producer::service::run(parts, super::shutdown_signal()).await;
    pruning.abort();
    served?;
    Ok(ExitCode::SUCCESS)
}
