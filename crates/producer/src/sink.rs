//! The [`ChangeSink`] of the running producer: changes become tasks for every
//! provider that is not halted, on their source's lane (events: direct;
//! silent changes: bulk); a gap in the feed requests a full sync of every
//! provider (a halted one waits for `resume`).
//!
//! A batch holding a group change may have deleted, re-created or renamed a
//! filter group: each provider's filter group is resolved again and shared
//! before that batch's tasks are published, so no worker decides them on an
//! older resolution (DESIGN invariant 7). A missing one halts its provider.

use crate::events::{ChangeSink, Handoff, ObjectChange, SinkError};
use crate::full_sync::SyncContext;
use entra_sync_provider::{Provider, RunRequest, RunTrigger, ScopeError, request_full_sync};
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
    /// One hand-off, in a span that the tasks it publishes carry to the
    /// workers (so a change's trace runs to its Graph calls).
    #[tracing::instrument(name = "producer.handoff", level = "info", skip_all)]
    async fn handle(&mut self, handoff: Handoff) -> Result<(), SinkError> {
        match handoff {
            Handoff::Changes { source, changes } => {
                let groups_changed = changes.iter().any(|c| matches!(c, ObjectChange::Group(_)));
                for provider in &self.providers {
                    let name = provider.name.as_str();
                    if let Some(halt) = self.ctx.store.halt_of(name).await? {
                        tracing::debug!(provider = name, reason = %halt.reason, "provider halted: changes not published");
                        continue;
                    }
                    if groups_changed {
                        let scope = provider.shared_scope(&self.ctx.authentik, &self.ctx.store);
                        match scope.refresh().await {
                            Ok(_) => {}
                            // The provider is halted now: nothing to publish.
                            Err(ScopeError::NoFilterGroup { .. }) => continue,
                            Err(e) => return Err(e.into()),
                        }
                    }
                    for change in &changes {
                        for task in change.tasks(name, source.reason()) {
                            self.ctx.publish(source.lane(), &task).await?;
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
