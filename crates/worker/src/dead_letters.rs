//! The dead-letter follower: no dead letter is silent.
//!
//! A task the broker dead-lettered on its own (its delivery limit) has no
//! `dead_letters` row and its run object never ends, so its run would stay
//! `running`. The follower takes every message from `<prefix>.dlq`; one the
//! broker put there is recorded (once per message, whichever worker takes it)
//! with the broker's reason, its outcome logged as `dead` and its run object
//! ended as failed. Then each message is parked in `<prefix>.dlq.parked`
//! and acked (DESIGN invariant 3: recorded before it leaves the queue).

use crate::outcome::{Action, TaskResult};
use entra_sync_core::task::Task;
use entra_sync_queue::{DeadLetter, DeadLetterConsumer, Publisher};
use entra_sync_store::outcomes::Outcome;
use entra_sync_store::recovery::BrokerDeadLetter;
use entra_sync_store::{Store, StoreError};
use serde_json::{Value, json};
use std::time::Duration;

/// How long one dead letter is retried while PostgreSQL or RabbitMQ is down
/// before it is left to come back (well below `consumer_timeout`).
const HOLD: Duration = Duration::from_secs(300);
/// The pause between tries.
const PAUSE: Duration = Duration::from_secs(1);

/// Follows the dead-letter queue until the consumer ends (it is cancelled at shutdown).
pub(crate) async fn follow(mut consumer: DeadLetterConsumer, publisher: Publisher, store: Store) {
    while let Some(next) = consumer.next().await {
        match next {
            Ok(letter) => settle(letter, &publisher, &store).await,
            Err(e) => {
                tracing::warn!(error = %e, "dead-letter consumer error; waiting for the connection to recover");
                tokio::time::sleep(PAUSE).await;
            }
        }
    }
    tracing::debug!("dead-letter follower stopped");
}

/// Records one dead letter if nobody has, then parks it.
async fn settle(letter: DeadLetter, publisher: &Publisher, store: &Store) {
    let started = tokio::time::Instant::now();
    let reason = loop {
        match record(&letter, store).await {
            Ok(reason) => break reason,
            Err(e) if started.elapsed() >= HOLD => {
                tracing::warn!(error = %e, "cannot record a dead letter; it comes again");
                return;
            }
            Err(e) => {
                tracing::info!(error = %e, "cannot record a dead letter yet; trying again shortly");
                tokio::time::sleep(PAUSE).await;
            }
        }
    };
    // The park is retried by redelivery: recording is idempotent.
    if let Err(e) = letter.park(publisher, &reason).await {
        tracing::warn!(error = %e, "cannot park a dead letter; it comes again");
    }
}

/// The letter's reason, recorded first if the broker dead-lettered it.
async fn record(letter: &DeadLetter, store: &Store) -> Result<String, StoreError> {
    if let Some(reason) = letter.worker_reason() {
        return Ok(reason);
    }
    let reason = match letter.broker_reason() {
        Some(why) => format!("RabbitMQ dead-lettered the task ({why})"),
        None => "found in the dead-letter queue with no reason".to_owned(),
    };
    let task = Task::decode(letter.body()).ok();
    let raw = serde_json::from_slice(letter.body())
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(letter.body()).into()));
    let object_id = task.as_ref().map(|t| t.object.id_string());
    // A message without an id (not ours) is keyed by its content.
    let message_id = letter.message_id().unwrap_or_else(|| format!("body:{raw}"));
    let recorded = store
        .record_broker_dead_letter(&BrokerDeadLetter {
            message_id: &message_id,
            provider: task.as_ref().map(|t| t.provider.as_str()),
            kind: task.as_ref().map(|t| t.object.kind()),
            object_id: object_id.as_deref(),
            task: Some(raw),
            reason: &reason,
        })
        .await?;
    tracing::error!(%reason, provider = ?task.as_ref().map(|t| &t.provider), object = ?object_id, first_time = recorded, "dead letter recorded");
    if let (Some(task), Some(object_id)) = (task, object_id) {
        if recorded {
            store
                .record_outcome(&Outcome {
                    provider: &task.provider,
                    run_id: task.run_id,
                    kind: task.object.kind(),
                    object_id: &object_id,
                    action: Action::None.as_str(),
                    result: TaskResult::Dead.as_str(),
                    detail: Some(json!({ "error": reason })),
                    attempt: task.attempt,
                })
                .await?;
        }
        // Repeated after a crash between the two: counted once.
        if let Some(run) = task.run_id {
            store
                .finish_run_object(run, task.object.kind(), &object_id, true)
                .await?;
        }
    }
    Ok(reason)
}
