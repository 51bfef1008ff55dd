//! `/readyz` of the producer: what the active producer's readiness depends on.

use crate::metrics::Metrics;
use entra_sync_store::Store;
use entra_sync_telemetry::Readiness;
use std::sync::{Arc, Mutex};

/// What the active producer's readiness depends on.
pub(super) struct Health {
    /// The producer's metrics; they also say whether this replica leads.
    pub(super) metrics: Arc<Metrics>,
    amqp: Mutex<Option<Arc<lapin::Connection>>>,
}

impl Health {
    /// Not connected to RabbitMQ yet.
    pub(super) fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            amqp: Mutex::new(None),
        }
    }

    /// Records the active producer's RabbitMQ connection (`None` when it stops).
    pub(super) fn set_amqp(&self, connection: Option<Arc<lapin::Connection>>) {
        *self.amqp.lock().unwrap_or_else(|e| e.into_inner()) = connection;
    }

    fn amqp_connected(&self) -> bool {
        self.amqp
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|c| c.status().connected())
    }
}

/// `/readyz`: PostgreSQL answers and, on the active producer, RabbitMQ is
/// connected (a standby needs no broker).
pub(super) fn readiness(store: &Store, health: &Arc<Health>) -> Readiness {
    let store = store.clone();
    let health = health.clone();
    Readiness::new()
        .check("PostgreSQL", move || {
            let store = store.clone();
            async move { store.ping().await.map_err(|e| e.to_string()) }
        })
        .check("RabbitMQ", move || {
            let usable = !health.metrics.is_leader() || health.amqp_connected();
            async move {
                usable
                    .then_some(())
                    .ok_or_else(|| "the active producer has no connection".to_owned())
            }
        })
}
