//! The long-running producer: its HTTP server and its leadership loop.
//!
//! - The HTTP server always runs (here): `POST /hooks/authentik` (wakes the
//!   events follower), and the telemetry routes: `GET /healthz` (200 while the
//!   process runs), `GET /readyz` (200 when PostgreSQL answers and, on the
//!   leader, RabbitMQ is connected; module `readiness`) and `GET /metrics`,
//!   whose [`StateGauges`] are read from the database before each scrape.
//! - The status page ([`crate::status::page`]) on `status_listen`, if set.
//! - Leadership (module `leadership`): every replica tries `store.try_lead`;
//!   standbys retry every `leader_retry`. The leader connects to RabbitMQ and
//!   runs the scheduler, the events follower and the watermark follower
//!   (module `following`), checking every `leader_check` that its lock's
//!   session is alive. Losing it stops those and sends the replica back to
//!   standby; runs in progress stay `running` and the next leader resumes them.
//!
//! Keeps invariant 3 of DESIGN.md (at least once) across replicas: one active
//! producer at a time, and a run outlives the leader that started it.

mod following;
mod leadership;
mod readiness;

use crate::metrics::Metrics;
use crate::scheduler::ProviderSchedule;
use crate::status::{StateGauges, Watched};
use crate::webhook::{self, WebhookSecret};
use entra_sync_authentik::AuthentikClient;
use entra_sync_core::secret::Secret;
use entra_sync_queue::Topology;
use entra_sync_store::Store;
use following::relay_wakes;
use leadership::lead_loop;
use readiness::{Health, readiness};
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

/// The leadership role name (the store's lock key also names the database and
/// schema, so installations sharing one server elect separately).
pub const LEADER_ROLE: &str = "producer";

/// How long the producer waits for its parts to stop on shutdown or on losing
/// leadership before aborting them.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Poll and retry intervals of the producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intervals {
    /// How often the events feed is read when no webhook arrives.
    pub events_poll: Duration,
    /// How often the `last_updated` watermark is read; `None` disables it
    /// (authentik before 2026.8).
    pub watermark_poll: Option<Duration>,
    /// How often a run checks whether the workers finished its phase.
    pub run_poll: Duration,
    /// How often the scheduler looks for due, requested and orphaned runs.
    pub schedule_tick: Duration,
    /// How often a standby tries to become leader.
    pub leader_retry: Duration,
    /// How often the leader checks that it still holds the lock.
    pub leader_check: Duration,
}

impl Intervals {
    /// Polls authentik's events every `events_poll` and the watermark every
    /// `watermark_poll` (both configured); checks run progress every 2 s,
    /// the schedule every 5 s and the leadership every 3 s.
    pub fn new(events_poll: Duration, watermark_poll: Option<Duration>) -> Self {
        Self {
            events_poll,
            watermark_poll,
            run_poll: Duration::from_secs(2),
            schedule_tick: Duration::from_secs(5),
            leader_retry: Duration::from_secs(3),
            leader_check: Duration::from_secs(3),
        }
    }
}

/// Everything the producer runs with; the CLI builds it from the configuration.
#[derive(Debug, Clone)]
pub struct ProducerParts {
    /// The state.
    pub store: Store,
    /// The RabbitMQ URL (it may hold a password; never logged).
    pub amqp_url: Secret,
    /// Queue names.
    pub topology: Topology,
    /// The authentik client.
    pub authentik: AuthentikClient,
    /// The webhook's bearer secret.
    pub webhook_secret: WebhookSecret,
    /// Where the HTTP server listens.
    pub listen: SocketAddr,
    /// Where the status page listens, if anywhere.
    pub status_listen: Option<SocketAddr>,
    /// Poll and retry intervals.
    pub intervals: Intervals,
    /// The configured providers.
    pub providers: Vec<ProviderSchedule>,
}

/// The producer could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("the producer's HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Binds `parts.listen` and runs the producer until `shutdown` completes.
pub async fn run(
    parts: ProducerParts,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ProducerError> {
    let listener = TcpListener::bind(parts.listen)
        .await
        .map_err(|source| ProducerError::Bind {
            addr: parts.listen,
            source,
        })?;
    run_on(listener, parts, shutdown).await
}

/// Runs the producer on a bound listener (`parts.listen` is ignored) until
/// `shutdown` completes; then stops within a few seconds.
pub async fn run_on(
    listener: TcpListener,
    parts: ProducerParts,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ProducerError> {
    let metrics = Arc::new(Metrics::default());
    let mut registry = entra_sync_telemetry::registry();
    metrics.register(&mut registry);
    let gauges = Arc::new(StateGauges::default());
    gauges.register(&mut registry);
    let watched = Watched::of(&parts.providers);
    let status_page = match parts.status_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| ProducerError::Bind { addr, source })?,
        ),
        None => None,
    };
    let health = Arc::new(Health::new(metrics));
    // The webhook wakes `hook`; the relay passes it on to the active
    // producer's events follower (`wake`), wherever that runs.
    let hook = Arc::new(Notify::new());
    let wake = Arc::new(Notify::new());
    let relay = tokio::spawn(relay_wakes(parts.store.clone(), hook.clone(), wake.clone()));
    let refresh = gauges.refresher(parts.store.clone(), watched.clone());
    let app = webhook::router(parts.webhook_secret.clone(), hook).merge(
        entra_sync_telemetry::router_refreshing(
            registry,
            readiness(&parts.store, &health),
            refresh,
        ),
    );
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving the webhook, /healthz, /readyz, /metrics");
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some(listener) = status_page {
        let stop = stopped(stop_rx.clone());
        crate::status::page::serve(listener, parts.store.clone(), watched, stop);
    }
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(stopped(stop_rx.clone()))
            .into_future(),
    );
    let leading = tokio::spawn(lead_loop(parts, health, wake, stop_rx));
    tokio::pin!(server);
    let early = tokio::select! {
        _ = shutdown => None,
        result = &mut server => Some(result),
    };
    let _ = stop_tx.send(true);
    relay.abort();
    let leading_abort = leading.abort_handle();
    if tokio::time::timeout(STOP_GRACE * 2, leading).await.is_err() {
        leading_abort.abort();
    }
    let served = match early {
        Some(result) => result,
        None => {
            let abort = server.abort_handle();
            match tokio::time::timeout(STOP_GRACE, &mut server).await {
                Ok(result) => result,
                Err(_) => {
                    abort.abort();
                    return Ok(());
                }
            }
        }
    };
    match served {
        Ok(result) => result.map_err(ProducerError::Serve),
        Err(_) => Ok(()),
    }
}

/// Completes once `stop` is true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
