//! Publishing with publisher confirms: a publish succeeds only once the broker
//! has the message in a durable queue.

use crate::topology::{Lane, RetryTier, Topology, inspect};
use crate::{QueueError, broker_error};
use entra_sync_core::task::Task;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection};
use std::time::Duration;

/// How long a publish waits for the broker's confirm (lapin can hang on a
/// broker restart without one).
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(15);

/// Most publishes of [`Publisher::publish_all`] awaiting their confirm at once.
const IN_FLIGHT: usize = 256;

/// Header naming why a message went to the dead-letter queue.
pub const REASON_HEADER: &str = "x-entra-sync-reason";

/// A confirm-mode channel that publishes tasks.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    topology: Topology,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topology", &self.topology)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Opens a channel, declares the topology and turns on confirms.
    pub async fn open(connection: &Connection, topology: Topology) -> Result<Self, QueueError> {
        let channel = topology.open_channel(connection).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(broker_error("enabling publisher confirms"))?;
        Ok(Self { channel, topology })
    }

    /// The topology this publisher declared.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Publishes a task to a lane's work queue.
    pub async fn publish(&self, lane: Lane, task: &Task) -> Result<(), QueueError> {
        self.send(
            &self.topology.exchange(),
            lane.as_str(),
            &task.encode(),
            FieldTable::default(),
        )
        .await
    }

    /// Publishes tasks to a lane's work queue with up to [`IN_FLIGHT`] of them
    /// awaiting their confirm at once, so the broker confirms them together
    /// rather than one disk write each. Returns once every one is confirmed,
    /// or at the first failure (others may have been queued by then).
    pub async fn publish_all(&self, lane: Lane, tasks: &[Task]) -> Result<(), QueueError> {
        let mut waiting = tasks.iter();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < IN_FLIGHT {
                let Some(task) = waiting.next() else { break };
                in_flight.push(self.publish(lane, task));
            }
            match in_flight.next().await {
                Some(confirmed) => confirmed?,
                None => return Ok(()),
            }
        }
    }

    /// Publishes a task to come back to `lane` after the tier's delay.
    pub async fn publish_retry(
        &self,
        lane: Lane,
        tier: RetryTier,
        task: &Task,
    ) -> Result<(), QueueError> {
        let key = self.topology.retry_key(tier, lane);
        self.send(
            &self.topology.retry_exchange(),
            &key,
            &task.encode(),
            FieldTable::default(),
        )
        .await
    }

    /// Puts a message body in the dead-letter queue with the reason.
    pub async fn publish_dead(&self, body: &[u8], reason: &str) -> Result<(), QueueError> {
        let mut headers = FieldTable::default();
        headers.insert(
            REASON_HEADER.into(),
            AMQPValue::LongString(LongString::from(reason)),
        );
        self.send("", &self.topology.dead_letter_queue(), body, headers)
            .await
    }

    /// How many tasks wait in the work queues and the delay tiers, counted with
    /// passive declares (tasks handed out and not yet acked are not counted).
    pub async fn queued(&self) -> Result<u64, QueueError> {
        let queues = Lane::ALL
            .iter()
            .map(|&lane| self.topology.queue(lane))
            .chain(
                self.topology
                    .tiers()
                    .iter()
                    .map(|&tier| self.topology.retry_queue(tier)),
            );
        let mut total = 0;
        for queue in queues {
            let declared = inspect(&self.channel, &queue)
                .await
                .map_err(broker_error("counting a queue's messages"))?;
            total += u64::from(declared.message_count());
        }
        Ok(total)
    }

    /// Keeps a recorded dead letter in `<prefix>.dlq.parked`, with its reason.
    pub async fn publish_parked(&self, body: &[u8], reason: &str) -> Result<(), QueueError> {
        let mut headers = FieldTable::default();
        headers.insert(
            REASON_HEADER.into(),
            AMQPValue::LongString(LongString::from(reason)),
        );
        self.send("", &self.topology.parked_queue(), body, headers)
            .await
    }

    /// Publishes and waits for the confirm, in a span whose trace context the
    /// message carries in its headers.
    #[tracing::instrument(name = "queue.publish", level = "info", skip_all, fields(otel.kind = "producer", messaging.destination.name = %exchange, messaging.rabbitmq.destination.routing_key = %key))]
    async fn send(
        &self,
        exchange: &str,
        key: &str,
        body: &[u8],
        mut headers: FieldTable,
    ) -> Result<(), QueueError> {
        crate::trace::inject(&mut headers);
        let target = format!("{exchange}/{key}");
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(uuid::Uuid::now_v7().to_string().into())
            .with_headers(headers);
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let confirm = async {
            self.channel
                .basic_publish(exchange.into(), key.into(), options, body, properties)
                .await
                .map_err(broker_error("publishing"))?
                .await
                .map_err(broker_error("waiting for a publish confirm"))
        };
        let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
            .await
            .map_err(|_| QueueError::ConfirmTimeout {
                target: target.clone(),
                timeout: CONFIRM_TIMEOUT,
            })??;
        if !confirmation.is_ack() {
            return Err(QueueError::Refused {
                target,
                reason: "the broker nacked it".into(),
            });
        }
        if let Some(returned) = confirmation.take_message() {
            return Err(QueueError::Refused {
                target,
                reason: returned.reply_text.to_string(),
            });
        }
        Ok(())
    }
}
