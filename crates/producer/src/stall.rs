//! Stall recovery: a run is never `running` forever.
//!
//! A task can vanish without an outcome (a broker that lost it, a worker
//! killed at the wrong moment), and its phase then waits for it for ever. A
//! phase is stalled when all of these hold:
//! - its run has recorded no outcome (nor republished) for `stall_timeout`;
//! - its provider is neither halted nor throttled (its write budget paused by
//!   a 429), and PostgreSQL and RabbitMQ answer (an outage is waited out: the
//!   check itself needs both, and a task waiting for authentik sits in a
//!   delay tier);
//! - none of its tasks are still queued: the work queues and the delay tiers
//!   are empty, counted with passive declares. The queues are shared by every
//!   provider, so this errs on the side of waiting.
//!
//! Then the objects of the phase without an outcome are published again,
//! once per `stall_timeout` at most (tasks are level-triggered, so a task
//! that was only slow is merely repeated), and the log and `status` say so.
//! A phase republished [`MAX_REPUBLISHES`] times that stalls again fails its
//! run, naming the objects it waited for.

use crate::full_sync::SyncContext;
use entra_sync_core::task::{ObjectKind, ObjectRef, Task, TaskReason};
use entra_sync_provider::Provider;
use entra_sync_provider::budget::write_budget_key;
use entra_sync_queue::{Lane, QueueError};
use entra_sync_store::StoreError;
use entra_sync_store::runs::{Run, RunState};
use std::time::Duration;

/// Republishes of one phase before its run fails.
pub const MAX_REPUBLISHES: i32 = 3;

/// What a stall check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StallCheck {
    /// Not stalled (still progressing, throttled, halted, tasks queued, or
    /// not in a phase of objects).
    Fine,
    /// Stalled: this many objects were published again.
    Republished(usize),
    /// Stalled once more after [`MAX_REPUBLISHES`]: the run was failed.
    Failed,
}

/// The check could not be made: PostgreSQL or RabbitMQ failed.
#[derive(Debug, thiserror::Error)]
pub enum StallError {
    /// PostgreSQL failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// RabbitMQ failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The object kind a phase works on, if it is a phase of objects.
fn kind_of(phase: &str) -> Option<ObjectKind> {
    match phase {
        "users" => Some(ObjectKind::User),
        "groups" => Some(ObjectKind::Group),
        "memberships" => Some(ObjectKind::Membership),
        _ => None,
    }
}

/// Checks run `run` of `provider` and republishes its phase if it stalled.
pub async fn recover_if_stalled(
    ctx: &SyncContext,
    provider: &Provider,
    run: &Run,
    stall_timeout: Duration,
) -> Result<StallCheck, StallError> {
    let store = &ctx.store;
    let Some(kind) = kind_of(&run.phase) else {
        return Ok(StallCheck::Fine);
    };
    if run.state != RunState::Running {
        return Ok(StallCheck::Fine);
    }
    let Some(last) = store.run_last_progress(run.id).await? else {
        return Ok(StallCheck::Fine);
    };
    let quiet = (chrono::Utc::now() - last).to_std().unwrap_or_default();
    if quiet < stall_timeout {
        return Ok(StallCheck::Fine);
    }
    if store.halt_of(&provider.name).await?.is_some() {
        return Ok(StallCheck::Fine);
    }
    let (tenant, client_id) = provider.graph.app();
    if store
        .budget_paused(&write_budget_key(tenant, client_id))
        .await?
    {
        tracing::debug!(provider = %provider.name, run = %run.id, "no outcome recorded, but the tenant is throttled: not stalled");
        return Ok(StallCheck::Fine);
    }
    let queued = ctx.publisher.queued().await?;
    if queued > 0 {
        tracing::debug!(provider = %provider.name, run = %run.id, queued, "no outcome recorded, but tasks are queued: not stalled");
        return Ok(StallCheck::Fine);
    }
    let pending = store.pending_run_objects(run.id, kind).await?;
    if pending.is_empty() {
        return Ok(StallCheck::Fine);
    }
    let republished = store
        .stall_recovery(run.id)
        .await?
        .filter(|s| s.phase == run.phase)
        .map_or(0, |s| s.count);
    if republished >= MAX_REPUBLISHES {
        let shown: Vec<&str> = pending.iter().take(10).map(String::as_str).collect();
        let error = format!(
            "stalled: {} {} objects never finished after {republished} republishes (e.g. {})",
            pending.len(),
            run.phase,
            shown.join(", ")
        );
        tracing::error!(provider = %provider.name, run = %run.id, %error, "full sync failed");
        store
            .finish_run(run.id, RunState::Failed, Some(&error))
            .await?;
        return Ok(StallCheck::Failed);
    }
    tracing::warn!(
        provider = %provider.name,
        run = %run.id,
        phase = %run.phase,
        objects = pending.len(),
        quiet_s = quiet.as_secs(),
        "full sync stalled: no outcome, nothing queued; publishing its unfinished objects again"
    );
    for id in &pending {
        let object = match ObjectRef::parse(kind, id) {
            Ok(object) => object,
            Err(e) => {
                tracing::error!(provider = %provider.name, run = %run.id, error = %e, "a planned object does not parse; skipped");
                continue;
            }
        };
        let mut task = Task::new(&provider.name, object, TaskReason::FullSync);
        task.run_id = Some(run.id);
        ctx.publish(Lane::Bulk, &task).await?;
    }
    store.note_stall_republished(run.id, &run.phase).await?;
    Ok(StallCheck::Republished(pending.len()))
}
