//! `entra-sync resume --provider NAME [--allow-deletions]`: clears a halt and
//! asks for a full sync.

use entra_sync_provider::{Provider, Resumed, RunRequest, resume};
use entra_sync_store::providers::HaltKind;
use std::path::Path;
use std::process::ExitCode;

/// Clears the provider's halt; tasks dropped while it was halted are caught
/// up by the full sync this starts. With `allow_deletions`, only a deletion
/// guard's halt is cleared, and that full sync deletes what the guard held back.
pub async fn run(
    config: Option<&Path>,
    name: &str,
    allow_deletions: bool,
) -> anyhow::Result<ExitCode> {
    let config = super::load_config_without_secrets(config)?;
    let configured = super::provider(&config, name)?;
    let store = super::migrated_store(&config, 2).await?;
    let provider = Provider::from_config(configured, &store)?;
    let (halt, run) = match resume(&store, &provider, allow_deletions).await? {
        Resumed::Resumed { halt, run } => (halt, run),
        Resumed::NotHalted(None) if !allow_deletions => {
            println!("provider {name} was not halted");
            return Ok(ExitCode::SUCCESS);
        }
        Resumed::NotHalted(halt) => {
            let now = match halt {
                Some(halt) => format!("it is halted: {}", halt.reason),
                None => "it is not halted".to_owned(),
            };
            eprintln!(
                "provider {name} is not halted by the deletion guard ({now}); nothing was changed"
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    println!("provider {name} resumed (was halted: {})", halt.reason);
    if halt.kind == HaltKind::DeletionGuard && !allow_deletions {
        println!(
            "the deletion guard still applies; to let the held-back deletions through, run entra-sync resume --provider {name} --allow-deletions"
        );
    }
    match run {
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
