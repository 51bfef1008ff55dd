//! `entra-sync resume --provider NAME`: clears a halt and asks for a full sync.

use entra_sync_store::runs::RunStart;
use std::path::Path;
use std::process::ExitCode;

/// Clears the provider's halt; tasks dropped while it was halted are caught
/// up by the full sync this starts.
pub async fn run(config: Option<&Path>, name: &str) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config)?;
    let provider = super::provider(&config, name)?;
    let store = super::store(&config, 2)?;
    let halt = store.halt_of(name).await?;
    if !store.resume(name).await? {
        println!("provider {name} was not halted");
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(halt) = halt {
        println!("provider {name} resumed (was halted: {})", halt.reason);
    }
    store
        .ensure_provider(name, &provider.settings_hash())
        .await?;
    match store.start_run(name, "resume").await? {
        RunStart::Started(id) => println!("full sync {id} requested"),
        RunStart::AlreadyRunning(id) => println!("full sync {id} is already running"),
    }
    Ok(ExitCode::SUCCESS)
}
