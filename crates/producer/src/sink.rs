//! The [`ChangeSink`] of the running producer: changes become direct-lane
//! tasks for every provider that is not halted; a gap in the feed starts a
//! full sync of every provider that is not halted (`resume` starts one for a
//! halted provider).

use crate::events::{ChangeSink, Handoff, SinkError};
use crate::full_sync::SyncContext;
use entra_sync_queue::Lane;
use entra_sync_store::runs::RunStart;
use std::sync::Arc;
use tokio::sync::Notify;

/// Publishes the followers' hand-offs.
#[derive(Debug, Clone)]
pub struct TaskSink {
    ctx: SyncContext,
    providers: Vec<String>,
    runs_started: Arc<Notify>,
}

impl TaskSink {
    /// A sink for `providers` (their names, as configured). `runs_started` is
    /// notified when it starts full syncs, so the scheduler executes them at once.
    pub fn new(ctx: SyncContext, providers: Vec<String>, runs_started: Arc<Notify>) -> Self {
        Self {
            ctx,
            providers,
            runs_started,
        }
    }
}

impl ChangeSink for TaskSink {
    async fn handle(&mut self, handoff: Handoff) -> Result<(), SinkError> {
        match handoff {
            Handoff::Changes { source, changes } => {
                for provider in &self.providers {
                    if let Some(halt) = self.ctx.store.halt_of(provider).await? {
                        tracing::debug!(provider, reason = %halt.reason, "provider halted: changes not published");
                        continue;
                    }
                    for change in &changes {
                        for task in change.tasks(provider, source.reason()) {
                            self.ctx.publish(Lane::Direct, &task).await?;
                        }
                    }
                }
            }
            Handoff::FullSyncNeeded(reason) => {
                for provider in &self.providers {
                    if let Some(halt) = self.ctx.store.halt_of(provider).await? {
                        tracing::info!(provider, reason = %halt.reason, "provider halted: no full sync started (`resume` starts one)");
                        continue;
                    }
                    match self.ctx.store.start_run(provider, "events_gap").await? {
                        RunStart::Started(run) => {
                            tracing::info!(provider, %run, ?reason, "full sync started: changes may have been missed");
                            self.ctx.metrics.full_sync_started(provider);
                        }
                        RunStart::AlreadyRunning(run) => {
                            tracing::info!(provider, %run, ?reason, "changes may have been missed; a full sync is already running");
                        }
                    }
                }
                self.runs_started.notify_one();
            }
        }
        Ok(())
    }
}
