//! One module per subcommand, and the wiring they share.

pub mod check_config;
pub mod dead_letters;
pub mod migrate;
pub mod object;
pub mod producer;
pub mod progress;
pub mod resume;
pub mod sim;
pub mod status;
pub mod sync;
pub mod table;
pub mod why;
pub mod worker;

use anyhow::Context;
pub use entra_sync_cli::wiring::store;
use entra_sync_config::{Config, ProcessEnv};
use entra_sync_store::Store;
use std::path::Path;

/// Loads the configuration named by `--config` / `ENTRA_SYNC_CONFIG`.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let path = path.context("no configuration: pass --config FILE or set ENTRA_SYNC_CONFIG")?;
    Ok(Config::load(path, &ProcessEnv)?)
}

/// Loads the configuration without its secrets, for the commands that touch
/// only the database and the broker ([`Config::load_without_secrets`]).
pub fn load_config_without_secrets(path: Option<&Path>) -> anyhow::Result<Config> {
    let path = path.context("no configuration: pass --config FILE or set ENTRA_SYNC_CONFIG")?;
    Ok(Config::load_without_secrets(path, &ProcessEnv)?)
}

/// The database pool, once its schema is known to be current: a command run
/// before `entra-sync migrate` says so instead of failing on a missing table.
pub async fn migrated_store(config: &Config, min_size: usize) -> anyhow::Result<Store> {
    let store = store(config, min_size)?;
    store.check_schema().await??;
    Ok(store)
}

/// At a service's start: refuses a schema behind this build's; a database
/// that does not answer yet is left to the service's own retries.
pub async fn check_schema_at_start(store: &Store) -> anyhow::Result<()> {
    match store.check_schema().await {
        Ok(behind) => Ok(behind?),
        Err(e) => {
            tracing::warn!(error = %e, "cannot check the schema version now");
            Ok(())
        }
    }
}

/// The provider named `name`, or an error listing the configured ones.
pub fn provider<'a>(
    config: &'a Config,
    name: &str,
) -> anyhow::Result<&'a entra_sync_config::ProviderConfig> {
    config.provider(name).with_context(|| {
        let names: Vec<&str> = config.providers.iter().map(|p| p.name.as_str()).collect();
        format!("no provider named {name:?} in the configuration (configured: {names:?})")
    })
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed at once, so a
/// signal that arrives while the service is still starting is not lost.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    async move {
        match (terminate, interrupt) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => {
                tracing::warn!("cannot install signal handlers; stop with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
        tracing::info!("shutdown requested");
    }
}
