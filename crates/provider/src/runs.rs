//! Starting a full sync: the one way every path (the schedule, settings
//! changes, a gap in the events feed, `entra-sync sync` and `resume`) asks
//! for a run. A halted provider starts none until `resume` (DESIGN invariant 6);
//! `resume --allow-deletions` clears only the deletion guard's halt and waives
//! the guard for the run it starts (invariant 7).

use crate::Provider;
use entra_sync_store::providers::{Halt, HaltKind};
use entra_sync_store::runs::{RunStart, RunTrigger};
use entra_sync_store::{Store, StoreError};
use uuid::Uuid;

/// The answer to a request for a full sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunRequest {
    /// A new run was started.
    Started(Uuid),
    /// One was already running (one per provider at a time); it does the job.
    AlreadyRunning(Uuid),
    /// The provider is halted: no run was started.
    Halted(Halt),
}

impl RunRequest {
    /// The run that does the job, unless the provider is halted.
    pub fn run(&self) -> Option<Uuid> {
        match self {
            Self::Started(id) | Self::AlreadyRunning(id) => Some(*id),
            Self::Halted(_) => None,
        }
    }
}

/// Asks for a full sync of `provider`: starts one unless one is running or the
/// provider is halted. The active producer executes it. A trigger that
/// [allows deletions](RunTrigger::allows_deletions) waives the deletion guard
/// for the run (a run already running gets the waiver).
#[tracing::instrument(skip_all, fields(provider = %provider.name, %trigger))]
pub async fn request_full_sync(
    store: &Store,
    provider: &Provider,
    trigger: RunTrigger,
) -> Result<RunRequest, StoreError> {
    // Runs reference the provider's row; no producer may have made it yet.
    store
        .ensure_provider(&provider.name, &provider.settings_hash)
        .await?;
    if let Some(halt) = store.halt_of(&provider.name).await? {
        tracing::debug!(reason = %halt.reason, "provider halted: no full sync started");
        return Ok(RunRequest::Halted(halt));
    }
    let start = if trigger.allows_deletions() {
        store
            .start_run_allowing_deletions(&provider.name, trigger)
            .await?
    } else {
        store.start_run(&provider.name, trigger).await?
    };
    Ok(match start {
        RunStart::Started(run) => {
            tracing::info!(%run, "full sync started");
            RunRequest::Started(run)
        }
        RunStart::AlreadyRunning(run) => {
            tracing::debug!(%run, "a full sync is already running");
            RunRequest::AlreadyRunning(run)
        }
    })
}

/// The answer to `resume`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resumed {
    /// The halt was cleared; the full sync that catches up was asked for.
    Resumed {
        /// The halt that was cleared.
        halt: Halt,
        /// The full sync.
        run: RunRequest,
    },
    /// The provider was not halted (by the deletion guard, with
    /// `allow_deletions`): nothing changed. Its halt, if any.
    NotHalted(Option<Halt>),
}

/// Clears the halt of `provider` and asks for a full sync (`entra-sync
/// resume`). Plain, it clears any halt and keeps the deletion guard; with
/// `allow_deletions`, it clears only a deletion-guard halt, and the full sync
/// it starts deletes what the guard held back.
#[tracing::instrument(skip_all, fields(provider = %provider.name, allow_deletions))]
pub async fn resume(
    store: &Store,
    provider: &Provider,
    allow_deletions: bool,
) -> Result<Resumed, StoreError> {
    let halt = store.halt_of(&provider.name).await?;
    let cleared = match halt {
        Some(halt) if allow_deletions && halt.kind != HaltKind::DeletionGuard => {
            return Ok(Resumed::NotHalted(Some(halt)));
        }
        None => return Ok(Resumed::NotHalted(None)),
        Some(halt) if allow_deletions => store
            .clear_halt_of_kind(&provider.name, HaltKind::DeletionGuard)
            .await?
            .then_some(halt),
        Some(_) => store.resume(&provider.name).await?,
    };
    let Some(halt) = cleared else {
        // Someone else resumed it meanwhile.
        return Ok(Resumed::NotHalted(None));
    };
    tracing::info!(reason = %halt.reason, "halt cleared");
    let trigger = if allow_deletions {
        RunTrigger::ResumeAllowingDeletions
    } else {
        RunTrigger::Resume
    };
    let run = request_full_sync(store, provider, trigger).await?;
    Ok(Resumed::Resumed { halt, run })
}
