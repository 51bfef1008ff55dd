//! Consuming the dead-letter queue: every message there is either a task a
//! worker gave up on (it carries [`REASON_HEADER`] and is already recorded)
//! or one the broker dead-lettered by itself (its delivery limit), which
//! nobody has recorded yet. Each is recorded by the worker's dead-letter
//! follower, then parked in `<prefix>.dlq.parked`, so no dead letter is silent.

use crate::publisher::{Publisher, REASON_HEADER};
use crate::topology::Topology;
use crate::{QueueError, broker_error};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection};

/// The deliveries of the dead-letter queue, on a channel of its own.
pub struct DeadLetterConsumer {
    channel: Channel,
    inner: lapin::Consumer,
}

impl std::fmt::Debug for DeadLetterConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterConsumer")
            .field("tag", &self.inner.tag())
            .finish_non_exhaustive()
    }
}

impl DeadLetterConsumer {
    /// Starts consuming `<prefix>.dlq`, one message at a time.
    pub async fn open(connection: &Connection, topology: &Topology) -> Result<Self, QueueError> {
        let channel = topology.open_channel(connection).await?;
        channel
            .basic_qos(1, BasicQosOptions { global: false })
            .await
            .map_err(broker_error("setting the prefetch"))?;
        let inner = channel
            .basic_consume(
                topology.dead_letter_queue().as_str().into(),
                format!("entra-sync-dlq-{}", uuid::Uuid::now_v7())
                    .as_str()
                    .into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker_error("starting the dead-letter consumer"))?;
        Ok(Self { channel, inner })
    }

    /// The next dead letter; an error while the connection recovers; `None`
    /// once the consumer is cancelled or its channel is gone.
    pub async fn next(&mut self) -> Option<Result<DeadLetter, QueueError>> {
        let next = self.inner.next().await?;
        Some(
            next.map(|inner| DeadLetter { inner })
                .map_err(broker_error("receiving a dead letter")),
        )
    }

    /// Stops new deliveries.
    pub async fn cancel(&self) -> Result<(), QueueError> {
        self.channel
            .basic_cancel(
                self.inner.tag(),
                lapin::options::BasicCancelOptions::default(),
            )
            .await
            .map_err(broker_error("cancelling the dead-letter consumer"))
    }
}

/// One message of the dead-letter queue.
#[derive(Debug)]
pub struct DeadLetter {
    inner: lapin::message::Delivery,
}

impl DeadLetter {
    /// The message body (a task, unless it was unreadable).
    pub fn body(&self) -> &[u8] {
        &self.inner.data
    }

    /// The id the publisher gave the message; the broker keeps it.
    pub fn message_id(&self) -> Option<String> {
        self.inner
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string())
    }

    /// The reason a worker recorded, if a worker dead-lettered it (then it
    /// is already in `dead_letters`).
    pub fn worker_reason(&self) -> Option<String> {
        self.header(REASON_HEADER).and_then(text)
    }

    /// Why the broker dead-lettered it, from `x-death`, e.g.
    /// `delivery_limit in e2e.bulk`; `None` if the broker did not.
    pub fn broker_reason(&self) -> Option<String> {
        let first = |name| self.header(name).and_then(text);
        if let Some(reason) = first("x-first-death-reason") {
            return Some(match first("x-first-death-queue") {
                Some(queue) => format!("{reason} in {queue}"),
                None => reason,
            });
        }
        let Some(AMQPValue::FieldArray(deaths)) = self.header("x-death") else {
            return None;
        };
        let AMQPValue::FieldTable(death) = deaths.as_slice().first()? else {
            return None;
        };
        let field = |name: &str| {
            death
                .inner()
                .iter()
                .find(|(k, _)| k.as_str() == name)
                .and_then(|(_, v)| text(v))
        };
        let reason = field("reason")?;
        Some(match field("queue") {
            Some(queue) => format!("{reason} in {queue}"),
            None => reason,
        })
    }

    fn header(&self, name: &str) -> Option<&AMQPValue> {
        self.inner
            .properties
            .headers()
            .as_ref()?
            .inner()
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, v)| v)
    }

    /// Moves it to `<prefix>.dlq.parked` with `reason` (confirmed), then
    /// acks it here.
    pub async fn park(self, publisher: &Publisher, reason: &str) -> Result<(), QueueError> {
        publisher.publish_parked(self.body(), reason).await?;
        self.inner
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map(drop)
            .map_err(broker_error("acking a dead letter"))
    }
}

fn text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}
