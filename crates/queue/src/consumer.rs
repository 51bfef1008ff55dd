//! Consuming a lane with manual acks and a bounded prefetch.

use crate::topology::{Lane, Topology};
use crate::{QueueError, broker_error};
use futures_util::StreamExt;
use lapin::options::BasicQosOptions;
use lapin::options::{BasicAckOptions, BasicCancelOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};

/// The deliveries of one lane's queue, on a channel of its own.
pub struct Consumer {
    lane: Lane,
    channel: Channel,
    inner: lapin::Consumer,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("lane", &self.lane)
            .field("tag", &self.inner.tag())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// Opens a channel that consumes `lane`'s queue: manual acks, at most
    /// `prefetch` unsettled deliveries (per consumer; quorum queues have no
    /// global QoS). Declares the topology first, so a worker may start before
    /// any producer.
    pub async fn open(
        connection: &Connection,
        topology: &Topology,
        lane: Lane,
        prefetch: u16,
    ) -> Result<Self, QueueError> {
        let channel = topology.open_channel(connection).await?;
        channel
            .basic_qos(prefetch, BasicQosOptions { global: false })
            .await
            .map_err(broker_error("setting the prefetch"))?;
        let inner = channel
            .basic_consume(
                topology.queue(lane).as_str().into(),
                format!("entra-sync-{}-{}", lane.as_str(), uuid::Uuid::now_v7())
                    .as_str()
                    .into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker_error("starting a consumer"))?;
        Ok(Self {
            lane,
            channel,
            inner,
        })
    }

    /// The lane consumed.
    pub fn lane(&self) -> Lane {
        self.lane
    }

    /// The next delivery; an error while the connection recovers; `None` once
    /// the consumer is cancelled or its channel is gone.
    pub async fn next(&mut self) -> Option<Result<Delivery, QueueError>> {
        let lane = self.lane;
        let next = self.inner.next().await?;
        Some(
            next.map(|inner| Delivery { lane, inner })
                .map_err(broker_error("receiving a delivery")),
        )
    }

    /// Stops new deliveries. Those not settled yet stay with this consumer;
    /// the broker hands them out again once its channel closes.
    pub async fn cancel(&self) -> Result<(), QueueError> {
        self.channel
            .basic_cancel(self.inner.tag(), BasicCancelOptions::default())
            .await
            .map_err(broker_error("cancelling a consumer"))
    }
}

/// One message taken from a lane, acked once it is done with. There is no
/// nack-requeue: every requeue counts towards the queue's delivery limit, so
/// an unfinished task is republished to a delay tier instead, and one never
/// settled goes back to the queue when its channel closes.
#[derive(Debug)]
pub struct Delivery {
    lane: Lane,
    inner: lapin::message::Delivery,
}

impl Delivery {
    /// The lane it came from.
    pub fn lane(&self) -> Lane {
        self.lane
    }

    /// The message body.
    pub fn body(&self) -> &[u8] {
        &self.inner.data
    }

    /// A span for handling it that continues the trace its publisher's
    /// headers carry (W3C trace context); instrument the handling with it.
    pub fn span(&self) -> tracing::Span {
        let span = tracing::info_span!(
            "queue.receive",
            otel.kind = "consumer",
            lane = self.lane.as_str()
        );
        crate::trace::continue_trace(&span, self.inner.properties.headers().as_ref());
        span
    }

    /// Done with it: the broker forgets it.
    pub async fn ack(self) -> Result<(), QueueError> {
        self.inner
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map(drop)
            .map_err(broker_error("acking a delivery"))
    }
}
