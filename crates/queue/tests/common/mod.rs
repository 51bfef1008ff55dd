//! What the queue's tests share: a fresh vhost with the topology declared.

#![allow(dead_code, reason = "each test binary uses a different part of it")]

use entra_sync_queue::testing::TestVhost;
use entra_sync_queue::{Connection, Publisher, Topology, connect};

/// A fresh vhost on the real RabbitMQ, a connection to it, and a publisher
/// that has declared topology `es` there.
pub struct Broker {
    /// Held so that the vhost lives as long as the broker.
    _vhost: TestVhost,
    pub connection: Connection,
    pub topology: Topology,
    pub publisher: Publisher,
}

impl Broker {
    pub async fn new() -> Self {
        let vhost = TestVhost::new().await;
        let connection = connect(&vhost.url()).await.unwrap();
        let topology = Topology::new("es");
        let publisher = Publisher::open(&connection, topology.clone())
            .await
            .unwrap();
        Self {
            _vhost: vhost,
            connection,
            topology,
            publisher,
        }
    }
}
