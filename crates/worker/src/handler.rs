//! One delivery, from its body to its ack: decode the task, drop it if its
//! provider is halted, reconcile the object under its lock, record the
//! outcome, publish the follow-up tasks, then ack.
//!
//! - The object is reconciled afresh whatever the task says, so a repeated,
//!   late or reordered task converges to the same result (DESIGN invariant 1).
//! - The read → decide → write → record cycle runs under a per-object lock; a
//!   group and its memberships share one (invariant 2).
//! - The delivery is acked only once the outcome is in PostgreSQL and any
//!   retry or dead letter is confirmed by the broker (invariant 3). It is
//!   never nack-requeued: what cannot finish now follows the one waiting rule
//!   ([`crate::waiting`]), and a delivery that cannot even be republished is
//!   left to the broker, which hands it out again once its channel is gone.
//! - What follows a failure depends on its class (invariant 6): throttling,
//!   a held lock and unreachable PostgreSQL, RabbitMQ or authentik are waits,
//!   never attempts; transient → a delayed retry, dead-lettered after
//!   `max_attempts`; permanent →
//!   recorded; a write refused with 403 → recorded, and counted, since many
//!   in a row mean a lost permission and halt; configuration → the provider
//!   is halted. A delete or suspension the deletion guard held back was not
//!   sent; the guard halted the provider.
//! - A group event's task also tells the users whose scope the group's change
//!   may have changed ([`crate::group_scope`]), whatever became of the group.

use crate::ReconcileError;
use crate::follow_up::FollowUp;
use crate::group_scope;
use crate::metrics::WorkerMetrics;
use crate::outcome::{Action, Done, TaskResult};
use crate::provider::ProviderWorker;
use crate::recorder::{OutcomeRow, Recorder};
use crate::runner::WorkerSettings;
use crate::settle::{Handled, Unfinished};
use crate::waiting::{Next, Wait, WaitingRule};
use entra_sync_authentik::AuthentikClient;
use entra_sync_config::ProviderConfig;
use entra_sync_core::ids::AkGroupPk;
use entra_sync_core::pace::Urgency;
use entra_sync_core::task::{ObjectRef, Task, TaskReason};
use entra_sync_provider::budget::with_urgency;
use entra_sync_provider::{record_accepted_write, record_refused_write};
use entra_sync_queue::{Lane, Publisher};
use entra_sync_store::outcomes::RunObjectEnd;
use entra_sync_store::{Store, StoreError};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use uuid::Uuid;

/// A successful reconcile: what to record, and the work it causes.
struct Reconciled {
    done: Done,
    follow_up: FollowUp,
}

/// Handles deliveries; shared by every in-flight task of the worker.
pub(crate) struct Handler {
    /// The state; its locks come from their own pool.
    pub(crate) store: Store,
    /// Writes outcomes and run-object ends in batches.
    pub(crate) recorder: Recorder,
    /// The authentik client.
    pub(crate) authentik: AuthentikClient,
    /// The configured providers by name.
    pub(crate) configs: HashMap<String, ProviderConfig>,
    /// Each provider's reconcilers, built on first use.
    pub(crate) workers: Mutex<HashMap<String, Arc<ProviderWorker>>>,
    /// Publishes retries, dead letters and follow-ups.
    pub(crate) publisher: Publisher,
    /// Loop settings.
    pub(crate) settings: WorkerSettings,
    /// What follows a task that could not finish now.
    pub(crate) rule: WaitingRule,
    /// The counters.
    pub(crate) metrics: Arc<WorkerMetrics>,
}

impl Handler {
    /// One try at a delivery, held here for `held` so far.
    pub(crate) async fn process(
        &self,
        lane: Lane,
        body: &[u8],
        held: Duration,
    ) -> Result<Handled, Unfinished> {
        let task = match Task::decode(body) {
            Ok(task) => task,
            Err(e) => {
                let reason = e.to_string();
                tracing::error!(%reason, "dead-lettering an unreadable task");
                self.publisher.publish_dead(body, &reason).await?;
                let raw = serde_json::from_slice(body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into()));
                self.store
                    .record_dead_letter(None, None, None, Some(raw), &reason)
                    .await?;
                return Ok(Handled::Settled);
            }
        };
        let Some(config) = self.configs.get(&task.provider) else {
            let reason = format!("no provider named {:?} is configured", task.provider);
            self.dead_letter(&task, &reason).await?;
            return Ok(Handled::Settled);
        };
        if self.store.halt_of(&task.provider).await?.is_some() {
            // Rebuilt after `resume`, with a new token and permission check.
            self.workers.lock().await.remove(&task.provider);
            tracing::debug!(provider = %task.provider, object = %task.object, "provider halted; task dropped");
            self.count(&task, TaskResult::Dropped);
            return Ok(Handled::Settled);
        }
        let span = tracing::info_span!("task", provider = %task.provider, object = %task.object, run = ?task.run_id, attempt = task.attempt);
        let urgency = match lane {
            Lane::Direct => Urgency::Direct,
            Lane::Bulk => Urgency::Bulk,
        };
        let reconcile = tracing::Instrument::instrument(self.reconcile(config, &task), span);
        let result = with_urgency(urgency, reconcile).await;
        // Retried, waiting or halted tasks tell the users when they are done.
        let scope_changed = match (task.object, task.run_id, &result) {
            (
                _,
                _,
                Err(
                    ReconcileError::Transient { .. }
                    | ReconcileError::Waiting { .. }
                    | ReconcileError::Configuration(_),
                ),
            ) => None,
            (ObjectRef::Group(group), None, _) => Some(group),
            _ => None,
        };
        match result {
            Ok(Reconciled { done, follow_up }) => {
                if done.action.wrote_to_graph() {
                    record_accepted_write(&self.store, &task.provider).await?;
                }
                self.record(&task, done.action, TaskResult::Ok, done.detail)
                    .await?;
                self.finish_run_object(&task, false).await?;
                if task.run_id.is_none() {
                    self.follow_up(&task, follow_up).await?;
                }
            }
            Err(ReconcileError::Permanent(reason)) => {
                tracing::warn!(provider = %task.provider, object = %task.object, %reason, "object failed");
                self.record_failure(&task, TaskResult::Failed, &reason)
                    .await?;
                self.finish_run_object(&task, true).await?;
            }
            Err(ReconcileError::Forbidden(reason)) => {
                tracing::warn!(provider = %task.provider, object = %task.object, %reason, "Graph refused a write to this object; it fails alone");
                self.record_failure(&task, TaskResult::Failed, &reason)
                    .await?;
                self.finish_run_object(&task, true).await?;
                let refused =
                    record_refused_write(&self.store, &task.provider, task.object, &reason).await?;
                if let Some(lost) = refused {
                    self.halt(&task, &lost.to_string()).await?;
                }
            }
            Err(ReconcileError::Transient {
                detail,
                retry_after,
            }) => match self.rule.after_failure(task.attempt, retry_after) {
                Next::Defer { delay, attempt } => {
                    self.retry(lane, Task { attempt, ..task }, &detail, delay)
                        .await?
                }
                Next::GiveUp { attempts } => {
                    let reason = format!("gave up after {attempts} attempts: {detail}");
                    self.dead_letter(&task, &reason).await?;
                }
                Next::TryAgainHere(pause) => return Ok(Handled::TryAgainHere(pause)),
            },
            Err(ReconcileError::Waiting {
                wait,
                detail,
                retry_after,
            }) => match self.rule.after_wait(task.attempt, retry_after, held) {
                Next::TryAgainHere(pause) => {
                    tracing::debug!(wait = wait.as_str(), %detail, ?pause, "waiting here");
                    return Ok(Handled::TryAgainHere(pause));
                }
                Next::Defer { delay, attempt } => {
                    self.defer(lane, &Task { attempt, ..task }, wait, &detail, delay)
                        .await?
                }
                Next::GiveUp { .. } => unreachable!("waiting never uses up attempts"),
            },
            Err(ReconcileError::HeldBack(held)) => {
                tracing::warn!(provider = %task.provider, object = %task.object, reason = %held, "deletion held back");
                self.record_failure(&task, TaskResult::HeldBack, &held.to_string())
                    .await?;
            }
            Err(ReconcileError::Configuration(reason)) => {
                if self.halt(&task, &reason).await? {
                    self.record_failure(&task, TaskResult::Halted, &reason)
                        .await?;
                }
            }
        }
        if let Some(group) = scope_changed {
            self.publish_scope_changes(config, group).await?;
        }
        Ok(Handled::Settled)
    }

    /// Publishes a direct task for each user whose scope the change of
    /// `group` may have changed ([`group_scope`]). If they cannot be found
    /// now, the task waits and is reconciled again, which changes nothing;
    /// any other failure leaves them to the next full sync.
    async fn publish_scope_changes(
        &self,
        config: &ProviderConfig,
        group: AkGroupPk,
    ) -> Result<(), Unfinished> {
        let users = match self.worker_for(config, None).await {
            Ok(worker) => group_scope::users_to_check(&worker, group).await,
            Err(e) => Err(e),
        };
        let users = match users {
            Ok(users) => users,
            Err(e @ ReconcileError::Waiting { .. }) => return Err(Unfinished::Scope(e)),
            Err(e) => {
                // Not a wait: the next full sync settles these users' scope.
                tracing::warn!(provider = %config.name, %group, error = %e, "cannot tell the users whose scope a group change may have changed");
                return Ok(());
            }
        };
        for user in users {
            let check = Task::new(&config.name, ObjectRef::User(user), TaskReason::Event);
            self.publisher.publish(Lane::Direct, &check).await?;
        }
        Ok(())
    }

    /// Halts the task's provider for a configuration reason and drops its
    /// reconcilers, so that `resume` rebuilds them (with a new token); false
    /// if it was already halted.
    async fn halt(&self, task: &Task, reason: &str) -> Result<bool, StoreError> {
        self.workers.lock().await.remove(&task.provider);
        let halted = self.store.halt(&task.provider, reason).await?;
        if halted {
            tracing::error!(provider = %task.provider, %reason, "provider halted");
        }
        Ok(halted)
    }

    /// The provider's reconcilers, built on first use and again for each newer full sync.
    async fn worker_for(
        &self,
        config: &ProviderConfig,
        run: Option<Uuid>,
    ) -> Result<Arc<ProviderWorker>, ReconcileError> {
        let mut workers = self.workers.lock().await;
        if let Some(worker) = workers.get(&config.name)
            && !worker.is_older_than(run)
        {
            return Ok(worker.clone());
        }
        let worker =
            Arc::new(ProviderWorker::build(config, &self.authentik, &self.store, run).await?);
        workers.insert(config.name.clone(), worker.clone());
        Ok(worker)
    }

    /// Reconciles the task's object under its lock; a lock held elsewhere for
    /// longer than `lock_timeout` is a wait.
    async fn reconcile(
        &self,
        config: &ProviderConfig,
        task: &Task,
    ) -> Result<Reconciled, ReconcileError> {
        let worker = self.worker_for(config, task.run_id).await?;
        let object = task.object.lock_name();
        let lock = self
            .store
            .lock_object(&task.provider, &object, self.settings.lock_timeout)
            .await?
            .ok_or_else(|| ReconcileError::Waiting {
                wait: Wait::Locked,
                detail: format!("{object} is locked by another worker"),
                retry_after: None,
            })?;
        let result = reconcile_object(&worker, task).await;
        if let Err(e) = lock.release().await {
            tracing::warn!(error = %e, "cannot release an object lock; its connection was closed instead");
        }
        result
    }

    pub(crate) async fn record_failure(
        &self,
        task: &Task,
        result: TaskResult,
        reason: &str,
    ) -> Result<(), StoreError> {
        let detail = json!({ "error": reason });
        self.record(task, Action::None, result, Some(detail)).await
    }

    /// Appends to the provisioning log and counts the result.
    pub(crate) async fn record(
        &self,
        task: &Task,
        action: Action,
        result: TaskResult,
        detail: Option<Value>,
    ) -> Result<(), StoreError> {
        self.count(task, result);
        self.recorder
            .outcome(OutcomeRow {
                provider: task.provider.clone(),
                run_id: task.run_id,
                kind: task.object.kind(),
                object_id: task.object.id_string(),
                action: action.as_str(),
                result: result.as_str(),
                detail,
                attempt: task.attempt,
            })
            .await
    }

    pub(crate) fn count(&self, task: &Task, result: TaskResult) {
        self.metrics
            .task_finished(&task.provider, task.object.kind().as_str(), result.as_str());
    }

    pub(crate) async fn finish_run_object(
        &self,
        task: &Task,
        failed: bool,
    ) -> Result<(), StoreError> {
        if let Some(run) = task.run_id {
            self.recorder
                .end_run_object(RunObjectEnd {
                    run,
                    kind: task.object.kind(),
                    object_id: task.object.id_string(),
                    failed,
                })
                .await?;
        }
        Ok(())
    }

    /// Publishes the membership tasks a direct change makes necessary.
    async fn follow_up(&self, task: &Task, follow_up: FollowUp) -> Result<(), Unfinished> {
        let groups = follow_up
            .groups(&self.authentik, &self.store, &task.provider)
            .await?;
        for group in groups {
            let membership = Task::new(
                &task.provider,
                ObjectRef::Membership(group),
                TaskReason::MembershipChange,
            );
            self.publisher.publish(Lane::Direct, &membership).await?;
        }
        Ok(())
    }
}

/// Hands the task's object to its reconciler.
async fn reconcile_object(
    worker: &ProviderWorker,
    task: &Task,
) -> Result<Reconciled, ReconcileError> {
    Ok(match task.object {
        ObjectRef::User(pk) => {
            let action = worker.users.reconcile(pk, task.run_id).await?;
            Reconciled {
                follow_up: FollowUp::of_user(pk, &action),
                done: Done::of_object(&action),
            }
        }
        ObjectRef::Group(pk) => {
            let action = worker.groups.reconcile(pk, task.run_id).await?;
            Reconciled {
                follow_up: FollowUp::of_group(pk, &action),
                done: Done::of_object(&action),
            }
        }
        ObjectRef::Membership(pk) => {
            let action = worker.memberships.reconcile(pk).await?;
            Reconciled {
                follow_up: FollowUp::None,
                done: Done::of_memberships(&action),
            }
        }
    })
}
