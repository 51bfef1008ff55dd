//! The [`ChangeSink`] of the running producer: changes become direct-lane
//! tasks for every provider that is not halted; a gap in the feed requests a
//! full sync of every provider (a halted one waits for `resume`).

use crate::events::{ChangeSink, Handoff, SinkError};
use crate::full_sync::SyncContext;
use entra_sync_provider::{Provider, RunRequest, RunTrigger, request_full_sync};
use entra_sync_queue::Lane;
use std::sync::Arc;
use tokio::sync::Notify;

/// Publishes the followers' hand-offs.
#[derive(Debug, Clone)]
pub struct TaskSink {
    ctx: SyncContext,
    providers: Vec<Arc<Provider>>,
    runs_started: Arc<Notify>,
}

impl TaskSink {
    /// A sink for `providers`. `runs_started` is notified when it starts full
    /// syncs, so the scheduler executes them at once.
    pub fn new(ctx: SyncContext, providers: Vec<Arc<Provider>>, runs_started: Arc<Notify>) -> Self {
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
                for provider in self.providers.iter().map(|p| p.name.as_str()) {
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
                    let request =
                        request_full_sync(&self.ctx.store, provider, RunTrigger::EventsGap).await?;
                    match request {
                        RunRequest::Started(run) => {
                            tracing::info!(provider = %provider.name, %run, ?reason, "full sync started: changes may have been missed");
                            self.ctx.metrics.full_sync_started(&provider.name);
                        }
                        RunRequest::AlreadyRunning(run) => {
                            tracing::info!(provider = %provider.name, %run, ?reason, "changes may have been missed; a full sync is already running");
                        }
                        RunRequest::Halted(halt) => {
                            tracing::info!(provider = %provider.name, reason = %halt.reason, "provider halted: no full sync started (`resume` starts one)");
                        }
                    }
                }
                self.runs_started.notify_one();
            }
        }
        Ok(())
    }
}
