//! Which full syncs run when, for the active producer.
//!
//! - At start, each provider's settings hash is registered: a new provider
//!   starts a run (`provider_created`), changed settings start one
//!   (`settings_changed`).
//! - Every tick, a provider whose latest run started more than its
//!   `full_sync_interval` ago (or that never ran) starts one (`schedule`),
//!   unless it is halted.
//! - A running run this process does not execute (started by `entra-sync
//!   sync`, by the events sink, or orphaned by a dead leader) is executed.
//! - A halted provider's running run is ended as failed.
//!
//! [`Scheduler`] keeps "run the loop" apart from "do one run" ([`full_sync`]).

use crate::full_sync::{SyncContext, SyncTarget, full_sync};
use entra_sync_store::StoreError;
use entra_sync_store::providers::SettingsChange;
use entra_sync_store::runs::{RunStart, RunState};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// One provider's schedule, as plain data (the CLI and tests build it).
#[derive(Debug, Clone)]
pub struct ProviderSchedule {
    /// What a run syncs.
    pub target: SyncTarget,
    /// The hash of the provider's settings; a change starts a full sync.
    pub settings_hash: String,
    /// How long after the start of the latest run the next one starts.
    pub full_sync_interval: Duration,
}

/// Starts and executes full syncs. Dropping it aborts the runs it executes
/// (they stay `running`, and the next leader resumes them).
pub struct Scheduler {
    ctx: SyncContext,
    providers: Vec<(Arc<SyncTarget>, ProviderSchedule)>,
    executing: HashMap<String, (Uuid, JoinHandle<()>)>,
    registered: bool,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("providers", &self.providers.len())
            .field("executing", &self.executing())
            .finish()
    }
}

impl Scheduler {
    /// A scheduler for `providers`.
    pub fn new(ctx: SyncContext, providers: Vec<ProviderSchedule>) -> Self {
        Self {
            ctx,
            providers: providers
                .into_iter()
                .map(|p| (Arc::new(p.target.clone()), p))
                .collect(),
            executing: HashMap::new(),
            registered: false,
        }
    }

    /// The runs this scheduler is executing now.
    pub fn executing(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self
            .executing
            .values()
            .filter(|(_, h)| !h.is_finished())
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    }

    /// Registers every provider's settings hash and starts a run for new
    /// providers and changed settings.
    pub async fn register(&mut self) -> Result<(), StoreError> {
        for (target, schedule) in &self.providers {
            let name = &target.name;
            let trigger = match self
                .ctx
                .store
                .register_provider(name, &schedule.settings_hash)
                .await?
            {
                SettingsChange::New => "provider_created",
                SettingsChange::Changed => "settings_changed",
                SettingsChange::Unchanged => continue,
            };
            if let Some(halt) = self.ctx.store.halt_of(name).await? {
                tracing::warn!(provider = %name, reason = %halt.reason, trigger, "provider halted: no full sync started");
                continue;
            }
            self.start(name, trigger).await?;
        }
        self.registered = true;
        Ok(())
    }

    async fn start(&self, provider: &str, trigger: &str) -> Result<RunStart, StoreError> {
        let started = self.ctx.store.start_run(provider, trigger).await?;
        match started {
            RunStart::Started(run) => {
                tracing::info!(provider, %run, trigger, "full sync started");
                self.ctx.metrics.full_sync_started(provider);
            }
            RunStart::AlreadyRunning(run) => {
                tracing::debug!(provider, %run, trigger, "a full sync is already running");
            }
        }
        Ok(started)
    }

    /// One pass over the providers: fail halted runs, start due runs, execute
    /// running runs nobody here executes.
    pub async fn tick(&mut self) -> Result<(), StoreError> {
        self.executing.retain(|_, (_, h)| !h.is_finished());
        for i in 0..self.providers.len() {
            let (target, schedule) = &self.providers[i];
            let (target, interval) = (target.clone(), schedule.full_sync_interval);
            let name = target.name.clone();
            let latest = self.ctx.store.latest_run(&name).await?;
            if let Some(halt) = self.ctx.store.halt_of(&name).await? {
                if let Some(run) = latest.filter(|r| r.state == RunState::Running) {
                    let message = format!("provider halted: {}", halt.reason);
                    self.ctx
                        .store
                        .finish_run(run.id, RunState::Failed, Some(&message))
                        .await?;
                    tracing::warn!(provider = %name, run = %run.id, %message, "full sync failed");
                    if let Some((_, handle)) = self.executing.remove(&name) {
                        handle.abort();
                    }
                }
                continue;
            }
            let run = match latest {
                Some(r) if r.state == RunState::Running => r.id,
                Some(r)
                    if chrono::Utc::now() - r.started_at
                        < chrono::Duration::from_std(interval)
                            .unwrap_or(chrono::TimeDelta::MAX) =>
                {
                    continue;
                }
                _ => self.start(&name, "schedule").await?.id(),
            };
            if self.executing.get(&name).is_some_and(|(id, _)| *id == run) {
                continue;
            }
            if let Some((_, old)) = self.executing.remove(&name) {
                old.abort();
            }
            let ctx = self.ctx.clone();
            let task_target = target.clone();
            let handle = tokio::spawn(async move {
                if let Err(e) = full_sync(&ctx, &task_target, run).await {
                    tracing::warn!(provider = %task_target.name, %run, error = %e, "full sync interrupted; it resumes on the next tick");
                }
            });
            self.executing.insert(name, (run, handle));
        }
        Ok(())
    }

    /// Registers the providers (unless [`Scheduler::register`] already did),
    /// then ticks every `every` (or at once when `kick` is notified) until
    /// `shutdown` completes; the runs being executed are then aborted and stay
    /// `running` for the next leader.
    pub async fn run(
        mut self,
        every: Duration,
        kick: Arc<Notify>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            if !self.registered
                && let Err(e) = self.register().await
            {
                tracing::warn!(error = %e, "registering providers failed; retrying");
            }
            if self.registered
                && let Err(e) = self.tick().await
            {
                tracing::warn!(error = %e, "scheduling full syncs failed; retrying");
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = kick.notified() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        for (_, handle) in self.executing.values() {
            handle.abort();
        }
    }
}
