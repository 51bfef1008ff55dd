//! Consuming a lane with manual acks and a bounded prefetch.

use crate::topology::{Lane, Topology};
use crate::{QueueError, broker_error};
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};

/// Opens a channel that consumes `lane`'s queue: manual acks, at most
/// `prefetch` unacked deliveries (per consumer; quorum queues have no global QoS).
/// Declares the topology first, so a worker may start before any producer.
pub async fn consume(
    connection: &Connection,
    topology: &Topology,
    lane: Lane,
    prefetch: u16,
) -> Result<(Channel, Consumer), QueueError> {
    let channel = topology.open_channel(connection).await?;
    channel
        .basic_qos(prefetch, BasicQosOptions { global: false })
        .await
        .map_err(broker_error("setting the prefetch"))?;
    let consumer = channel
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
    Ok((channel, consumer))
}
