//! The worker loop: takes tasks from RabbitMQ, the direct lane first, and
//! reconciles each object under its lock; then records the outcome and acks.
//! What happens after a failure depends on its class (DESIGN invariant 6):
//! transient → a delayed retry (dead letter after `max_attempts`), permanent →
//! recorded, configuration → the provider is halted.

use crate::ReconcileError;
use crate::groups::GroupAction;
use crate::health;
use crate::memberships::MembershipAction;
use crate::metrics::WorkerMetrics;
use crate::provider::ProviderWorker;
use crate::users::UserAction;
use entra_sync_authentik::AuthentikClient;
use entra_sync_config::ProviderConfig;
use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_core::task::{ObjectKind, Task, TaskReason};
use entra_sync_graph::RequestRecord;
use entra_sync_queue::{Lane, Publisher, QueueError, Topology};
use entra_sync_store::outcomes::Outcome;
use entra_sync_store::{Store, StoreError};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicNackOptions};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;

/// How the worker loop behaves.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Tasks reconciled at once.
    pub concurrency: usize,
    /// Attempts of a task before it goes to the dead-letter queue.
    pub max_attempts: u32,
    /// How long a task waits for its object's lock before it is retried later.
    pub lock_timeout: Duration,
    /// How long in-flight tasks may take to finish after a shutdown request;
    /// the rest are requeued by the broker.
    pub shutdown_grace: Duration,
    /// First retry delay; doubled per attempt, with jitter.
    pub retry_base: Duration,
}

impl WorkerSettings {
    /// `concurrency` and `max_attempts` as configured; a 30 s lock timeout,
    /// 7 s of shutdown grace and a first retry after 5 s.
    pub fn new(concurrency: usize, max_attempts: u32) -> Self {
        Self {
            concurrency,
            max_attempts,
            lock_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(7),
            retry_base: Duration::from_secs(5),
        }
    }
}

/// Everything the worker loop runs on.
pub struct WorkerParts {
    /// The state.
    pub store: Store,
    /// RabbitMQ URL.
    pub amqp_url: String,
    /// Queue names and retry tiers.
    pub topology: Topology,
    /// The authentik client.
    pub authentik: AuthentikClient,
    /// The configured providers.
    pub providers: Vec<ProviderConfig>,
    /// Loop settings.
    pub settings: WorkerSettings,
    /// Where to serve `/healthz`, `/readyz` and `/metrics`, if anywhere.
    pub listen: Option<SocketAddr>,
}

/// The worker could not start or lost its broker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// RabbitMQ failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The database pools cannot be built.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The health and metrics address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Consumes tasks until `shutdown` resolves, then stops taking new ones, lets
/// in-flight ones finish within the grace period and returns; unfinished
/// deliveries go back to their queue when the channel closes.
pub async fn run(
    parts: WorkerParts,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let connection = Arc::new(entra_sync_queue::connect(&parts.amqp_url).await?);
    let metrics = Arc::new(WorkerMetrics::default());
    if let Some(addr) = parts.listen {
        health::serve(addr, parts.store.clone(), connection.clone(), &metrics)
            .await
            .map_err(|source| WorkerError::Listen { addr, source })?;
    }
    let publisher = Publisher::open(&connection, parts.topology.clone()).await?;
    let concurrency = parts.settings.concurrency.max(1);
    let prefetch = u16::try_from(concurrency).unwrap_or(u16::MAX);
    let (direct_channel, mut direct) =
        entra_sync_queue::consume(&connection, &parts.topology, Lane::Direct, prefetch).await?;
    let (bulk_channel, mut bulk) =
        entra_sync_queue::consume(&connection, &parts.topology, Lane::Bulk, prefetch).await?;
    let handler = Arc::new(Handler {
        // Locks come from their own pool: a task holds one while it uses others.
        store: parts.store.with_lock_pool(concurrency)?,
        authentik: parts.authentik,
        configs: parts
            .providers
            .into_iter()
            .map(|p| (p.name.clone(), p))
            .collect(),
        workers: Mutex::new(HashMap::new()),
        publisher,
        settings: parts.settings.clone(),
        metrics,
    });
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut in_flight = JoinSet::new();
    tracing::info!(concurrency, "worker started");
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        // Direct tasks first: a bulk task is taken only when no direct one waits.
        let (lane, delivery) = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            Some(d) = direct.next() => (Lane::Direct, d),
            Some(d) = bulk.next() => (Lane::Bulk, d),
            else => break,
        };
        let delivery = match delivery {
            Ok(delivery) => delivery,
            Err(e) => {
                tracing::warn!(error = %e, "consumer error; waiting for the connection to recover");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let handler = handler.clone();
        in_flight.spawn(async move {
            handler.handle(lane, delivery).await;
            drop(permit);
        });
        while in_flight.try_join_next().is_some() {}
    }
    tracing::info!(in_flight = in_flight.len(), "shutting down: no new tasks");
    for (channel, consumer) in [(&direct_channel, &direct), (&bulk_channel, &bulk)] {
        let _ = channel
            .basic_cancel(consumer.tag(), BasicCancelOptions::default())
            .await;
    }
    let drained = tokio::time::timeout(handler.settings.shutdown_grace, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = in_flight.len(),
            "in-flight tasks did not finish in time; the broker requeues them"
        );
        in_flight.abort_all();
    }
    let _ = connection.close(200, "shutdown".into()).await;
    Ok(())
}

/// A failure to record or publish: the task is requeued and comes back.
#[derive(Debug, thiserror::Error)]
enum Unfinished {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What a reconcile did, for the provisioning log.
struct Done {
    action: &'static str,
    detail: Option<Value>,
    follow_up: FollowUp,
}

/// Work a successful reconcile may cause outside a full sync.
enum FollowUp {
    None,
    /// The user's memberships may differ from what we wrote: check the groups
    /// where they differ, or with `every`, all the user's groups on either side
    /// (a suspended user leaves every group we manage).
    UserGroups {
        /// The user.
        user: AkUserPk,
        /// Check every group, not only those whose membership differs.
        every: bool,
    },
    /// The group was just linked: its memberships can now be written.
    GroupMembers(AkGroupPk),
}

struct Handler {
    store: Store,
    authentik: AuthentikClient,
    configs: HashMap<String, ProviderConfig>,
    workers: Mutex<HashMap<String, Arc<ProviderWorker>>>,
    publisher: Publisher,
    settings: WorkerSettings,
    metrics: Arc<WorkerMetrics>,
}

impl Handler {
    async fn handle(&self, lane: Lane, delivery: Delivery) {
        self.metrics.in_flight(1);
        let processed = self.process(lane, &delivery.data).await;
        self.metrics.in_flight(-1);
        match processed {
            Ok(()) => {
                if let Err(e) = delivery.ack(BasicAckOptions::default()).await {
                    tracing::warn!(error = %e, "cannot ack; the task may come again");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot finish a task; it goes back to the queue");
                tokio::time::sleep(Duration::from_secs(1)).await;
                let requeue = BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                };
                if let Err(e) = delivery.nack(requeue).await {
                    tracing::warn!(error = %e, "cannot nack; the broker requeues it on reconnect");
                }
            }
        }
    }

    async fn process(&self, lane: Lane, body: &[u8]) -> Result<(), Unfinished> {
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
                return Ok(());
            }
        };
        let Some(config) = self.configs.get(&task.provider) else {
            let reason = format!("no provider named {:?} is configured", task.provider);
            return self.dead_letter(&task, &reason).await;
        };
        if self.store.halt_of(&task.provider).await?.is_some() {
            tracing::debug!(provider = %task.provider, kind = %task.kind, id = %task.object_id, "provider halted; task dropped");
            self.metrics
                .task_finished(&task.provider, task.kind.as_str(), "dropped");
            return Ok(());
        }
        let span = tracing::info_span!("task", provider = %task.provider, kind = %task.kind, id = %task.object_id, run = ?task.run_id, attempt = task.attempt);
        let result = tracing::Instrument::instrument(self.reconcile(config, &task), span).await;
        match result {
            Ok(done) => {
                self.record(&task, done.action, "ok", done.detail).await?;
                self.finish_run_object(&task, false).await?;
                if task.run_id.is_none() {
                    self.follow_up(&task, done.follow_up).await?;
                }
            }
            Err(ReconcileError::Permanent(reason)) => {
                tracing::warn!(provider = %task.provider, kind = %task.kind, id = %task.object_id, %reason, "object failed");
                self.record(&task, "none", "failed", Some(json!({ "error": reason })))
                    .await?;
                self.finish_run_object(&task, true).await?;
            }
            Err(ReconcileError::Transient {
                detail,
                retry_after,
            }) => self.retry(lane, task, &detail, retry_after).await?,
            Err(ReconcileError::Configuration(reason)) => {
                self.workers.lock().await.remove(&task.provider);
                if self.store.halt(&task.provider, &reason).await? {
                    tracing::error!(provider = %task.provider, %reason, "provider halted");
                    self.record(&task, "none", "halted", Some(json!({ "error": reason })))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// The provider's reconcilers, built on first use.
    async fn worker_for(
        &self,
        config: &ProviderConfig,
    ) -> Result<Arc<ProviderWorker>, ReconcileError> {
        let mut workers = self.workers.lock().await;
        if let Some(worker) = workers.get(&config.name) {
            return Ok(worker.clone());
        }
        let worker = Arc::new(ProviderWorker::build(config, &self.authentik, &self.store).await?);
        workers.insert(config.name.clone(), worker.clone());
        Ok(worker)
    }

    async fn reconcile(
        &self,
        config: &ProviderConfig,
        task: &Task,
    ) -> Result<Done, ReconcileError> {
        let worker = self.worker_for(config).await?;
        let object = match task.kind {
            ObjectKind::User => format!("user/{}", task.object_id),
            // A group and its memberships are written under one lock.
            ObjectKind::Group | ObjectKind::Membership => format!("group/{}", task.object_id),
        };
        let lock = self
            .store
            .lock_object(&task.provider, &object, self.settings.lock_timeout)
            .await?
            .ok_or_else(|| ReconcileError::Transient {
                detail: format!("{object} is locked by another worker"),
                retry_after: None,
            })?;
        let result = self.reconcile_locked(&worker, task).await;
        if let Err(e) = lock.release().await {
            tracing::warn!(error = %e, "cannot release an object lock; its connection was closed instead");
        }
        result
    }

    async fn reconcile_locked(
        &self,
        worker: &ProviderWorker,
        task: &Task,
    ) -> Result<Done, ReconcileError> {
        let invalid = |e: &dyn std::fmt::Display| {
            ReconcileError::Permanent(format!("{} id {:?}: {e}", task.kind, task.object_id))
        };
        match task.kind {
            ObjectKind::User => {
                let pk = AkUserPk(task.object_id.parse().map_err(|e| invalid(&e))?);
                let action = worker.users.reconcile(pk).await?;
                Ok(user_done(pk, action))
            }
            ObjectKind::Group => {
                let pk = group_pk(task).map_err(|e| invalid(&e))?;
                let action = worker.groups.reconcile(pk).await?;
                Ok(group_done(pk, action))
            }
            ObjectKind::Membership => {
                let pk = group_pk(task).map_err(|e| invalid(&e))?;
                let action = worker.memberships.reconcile(pk).await?;
                Ok(membership_done(action))
            }
        }
    }

    async fn retry(
        &self,
        lane: Lane,
        task: Task,
        detail: &str,
        retry_after: Option<Duration>,
    ) -> Result<(), Unfinished> {
        let attempt = task.attempt + 1;
        if attempt >= self.settings.max_attempts {
            let reason = format!("gave up after {attempt} attempts: {detail}");
            return self.dead_letter(&task, &reason).await;
        }
        let delay = retry_after
            .unwrap_or_default()
            .max(backoff(self.settings.retry_base, attempt));
        let tier = self.publisher.topology().tier_for(delay);
        let again = Task { attempt, ..task };
        self.publisher.publish_retry(lane, tier, &again).await?;
        tracing::info!(provider = %again.provider, kind = %again.kind, id = %again.object_id, attempt, delay = ?tier.delay(), %detail, "transient failure; retrying later");
        self.record(
            &again,
            "none",
            "retrying",
            Some(json!({ "error": detail, "retry_in_ms": tier.delay().as_millis() as u64 })),
        )
        .await?;
        Ok(())
    }

    async fn dead_letter(&self, task: &Task, reason: &str) -> Result<(), Unfinished> {
        tracing::error!(provider = %task.provider, kind = %task.kind, id = %task.object_id, %reason, "task dead-lettered");
        self.publisher.publish_dead(&task.encode(), reason).await?;
        let raw = serde_json::to_value(task).ok();
        self.store
            .record_dead_letter(
                Some(&task.provider),
                Some(task.kind),
                Some(&task.object_id),
                raw,
                reason,
            )
            .await?;
        self.record(task, "none", "dead", Some(json!({ "error": reason })))
            .await?;
        self.finish_run_object(task, true).await?;
        Ok(())
    }

    /// Appends to the provisioning log and counts the result.
    async fn record(
        &self,
        task: &Task,
        action: &str,
        result: &'static str,
        detail: Option<Value>,
    ) -> Result<(), StoreError> {
        self.metrics
            .task_finished(&task.provider, task.kind.as_str(), result);
        self.store
            .record_outcome(&Outcome {
                provider: &task.provider,
                run_id: task.run_id,
                kind: task.kind,
                object_id: &task.object_id,
                action,
                result,
                detail,
                attempt: task.attempt,
            })
            .await
    }

    async fn finish_run_object(&self, task: &Task, failed: bool) -> Result<(), StoreError> {
        if let Some(run) = task.run_id {
            self.store
                .finish_run_object(run, task.kind, &task.object_id, failed)
                .await?;
        }
        Ok(())
    }

    /// Publishes the membership tasks a direct change makes necessary.
    async fn follow_up(&self, task: &Task, follow_up: FollowUp) -> Result<(), Unfinished> {
        let groups: Vec<AkGroupPk> = match follow_up {
            FollowUp::None => return Ok(()),
            FollowUp::GroupMembers(group) => vec![group],
            FollowUp::UserGroups { user: pk, every } => {
                let wanted: BTreeSet<AkGroupPk> = match self.authentik.user(pk).await {
                    Ok(Some(user)) => user.groups.into_iter().collect(),
                    Ok(None) => BTreeSet::new(),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the user's groups; the next full sync checks them");
                        return Ok(());
                    }
                };
                let written: BTreeSet<AkGroupPk> = self
                    .store
                    .written_groups_of(&task.provider, pk)
                    .await?
                    .into_iter()
                    .collect();
                if every {
                    wanted.union(&written).copied().collect()
                } else {
                    wanted.symmetric_difference(&written).copied().collect()
                }
            }
        };
        for group in groups {
            let membership = Task::new(
                &task.provider,
                ObjectKind::Membership,
                group.0.hyphenated().to_string(),
                TaskReason::MembershipChange,
            );
            self.publisher.publish(Lane::Direct, &membership).await?;
        }
        Ok(())
    }
}

/// The delay before attempt `attempt` (1-based): `base` doubled per attempt,
/// at most an hour, with up to half of it as random jitter.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let full = base
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(Duration::from_secs(3600));
    let jitter = rand::random_range(0.0..0.5);
    full.mul_f64(0.5 + jitter)
}

fn request_detail(request: &RequestRecord) -> Value {
    json!({ "method": request.method, "url": request.url, "body": request.body })
}

fn group_pk(task: &Task) -> Result<AkGroupPk, uuid::Error> {
    uuid::Uuid::parse_str(&task.object_id).map(AkGroupPk)
}

/// Logs a request dry run withheld.
fn log_dry_run(request: &RequestRecord) {
    tracing::info!(method = %request.method, url = %request.url, body = ?request.body, "dry run: request not sent");
}

fn dry_run_done(request: &RequestRecord) -> Done {
    log_dry_run(request);
    Done {
        action: "dry_run",
        detail: Some(request_detail(request)),
        follow_up: FollowUp::None,
    }
}

fn group_done(pk: AkGroupPk, action: GroupAction) -> Done {
    let (action, detail, follow_up) = match action {
        GroupAction::Created => ("created", None, FollowUp::GroupMembers(pk)),
        GroupAction::Adopted => ("adopted", None, FollowUp::GroupMembers(pk)),
        GroupAction::Recreated => ("recreated", None, FollowUp::GroupMembers(pk)),
        GroupAction::Updated(props) => (
            "updated",
            Some(json!({ "properties": props })),
            FollowUp::None,
        ),
        GroupAction::Unchanged => ("unchanged", None, FollowUp::None),
        GroupAction::Skipped(by) => ("skipped", Some(json!({ "mapping": by })), FollowUp::None),
        GroupAction::Deleted => ("deleted", None, FollowUp::None),
        GroupAction::Unlinked => ("unlinked", None, FollowUp::None),
        GroupAction::DryRun(request) => return dry_run_done(&request),
    };
    Done {
        action,
        detail,
        follow_up,
    }
}

fn membership_done(action: MembershipAction) -> Done {
    let (action, detail) = match action {
        MembershipAction::Synced {
            added,
            removed,
            waiting,
        } => {
            let pks = |v: &[AkUserPk]| v.iter().map(|p| p.0).collect::<Vec<_>>();
            let action = if added.is_empty() && removed.is_empty() {
                "unchanged"
            } else {
                "updated"
            };
            (
                action,
                Some(
                    json!({ "added": pks(&added), "removed": pks(&removed), "waiting_for_user_link": pks(&waiting) }),
                ),
            )
        }
        MembershipAction::GroupNotLinked => ("group_not_linked", None),
        MembershipAction::DryRun(requests) => {
            requests.iter().for_each(log_dry_run);
            let requests: Vec<Value> = requests.iter().map(request_detail).collect();
            ("dry_run", Some(json!({ "requests": requests })))
        }
    };
    Done {
        action,
        detail,
        follow_up: FollowUp::None,
    }
}

fn user_done(pk: AkUserPk, action: UserAction) -> Done {
    let follow = FollowUp::UserGroups {
        user: pk,
        every: false,
    };
    let (action, detail, follow_up) = match action {
        UserAction::Created => ("created", None, follow),
        UserAction::Adopted => ("adopted", None, follow),
        UserAction::Recreated => ("recreated", None, follow),
        UserAction::Updated(props) => ("updated", Some(json!({ "properties": props })), follow),
        UserAction::Unchanged => ("unchanged", None, follow),
        UserAction::Skipped(by) => ("skipped", Some(json!({ "mapping": by })), FollowUp::None),
        UserAction::Deleted => ("deleted", None, FollowUp::None),
        UserAction::Suspended => (
            "suspended",
            None,
            FollowUp::UserGroups {
                user: pk,
                every: true,
            },
        ),
        UserAction::Unlinked => ("unlinked", None, FollowUp::None),
        UserAction::DryRun(request) => return dry_run_done(&request),
    };
    Done {
        action,
        detail,
        follow_up,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(5);
        for attempt in 1..=20 {
            let d = backoff(base, attempt);
            let full = base
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(Duration::from_secs(3600));
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d:?} vs {full:?}"
            );
        }
    }
}
