//! One module per subcommand.

pub mod check_config;
pub mod migrate;
pub mod sim;

use anyhow::Context;
use entra_sync_config::{Config, ProcessEnv};
use std::path::Path;

/// Loads the configuration named by `--config` / `ENTRA_SYNC_CONFIG`.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let path = path.context("no configuration: pass --config FILE or set ENTRA_SYNC_CONFIG")?;
    Ok(Config::load(path, &ProcessEnv)?)
}
