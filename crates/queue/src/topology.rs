//! Names and declarations of the exchanges and queues.
//!
//! The arguments of a queue never change once declared (RabbitMQ refuses the
//! redeclare with 406): the delivery limit and the dead-letter strategy are
//! policies ([`crate::policy`]). A work queue that already exists is taken as
//! it is, so one declared by an older release, with `x-delivery-limit` among
//! its arguments, is still accepted.

use crate::{QueueError, broker_error};
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ExchangeKind, Queue};
use std::time::Duration;

/// Which work queue a task goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Direct sync: changes in authentik, served first.
    Direct,
    /// Bulk work: full syncs.
    Bulk,
}

impl Lane {
    /// Both lanes.
    pub const ALL: [Lane; 2] = [Lane::Direct, Lane::Bulk];

    /// The routing key and queue-name suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Bulk => "bulk",
        }
    }
}

/// A delay tier: a queue whose messages come back after a fixed time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RetryTier(Duration);

impl RetryTier {
    /// How long a message waits in the tier.
    pub fn delay(self) -> Duration {
        self.0
    }

    fn label(self) -> String {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        }
    }
}

/// Every exchange and queue name, derived from one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    tiers: Vec<RetryTier>,
}

impl Topology {
    /// The production tiers: 5 s, 30 s, 2 min, 10 min, 1 h.
    pub fn new(prefix: &str) -> Self {
        Self::with_tiers(prefix, &[5, 30, 120, 600, 3600].map(Duration::from_secs))
    }

    /// Custom delay tiers (tests use short ones); sorted, at least one.
    pub fn with_tiers(prefix: &str, delays: &[Duration]) -> Self {
        let mut tiers: Vec<RetryTier> = delays.iter().copied().map(RetryTier).collect();
        tiers.sort();
        tiers.dedup();
        assert!(!tiers.is_empty(), "at least one retry tier");
        Self {
            prefix: prefix.to_owned(),
            tiers,
        }
    }

    /// The prefix of every name.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The exchange tasks are published to.
    pub fn exchange(&self) -> String {
        format!("{}.tasks", self.prefix)
    }

    /// The work queue of a lane.
    pub fn queue(&self, lane: Lane) -> String {
        format!("{}.{}", self.prefix, lane.as_str())
    }

    /// The exchange retries are published to.
    pub fn retry_exchange(&self) -> String {
        format!("{}.retry", self.prefix)
    }

    /// The queue of a delay tier.
    pub fn retry_queue(&self, tier: RetryTier) -> String {
        format!("{}.retry.{}", self.prefix, tier.label())
    }

    /// The routing key of a retry: it survives dead-lettering and routes back to the lane.
    pub fn retry_key(&self, tier: RetryTier, lane: Lane) -> String {
        format!("{}.{}", tier.label(), lane.as_str())
    }

    /// The dead-letter queue: where the broker and the workers put tasks
    /// that will not be handled; the dead-letter follower records each and
    /// parks it.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dlq", self.prefix)
    }

    /// Where recorded dead letters are kept for inspection; nothing consumes it.
    pub fn parked_queue(&self) -> String {
        format!("{}.dlq.parked", self.prefix)
    }

    /// The delay tiers, shortest first.
    pub fn tiers(&self) -> &[RetryTier] {
        &self.tiers
    }

    /// The shortest tier that waits at least `delay`, or the longest tier.
    pub fn tier_for(&self, delay: Duration) -> RetryTier {
        self.tiers
            .iter()
            .copied()
            .find(|t| t.delay() >= delay)
            .unwrap_or(self.tiers[self.tiers.len() - 1])
    }

    /// Opens a channel on `connection` and declares everything on it.
    pub async fn open_channel(&self, connection: &Connection) -> Result<Channel, QueueError> {
        let channel = new_channel(connection).await?;
        self.declare(connection, &channel).await?;
        Ok(channel)
    }

    /// Declares everything on `channel` (`connection` is its connection);
    /// idempotent, and work queues that exist are left as they are.
    pub async fn declare(
        &self,
        connection: &Connection,
        channel: &Channel,
    ) -> Result<(), QueueError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for exchange in [self.exchange(), self.retry_exchange()] {
            channel
                .exchange_declare(
                    exchange.as_str().into(),
                    ExchangeKind::Direct,
                    durable,
                    FieldTable::default(),
                )
                .await
                .map_err(broker_error("declaring an exchange"))?;
        }
        let dlq = self.dead_letter_queue();
        declare_queue(channel, &dlq, quorum()).await?;
        declare_queue(channel, &self.parked_queue(), quorum()).await?;
        for lane in Lane::ALL {
            let queue = self.queue(lane);
            if !exists(connection, &queue).await? {
                // The dead-letter target is an argument so that a broker
                // without our policies never drops a message (RabbitMQ 4
                // limits deliveries to 20 by default).
                let mut args = quorum();
                args.insert("x-dead-letter-exchange".into(), string(""));
                args.insert("x-dead-letter-routing-key".into(), string(&dlq));
                declare_queue(channel, &queue, args).await?;
            }
            bind(channel, &queue, &self.exchange(), lane.as_str()).await?;
            for &tier in &self.tiers {
                bind(
                    channel,
                    &queue,
                    &self.exchange(),
                    &self.retry_key(tier, lane),
                )
                .await?;
            }
        }
        for &tier in &self.tiers {
            let queue = self.retry_queue(tier);
            let mut args = quorum();
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(tier.delay().as_millis() as i64),
            );
            args.insert("x-dead-letter-exchange".into(), string(&self.exchange()));
            declare_queue(channel, &queue, args).await?;
            for lane in Lane::ALL {
                bind(
                    channel,
                    &queue,
                    &self.retry_exchange(),
                    &self.retry_key(tier, lane),
                )
                .await?;
            }
        }
        Ok(())
    }
}

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), string("quorum"));
    args
}

fn string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

async fn declare_queue(channel: &Channel, name: &str, args: FieldTable) -> Result<(), QueueError> {
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(ShortString::from(name), options, args)
        .await
        .map_err(broker_error("declaring a queue"))?;
    Ok(())
}

/// Whether queue `name` exists, asked with a passive declare on a channel of
/// its own (the broker closes it when the queue does not exist).
async fn exists(connection: &Connection, name: &str) -> Result<bool, QueueError> {
    let channel = new_channel(connection).await?;
    match inspect(&channel, name).await {
        Ok(_) => {
            let _ = channel.close(200, "done".into()).await;
            Ok(true)
        }
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(broker_error("looking for a queue")(e)),
    }
}

/// A channel of its own on `connection`.
pub(crate) async fn new_channel(connection: &Connection) -> Result<Channel, QueueError> {
    connection
        .create_channel()
        .await
        .map_err(broker_error("opening a channel"))
}

/// Queue `name` as the broker holds it, asked with a passive declare, which
/// creates and changes nothing (the broker closes the channel when the queue
/// does not exist).
pub(crate) async fn inspect(channel: &Channel, name: &str) -> Result<Queue, lapin::Error> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    channel
        .queue_declare(ShortString::from(name), passive, FieldTable::default())
        .await
}

/// Whether the broker answered 404 NOT_FOUND.
fn is_not_found(e: &lapin::Error) -> bool {
    matches!(e.kind(), lapin::ErrorKind::ProtocolError(error) if error.get_id() == 404)
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), QueueError> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(broker_error("binding a queue"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_for_picks_the_shortest_that_waits_long_enough() {
        let t = Topology::new("p");
        assert_eq!(t.tier_for(Duration::ZERO).delay(), Duration::from_secs(5));
        assert_eq!(
            t.tier_for(Duration::from_secs(5)).delay(),
            Duration::from_secs(5)
        );
        assert_eq!(
            t.tier_for(Duration::from_millis(5001)).delay(),
            Duration::from_secs(30)
        );
        assert_eq!(
            t.tier_for(Duration::from_secs(150)).delay(),
            Duration::from_secs(600)
        );
        assert_eq!(
            t.tier_for(Duration::from_secs(86400)).delay(),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn names_derive_from_the_prefix() {
        let t = Topology::with_tiers("x", &[Duration::from_millis(250), Duration::from_secs(2)]);
        assert_eq!(t.queue(Lane::Direct), "x.direct");
        assert_eq!(t.retry_queue(t.tiers()[0]), "x.retry.250ms");
        assert_eq!(t.retry_key(t.tiers()[1], Lane::Bulk), "2s.bulk");
        assert_eq!(t.dead_letter_queue(), "x.dlq");
    }
}
