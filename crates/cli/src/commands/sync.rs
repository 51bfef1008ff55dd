//! `entra-sync sync --provider NAME [--wait] [--timeout SECS]`: starts a full
//! sync now. The active producer picks the run up and executes it. With
//! `--wait`, [`Progress`] shows it advance. `--object` syncs one object
//! instead ([`super::object`]).

use super::progress::Progress;
use entra_sync_provider::{Provider, RunRequest, RunTrigger, request_full_sync};
use entra_sync_store::runs::RunState;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Exit code when every object synced.
const ALL_SYNCED: u8 = 0;
/// Exit code when some objects failed.
const SOME_FAILED: u8 = 1;
/// Exit code for any other error (the run failed, timed out, bad input).
const ERROR: u8 = 2;

/// Requests a full sync; with `wait`, blocks until it ends or `timeout` passes.
pub async fn run(
    config: Option<&Path>,
    name: &str,
    wait: bool,
    timeout: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    let config = super::load_config_without_secrets(config)?;
    let configured = super::provider(&config, name)?;
    let store = super::migrated_store(&config, 2).await?;
    let provider = Provider::from_config(configured, &store)?;
    let id = match request_full_sync(&store, &provider, RunTrigger::OnDemand).await? {
        RunRequest::Started(id) => {
            println!("full sync {id} started");
            id
        }
        RunRequest::AlreadyRunning(id) => {
            println!("full sync {id} is already running");
            id
        }
        RunRequest::Halted(halt) => {
            eprintln!(
                "provider {name} is halted: {}; fix it, then run `entra-sync resume --provider {name}`",
                halt.reason
            );
            return Ok(ExitCode::from(ERROR));
        }
    };
    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    let started = Instant::now();
    let mut progress = Progress::new();
    loop {
        // A database restart is waited out, up to the timeout.
        let run = match store.run(id).await {
            Ok(run) => run.ok_or_else(|| anyhow::anyhow!("run {id} disappeared"))?,
            Err(e) if e.is_unreachable() && timeout.is_none_or(|t| started.elapsed() < t) => {
                progress.note(&format!("waiting for PostgreSQL: {e}"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        progress.update(&run);
        if run.state != RunState::Running {
            progress.finish();
        }
        match run.state {
            RunState::Running => {}
            RunState::Done => {
                println!(
                    "full sync {id} done: {} objects, {} done, {} failed",
                    run.objects_total, run.objects_done, run.objects_failed
                );
                return Ok(ExitCode::from(if run.objects_failed == 0 {
                    ALL_SYNCED
                } else {
                    SOME_FAILED
                }));
            }
            RunState::Failed => {
                eprintln!(
                    "full sync {id} failed: {}",
                    run.error.as_deref().unwrap_or("no reason recorded")
                );
                return Ok(ExitCode::from(ERROR));
            }
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            progress.finish();
            eprintln!(
                "full sync {id} still running after {:?} (phase {}, {}/{} objects)",
                started.elapsed(),
                run.phase,
                run.objects_done + run.objects_failed,
                run.objects_total
            );
            return Ok(ExitCode::from(ERROR));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
