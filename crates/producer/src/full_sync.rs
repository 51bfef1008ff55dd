//! One full-sync run: discovery, the deletion guard, then the users, groups and
//! memberships phases, each published as one bulk task per object that differs
//! from what Entra holds ([`crate::drift`]) and awaited until the workers have
//! finished every object of the phase. An unchanged directory publishes none.
//!
//! The app's permissions are checked first: one it lacks halts the provider
//! before any write. Discovery resolves the scope afresh for every run (and shares it with the
//! workers; a missing filter group halts the provider) and links what
//! already exists in Entra; the provider's deletion guard counts the deletions
//! the run would make with those already made within its window, and past the
//! threshold nothing is published and the provider halts (DESIGN invariant 7).
//! A halt ends the run: [`entra_sync_store::Store::halt_as`] fails it.
//!
//! A run can be executed again from the start (a new leader resuming a run
//! after a crash): discovery links only what is still unlinked, planning
//! ignores objects already planned, and only objects still pending are
//! published again (tasks are level-triggered, so a repeat is harmless).

use crate::discovery::{Discovery, DiscoveryError};
use crate::drift::Comparison;
use crate::metrics::Metrics;
use entra_sync_authentik::AuthentikClient;
use entra_sync_core::failure::FailureClass;
use entra_sync_core::mapping::ProviderInfo;
use entra_sync_core::task::{ObjectKind, ObjectRef, Task, TaskReason};
use entra_sync_provider::{AuthentikSide, PermissionError, Provider, RunCheck, ScopeError};
use entra_sync_queue::{Lane, Publisher, QueueError};
use entra_sync_store::runs::{Run, RunState};
use entra_sync_store::{Store, StoreError};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use uuid::Uuid;

/// What a run needs besides its provider: shared by every run, the sink and the scheduler.
#[derive(Debug, Clone)]
pub struct SyncContext {
    /// The authentik client.
    pub authentik: AuthentikClient,
    /// The state.
    pub store: Store,
    /// Publishes tasks (with confirms).
    pub publisher: Publisher,
    /// How often a run checks whether the workers finished a phase.
    pub poll_interval: Duration,
    /// How long a running phase may record no outcome before it counts as
    /// stalled ([`crate::stall`]).
    pub stall_timeout: Duration,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
}

impl SyncContext {
    /// Publishes a task and counts it.
    pub async fn publish(&self, lane: Lane, task: &Task) -> Result<(), QueueError> {
        self.publisher.publish(lane, task).await?;
        self.metrics.task_published(lane);
        Ok(())
    }

    /// Publishes tasks with their confirms awaited together
    /// ([`Publisher::publish_all`]); counts them once all are confirmed.
    pub async fn publish_all(&self, lane: Lane, tasks: &[Task]) -> Result<(), QueueError> {
        self.publisher.publish_all(lane, tasks).await?;
        for _ in tasks {
            self.metrics.task_published(lane);
        }
        Ok(())
    }
}

/// A run could not be carried on because PostgreSQL or RabbitMQ failed. The run
/// stays `running`, and executing it again resumes it.
#[derive(Debug, thiserror::Error)]
pub enum FullSyncError {
    /// PostgreSQL failed.
    #[error("full sync {run} of provider {provider}: {source}")]
    Store {
        /// The provider.
        provider: String,
        /// The run.
        run: Uuid,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// Publishing a task failed.
    #[error("full sync {run} of provider {provider}: {source}")]
    Queue {
        /// The provider.
        provider: String,
        /// The run.
        run: Uuid,
        /// The cause.
        #[source]
        source: QueueError,
    },
    /// The run does not exist.
    #[error("full sync {run} of provider {provider} does not exist")]
    UnknownRun {
        /// The provider.
        provider: String,
        /// The run.
        run: Uuid,
    },
}

/// Why a run stops before its end.
enum Stop {
    /// End the run as failed with this message.
    Fail(String),
    /// Halt the provider for this configuration error, then fail the run.
    Halt(String),
    /// The run is no longer running (someone else ended it).
    Ended,
    /// PostgreSQL failed: leave the run running.
    Store(StoreError),
    /// RabbitMQ failed: leave the run running.
    Queue(QueueError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<QueueError> for Stop {
    fn from(e: QueueError) -> Self {
        Self::Queue(e)
    }
}

impl From<DiscoveryError> for Stop {
    fn from(e: DiscoveryError) -> Self {
        match e {
            DiscoveryError::Scope(ScopeError::Authentik(e)) | DiscoveryError::Authentik(e) => {
                if e.is_configuration() {
                    Self::Halt(e.to_string())
                } else {
                    Self::Fail(format!("authentik unreachable: {e}"))
                }
            }
            DiscoveryError::Scope(ScopeError::Store { source, .. }) => Self::Store(source),
            DiscoveryError::Scope(e) => Self::Halt(e.to_string()),
            DiscoveryError::Graph(e) if e.class == FailureClass::Configuration => {
                Self::Halt(format!("Microsoft Graph: {e}"))
            }
            DiscoveryError::Graph(e) => Self::Fail(format!("discovery failed: {e}")),
            DiscoveryError::Store(e) => Self::Store(e),
        }
    }
}

/// A permission the app lacks halts the provider before the run writes
/// anything; a token that cannot be fetched stops it by Graph's class.
fn permission_stop(e: PermissionError) -> Stop {
    match e {
        e @ PermissionError::Missing { .. } => Stop::Halt(e.to_string()),
        PermissionError::Graph(f) if f.class == FailureClass::Configuration => {
            Stop::Halt(format!("Microsoft Graph: {f}"))
        }
        PermissionError::Graph(f) => Stop::Fail(format!("cannot fetch a Graph token: {f}")),
    }
}

/// Executes run `run` of `provider` to its end and returns it as finished
/// (done or failed). See the module documentation for the steps.
#[tracing::instrument(skip_all, fields(provider = %provider.name, run = %run))]
pub async fn full_sync(
    ctx: &SyncContext,
    provider: &Provider,
    run: Uuid,
) -> Result<Run, FullSyncError> {
    let exec = Execution { ctx, provider, run };
    let stop = match exec.execute().await {
        Ok(()) => {
            ctx.store
                .finish_run(run, RunState::Done, None)
                .await
                .map_err(|e| exec.store_error(e))?;
            None
        }
        Err(stop) => Some(stop),
    };
    match stop {
        None | Some(Stop::Ended) => {}
        Some(Stop::Fail(message)) => exec.fail(&message).await?,
        Some(Stop::Halt(reason)) => {
            // Halting fails the run, with the provider's first halt reason.
            ctx.store
                .halt(&provider.name, &reason)
                .await
                .map_err(|e| exec.store_error(e))?;
            tracing::error!(%reason, "provider halted");
        }
        Some(Stop::Store(e)) => return Err(exec.store_error(e)),
        Some(Stop::Queue(source)) => {
            return Err(FullSyncError::Queue {
                provider: provider.name.clone(),
                run,
                source,
            });
        }
    }
    let finished = ctx
        .store
        .run(run)
        .await
        .map_err(|e| exec.store_error(e))?
        .ok_or_else(|| FullSyncError::UnknownRun {
            provider: provider.name.clone(),
            run,
        })?;
    tracing::info!(
        state = ?finished.state,
        total = finished.objects_total,
        done = finished.objects_done,
        failed = finished.objects_failed,
        error = finished.error.as_deref().unwrap_or(""),
        "full sync ended"
    );
    Ok(finished)
}

struct Execution<'a> {
    ctx: &'a SyncContext,
    provider: &'a Provider,
    run: Uuid,
}

impl Execution<'_> {
    fn store_error(&self, source: StoreError) -> FullSyncError {
        FullSyncError::Store {
            provider: self.provider.name.clone(),
            run: self.run,
            source,
        }
    }

    async fn fail(&self, message: &str) -> Result<(), FullSyncError> {
        tracing::warn!(error = %message, "full sync failed");
        self.ctx
            .store
            .finish_run(self.run, RunState::Failed, Some(message))
            .await
            .map_err(|e| self.store_error(e))
    }

    async fn execute(&self) -> Result<(), Stop> {
        let store = &self.ctx.store;
        let run = match store.run(self.run).await? {
            Some(r) if r.state == RunState::Running => r,
            _ => return Err(Stop::Ended),
        };
        self.provider
            .check_permissions()
            .await
            .map_err(permission_stop)?;
        store.set_run_phase(self.run, "discovery").await?;
        let found = Discovery {
            store,
            authentik: &self.ctx.authentik,
            provider: self.provider,
        }
        .run()
        .await?;
        let authentik = AuthentikSide {
            users: &found.users,
            groups: &found.groups,
        };
        let checked = self
            .provider
            .deletion_guard(store)
            .check_run(
                &self.provider.deletions,
                &run,
                &authentik,
                &found.user_links,
                &found.group_links,
            )
            .await?;
        match checked {
            RunCheck::Passed(deletions) => tracing::info!(deletions, "deletion guard passed"),
            RunCheck::Waived => tracing::info!("deletion guard waived for this run"),
            // The guard halted the provider, which failed this run.
            RunCheck::HeldBack(_) => return Err(Stop::Ended),
        }
        let comparison = self.comparison(found.listed_at).await?;
        // Each listing and set of links is dropped once compared.
        let users = comparison
            .users(found.entra_users, found.user_links, &found.scope)
            .await?;
        self.phase("users", ObjectKind::User, &users).await?;
        let groups = comparison
            .groups(found.entra_groups, &found.ak_groups, found.group_links)
            .await?;
        self.phase("groups", ObjectKind::Group, &groups).await?;
        let memberships = comparison.memberships(&found.ak_groups).await?;
        self.phase("memberships", ObjectKind::Membership, &memberships)
            .await?;
        Ok(())
    }

    /// The comparison of this run: the mappings compiled (a broken one halts
    /// the provider) and what they may read of the provider.
    async fn comparison(&self, listed_at: SystemTime) -> Result<Comparison<'_>, Stop> {
        let mapper = self
            .provider
            .mapper()
            .map_err(|e| Stop::Halt(e.to_string()))?;
        let domains = self
            .provider
            .graph
            .bulk()
            .verified_domains()
            .await
            .map_err(|f| Stop::from(DiscoveryError::Graph(Box::new(f))))?
            .into_iter()
            .map(|d| d.name)
            .collect();
        Ok(Comparison {
            store: &self.ctx.store,
            authentik: &self.ctx.authentik,
            listed_at,
            provider: self.provider,
            mapper,
            info: ProviderInfo {
                name: self.provider.name.clone(),
                tenant_id: self.provider.tenant_id.clone(),
                client_id: self.provider.client_id.clone(),
                domains,
            },
        })
    }

    /// The bulk task of one object of this run; the ids were planned from typed ids.
    fn task(&self, kind: ObjectKind, id: String) -> Result<Task, Stop> {
        let object = ObjectRef::parse(kind, &id).map_err(|e| Stop::Fail(e.to_string()))?;
        let mut task = Task::new(&self.provider.name, object, TaskReason::FullSync);
        task.run_id = Some(self.run);
        Ok(task)
    }

    /// Plans, publishes and awaits one phase.
    async fn phase(
        &self,
        name: &str,
        kind: ObjectKind,
        ids: &BTreeSet<String>,
    ) -> Result<(), Stop> {
        let store = &self.ctx.store;
        store.set_run_phase(self.run, name).await?;
        let ids: Vec<String> = ids.iter().cloned().collect();
        store.plan_run_objects(self.run, kind, &ids).await?;
        let pending = store.pending_run_objects(self.run, kind).await?;
        tracing::info!(
            phase = name,
            objects = ids.len(),
            publishing = pending.len(),
            "full sync phase"
        );
        let tasks = pending
            .into_iter()
            .map(|id| self.task(kind, id))
            .collect::<Result<Vec<_>, _>>()?;
        self.ctx.publish_all(Lane::Bulk, &tasks).await?;
        // A halt, or anyone else ending the run, shows as the run no longer running.
        loop {
            if store.pending_run_object_count(self.run, kind).await? == 0 {
                return Ok(());
            }
            match store.run(self.run).await? {
                Some(r) if r.state == RunState::Running => {}
                _ => return Err(Stop::Ended),
            }
            tokio::time::sleep(self.ctx.poll_interval).await;
        }
    }
}
