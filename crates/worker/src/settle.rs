//! Settling a delivery by the waiting rule ([`crate::waiting`]): acked once
//! it is handled, deferred or dead-lettered, never nack-requeued. A task that
//! cannot finish now is tried again here for a few seconds, then republished
//! to a delay tier; one that even RabbitMQ cannot take back is left to the
//! broker, which hands it out again once its channel is gone.

use crate::ReconcileError;
use crate::handler::Handler;
use crate::outcome::{Action, TaskResult};
use crate::waiting::{Next, Wait};
use entra_sync_core::task::Task;
use entra_sync_queue::{Delivery, Lane, QueueError};
use entra_sync_store::StoreError;
use serde_json::json;
use std::time::{Duration, Instant};

/// A failure to record or publish: PostgreSQL or RabbitMQ is unreachable
/// (or refused), so the task waits by the waiting rule.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unfinished {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The users a group change may have moved in or out of scope cannot be
    /// found now (always a [`ReconcileError::Waiting`]).
    #[error("cannot tell the users of a group change whose scope it may have changed: {0}")]
    Scope(ReconcileError),
}

impl Unfinished {
    pub(crate) fn wait(&self) -> Wait {
        match self {
            Self::Store(_) => Wait::Database,
            Self::Queue(_) => Wait::Broker,
            Self::Scope(ReconcileError::Waiting { wait, .. }) => *wait,
            Self::Scope(_) => Wait::Authentik,
        }
    }
}

/// How a delivery was dealt with.
pub(crate) enum Handled {
    /// Finished (reconciled, deferred or dead-lettered): ack it.
    Settled,
    /// Keep it and try again here after this pause.
    TryAgainHere(Duration),
}

/// Longest a delivery is held while RabbitMQ cannot take its deferred task,
/// well below RabbitMQ's `consumer_timeout` (30 min by default), past which
/// the broker would close the channel.
const HOLD_FOR_BROKER: Duration = Duration::from_secs(300);

impl Handler {
    /// Handles one delivery and settles it by the waiting rule: acked once
    /// handled or deferred, never requeued.
    pub(crate) async fn handle(&self, delivery: Delivery) {
        let timer = self.metrics.task_started(delivery.lane());
        let settled = self.settle(delivery.lane(), delivery.body()).await;
        drop(timer);
        if settled {
            if let Err(e) = delivery.ack().await {
                tracing::warn!(error = %e, "cannot ack; the task may come again");
            }
        } else {
            tracing::warn!(
                "RabbitMQ cannot take the task back; it comes again once this channel is gone"
            );
        }
    }

    /// Processes a delivery until it is settled; false if it could be neither
    /// finished nor deferred (RabbitMQ unreachable for too long).
    async fn settle(&self, lane: Lane, body: &[u8]) -> bool {
        let held = Instant::now();
        loop {
            let failure = match self.process(lane, body, held.elapsed()).await {
                Ok(Handled::Settled) => return true,
                Ok(Handled::TryAgainHere(pause)) => {
                    tokio::time::sleep(pause).await;
                    continue;
                }
                Err(e) => e,
            };
            // Recording or publishing failed: PostgreSQL or RabbitMQ cannot be reached.
            let wait = failure.wait();
            let task = Task::decode(body).ok();
            let attempt = task.as_ref().map_or(0, |t| t.attempt);
            match (self.rule.after_wait(attempt, None, held.elapsed()), task) {
                (Next::Defer { delay, attempt }, Some(task)) => {
                    let task = Task { attempt, ..task };
                    let detail = failure.to_string();
                    loop {
                        match self.defer(lane, &task, wait, &detail, delay).await {
                            Ok(()) => return true,
                            Err(e) if held.elapsed() >= HOLD_FOR_BROKER => {
                                tracing::warn!(error = %e, "cannot defer a task");
                                return false;
                            }
                            Err(e) => {
                                tracing::info!(error = %e, "cannot defer a task yet; trying again shortly");
                                tokio::time::sleep(self.rule.pause).await;
                            }
                        }
                    }
                }
                _ if held.elapsed() >= HOLD_FOR_BROKER => return false,
                _ => {
                    tracing::info!(error = %failure, wait = wait.as_str(), "cannot finish a task now; trying again shortly");
                    tokio::time::sleep(self.rule.pause).await;
                }
            }
        }
    }

    /// Sends a task that failed for now to come back after `delay`, as the
    /// attempt it carries. The outcome is recorded first, so a repeat after
    /// a failed publish only repeats the log line.
    pub(crate) async fn retry(
        &self,
        lane: Lane,
        task: Task,
        detail: &str,
        delay: Duration,
    ) -> Result<(), Unfinished> {
        let tier = self.publisher.topology().tier_for(delay);
        let logged = json!({ "error": detail, "retry_in_ms": tier.delay().as_millis() as u64 });
        self.record(&task, Action::None, TaskResult::Retrying, Some(logged))
            .await?;
        self.publisher.publish_retry(lane, tier, &task).await?;
        tracing::info!(provider = %task.provider, object = %task.object, attempt = task.attempt, delay = ?tier.delay(), %detail, "transient failure; retrying later");
        Ok(())
    }

    /// Sends a waiting task to come back after `delay`, its attempt count
    /// unchanged. Logging the wait is best effort: PostgreSQL may be the
    /// thing waited for.
    pub(crate) async fn defer(
        &self,
        lane: Lane,
        task: &Task,
        wait: Wait,
        detail: &str,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let tier = self.publisher.topology().tier_for(delay);
        self.publisher.publish_retry(lane, tier, task).await?;
        tracing::info!(provider = %task.provider, object = %task.object, wait = wait.as_str(), delay = ?tier.delay(), %detail, "waiting; deferred without counting an attempt");
        let logged = json!({ "waiting_for": wait.as_str(), "error": detail, "retry_in_ms": tier.delay().as_millis() as u64 });
        if let Err(e) = self
            .record(task, Action::None, TaskResult::Waiting, Some(logged))
            .await
        {
            tracing::debug!(error = %e, "cannot log a wait");
        }
        Ok(())
    }

    pub(crate) async fn dead_letter(&self, task: &Task, reason: &str) -> Result<(), Unfinished> {
        tracing::error!(provider = %task.provider, object = %task.object, %reason, "task dead-lettered");
        self.publisher.publish_dead(&task.encode(), reason).await?;
        let raw = serde_json::to_value(task).ok();
        self.store
            .record_dead_letter(
                Some(&task.provider),
                Some(task.object.kind()),
                Some(&task.object.id_string()),
                raw,
                reason,
            )
            .await?;
        self.record_failure(task, TaskResult::Dead, reason).await?;
        self.finish_run_object(task, true).await?;
        Ok(())
    }
}
