//! `entra-sync resume --provider NAME`: clears a halt and asks for a full sync.

use entra_sync_provider::{Provider, RunRequest, RunTrigger, request_full_sync};
use std::path::Path;
use std::process::ExitCode;

/// Clears the provider's halt; tasks dropped while it was halted are caught
/// up by the full sync this starts.
pub async fn run(config: Option<&Path>, name: &str) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config)?;
    let configured = super::provider(&config, name)?;
    let store = super::store(&config, 2)?;
    let provider = Provider::from_config(configured, &store)?;
    let Some(halt) = store.resume(name).await? else {
        println!("provider {name} was not halted");
        return Ok(ExitCode::SUCCESS);
    };
    println!("provider {name} resumed (was halted: {})", halt.reason);
    match request_full_sync(&store, &provider, RunTrigger::Resume).await? {
        RunRequest::Started(id) => println!("full sync {id} requested"),
        RunRequest::AlreadyRunning(id) => println!("full sync {id} is already running"),
        RunRequest::Halted(halt) => {
            eprintln!(
                "provider {name} was halted again meanwhile: {}; no full sync started",
                halt.reason
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}
