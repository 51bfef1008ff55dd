//! Starting a full sync: the one way every path (the schedule, settings
//! changes, a gap in the events feed, `entra-sync sync` and `resume`) asks
//! for a run. A halted provider starts none until `resume` (DESIGN invariant 6).

use crate::Provider;
use entra_sync_store::providers::Halt;
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
/// provider is halted. The active producer executes it.
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
    Ok(match store.start_run(&provider.name, trigger).await? {
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
