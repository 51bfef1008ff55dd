//! One module per subcommand, and the wiring they share.

pub mod check_config;
pub mod migrate;
pub mod producer;
pub mod resume;
pub mod sim;
pub mod status;
pub mod sync;
pub mod worker;

use anyhow::Context;
pub use entra_sync_cli::wiring::store;
use entra_sync_config::{Config, ProcessEnv};
use std::path::Path;

/// Loads the configuration named by `--config` / `ENTRA_SYNC_CONFIG`.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let path = path.context("no configuration: pass --config FILE or set ENTRA_SYNC_CONFIG")?;
    Ok(Config::load(path, &ProcessEnv)?)
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
