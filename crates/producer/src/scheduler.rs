//! Which full syncs run when, for the active producer.
//!
//! - At start, each provider's settings hash is registered: a new provider
//!   starts a run (`provider_created`), changed settings start one
//!   (`settings_changed`).
//! - Every tick, a provider whose latest run started more than its
//!   `full_sync_interval` ago (or that never ran) starts one (`schedule`),
//!   unless it is halted.
//! - A running run this process does not execute (started by `entra-sync
//!   sync`, by the events sink, or orphaned by a dead leader) is executed;
//!   one it executes is checked for a stall ([`crate::stall`]).
//! - A halted provider starts no run ([`request_full_sync`] refuses), and a
//!   run that slipped in while it was being halted is ended as failed.
//! - A provider halted because its filter group is missing is checked every
//!   tick: once the group exists again the halt clears itself and a full sync
//!   starts (`filter_group_restored`).
//!
//! [`Scheduler`] keeps "run the loop" apart from "do one run" ([`full_sync`]).

use crate::full_sync::{SyncContext, full_sync};
use crate::stall::recover_if_stalled;
use entra_sync_provider::{Provider, RunRequest, RunTrigger, request_full_sync};
use entra_sync_store::StoreError;
use entra_sync_store::providers::SettingsChange;
use entra_sync_store::runs::RunState;
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
    /// What a run syncs; a change of its settings hash starts a full sync.
    pub provider: Provider,
    /// How long after the start of the latest run the next one starts.
    pub full_sync_interval: Duration,
}

/// Starts and executes full syncs. Dropping it aborts the runs it executes
/// (they stay `running`, and the next leader resumes them).
pub struct Scheduler {
    ctx: SyncContext,
    providers: Vec<(Arc<Provider>, Duration)>,
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
                .map(|p| (Arc::new(p.provider), p.full_sync_interval))
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
        for (provider, _) in &self.providers {
            let trigger = match self
                .ctx
                .store
                .register_provider(&provider.name, &provider.settings_hash)
                .await?
            {
                SettingsChange::New => RunTrigger::ProviderCreated,
                SettingsChange::Changed => RunTrigger::SettingsChanged,
                SettingsChange::Unchanged => continue,
            };
            if let RunRequest::Halted(halt) = self.start(provider, trigger).await? {
                tracing::warn!(provider = %provider.name, reason = %halt.reason, %trigger, "provider halted: no full sync started");
            }
        }
        self.registered = true;
        Ok(())
    }

    /// Requests a run and counts it if it started.
    async fn start(
        &self,
        provider: &Provider,
        trigger: RunTrigger,
    ) -> Result<RunRequest, StoreError> {
        let request = request_full_sync(&self.ctx.store, provider, trigger).await?;
        if let RunRequest::Started(_) = request {
            self.ctx.metrics.full_sync_started(&provider.name);
        }
        Ok(request)
    }

    /// One pass over the providers: fail runs of halted providers, start due
    /// runs, execute running runs nobody here executes.
    pub async fn tick(&mut self) -> Result<(), StoreError> {
        self.executing.retain(|_, (_, h)| !h.is_finished());
        for i in 0..self.providers.len() {
            let (provider, interval) = self.providers[i].clone();
            let name = provider.name.clone();
            self.lift_filter_group_halt(&provider).await;
            if let Some(run) = self.ctx.store.fail_run_of_halted(&name).await? {
                tracing::warn!(provider = %name, %run, "full sync failed: the provider is halted");
                if let Some((_, handle)) = self.executing.remove(&name) {
                    handle.abort();
                }
                continue;
            }
            let run = match self.ctx.store.latest_run(&name).await? {
                Some(r) if r.state == RunState::Running => r.id,
                Some(r)
                    if chrono::Utc::now() - r.started_at
                        < chrono::Duration::from_std(interval)
                            .unwrap_or(chrono::TimeDelta::MAX) =>
                {
                    continue;
                }
                _ => match self.start(&provider, RunTrigger::Schedule).await?.run() {
                    Some(run) => run,
                    None => continue,
                },
            };
            if self.executing.get(&name).is_some_and(|(id, _)| *id == run) {
                self.recover_if_stalled(&provider, run).await;
                continue;
            }
            if let Some((_, old)) = self.executing.remove(&name) {
                old.abort();
            }
            let ctx = self.ctx.clone();
            let handle = tokio::spawn(async move {
                if let Err(e) = full_sync(&ctx, &provider, run).await {
                    tracing::warn!(provider = %provider.name, %run, error = %e, "full sync interrupted; it resumes on the next tick");
                }
            });
            self.executing.insert(name, (run, handle));
        }
        Ok(())
    }

    /// Republishes the running phase of `run` if it stalled ([`crate::stall`]).
    async fn recover_if_stalled(&self, provider: &Provider, run: Uuid) {
        let checked = match self.ctx.store.run(run).await {
            Ok(Some(r)) => {
                recover_if_stalled(&self.ctx, provider, &r, self.ctx.stall_timeout).await
            }
            Ok(None) => return,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = checked {
            tracing::warn!(provider = %provider.name, %run, error = %e, "cannot check whether the full sync stalled; retrying");
        }
    }

    /// Clears the provider's halt if it waits for a filter group that exists again.
    async fn lift_filter_group_halt(&self, provider: &Provider) {
        let lifted = provider
            .lift_filter_group_halt(&self.ctx.authentik, &self.ctx.store)
            .await;
        match lifted {
            Ok(Some(request)) => {
                if let RunRequest::Started(run) = request {
                    self.ctx.metrics.full_sync_started(&provider.name);
                    tracing::info!(provider = %provider.name, %run, "the filter group exists again: full sync started");
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(provider = %provider.name, error = %e, "cannot check whether the filter group exists again; retrying")
            }
        }
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
