//! The worker's `/healthz`, `/readyz` (PostgreSQL and RabbitMQ usable) and
//! `/metrics`, served with the shared telemetry router; each scrape first
//! reads the queues' depths.

use crate::metrics::WorkerMetrics;
use entra_sync_queue::Topology;
use entra_sync_store::Store;
use entra_sync_telemetry::Readiness;
use std::net::SocketAddr;
use std::sync::Arc;

/// Binds `addr` and serves the routes in the background. Logs the bound
/// address, which tells the port the system chose for a port 0.
pub async fn serve(
    addr: SocketAddr,
    store: Store,
    broker: Arc<entra_sync_queue::Connection>,
    topology: Topology,
    metrics: Arc<WorkerMetrics>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let mut registry = entra_sync_telemetry::registry();
    metrics.register(&mut registry);
    let depths = {
        let broker = broker.clone();
        move || {
            let (broker, topology, metrics) = (broker.clone(), topology.clone(), metrics.clone());
            async move {
                match topology.depths(&broker).await {
                    Ok(depths) => {
                        for (queue, messages) in depths {
                            metrics.queue_depth(&queue, messages);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "cannot read the queues' depths"),
                }
            }
        }
    };
    let readiness = Readiness::new()
        .check("RabbitMQ", move || {
            let connected = broker.status().connected();
            async move {
                connected
                    .then_some(())
                    .ok_or_else(|| "not connected".to_owned())
            }
        })
        .check("PostgreSQL", move || {
            let store = store.clone();
            async move { store.ping().await.map_err(|e| e.to_string()) }
        });
    let app = entra_sync_telemetry::router_refreshing(registry, readiness, depths);
    tracing::info!(addr = %bound, "serving /healthz, /readyz, /metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health server stopped");
        }
    });
    Ok(())
}
