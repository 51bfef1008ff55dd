//! RabbitMQ for entra-sync: the topology, publishing tasks with confirms, and
//! consuming them with manual acks. The services see no AMQP client types but
//! the [`Connection`] they open channels on: a [`Consumer`] yields
//! [`Delivery`]s, settled by `ack` (never by a nack-requeue).
//!
//! Topology (all queues durable quorum queues):
//! - exchange `<prefix>.tasks` (direct) routes `direct` and `bulk` to the
//!   two work queues; direct-sync tasks never wait behind bulk work;
//! - delayed retries go through the exchange `<prefix>.retry` to fixed-TTL
//!   tier queues (`<prefix>.retry.5s` …) that dead-letter back to
//!   `<prefix>.tasks` with the routing key `<tier>.<lane>`, bound to the lane's
//!   queue: never per-message TTL, which blocks behind the head of the queue;
//! - `<prefix>.dlq` receives tasks that exhausted their retries or could not
//!   be read, and work-queue messages the broker handed out as often as the
//!   delivery limit allows; the worker's [`DeadLetterConsumer`] records each
//!   and moves it to `<prefix>.dlq.parked`;
//! - the delivery limit and the dead-letter strategy are [`policy`]s, not
//!   queue arguments.
//!
//! Every message carries the publisher's W3C trace context in its headers;
//! [`Delivery::span`] continues it.

mod consumer;
mod dead_letters;
mod depth;
pub mod policy;
mod publisher;
#[cfg(feature = "test-support")]
pub mod testing;
mod topology;
mod trace;

pub use consumer::{Consumer, Delivery};
pub use dead_letters::{DeadLetter, DeadLetterConsumer};
/// A connection to the broker, on which publishers and consumers open their channels.
pub use lapin::Connection;
pub use publisher::{Publisher, REASON_HEADER};
pub use topology::{Lane, RetryTier, Topology};

use lapin::ConnectionProperties;
use std::time::Duration;

/// A broker failure, with what was being done.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The broker refused or failed an operation.
    #[error("RabbitMQ error while {doing}: {source}")]
    Broker {
        /// What was being done.
        doing: &'static str,
        /// lapin's error.
        #[source]
        source: lapin::Error,
    },
    /// The broker did not confirm a publish in time.
    #[error("RabbitMQ did not confirm the publish to {target} within {timeout:?}")]
    ConfirmTimeout {
        /// Exchange and routing key.
        target: String,
        /// How long we waited.
        timeout: Duration,
    },
    /// The broker nacked or returned a publish.
    #[error("RabbitMQ refused the publish to {target}: {reason}")]
    Refused {
        /// Exchange and routing key.
        target: String,
        /// Nack, or the return's reply text.
        reason: String,
    },
}

pub(crate) fn broker_error(doing: &'static str) -> impl FnOnce(lapin::Error) -> QueueError {
    move |source| QueueError::Broker { doing, source }
}

/// Opens one long-lived connection with automatic recovery; open channels on it.
pub async fn connect(url: &str) -> Result<Connection, QueueError> {
    Connection::connect(url, ConnectionProperties::default().enable_auto_recover())
        .await
        .map_err(broker_error("connecting"))
}
