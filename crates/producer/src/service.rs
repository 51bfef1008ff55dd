//! The long-running producer: its HTTP server and its leadership loop.
//!
//! - The HTTP server always runs: `POST /hooks/authentik` (wakes the events
//!   follower), and the telemetry routes: `GET /healthz` (200 while the
//!   process runs), `GET /readyz` (200 when PostgreSQL answers and, on the
//!   leader, RabbitMQ is connected) and `GET /metrics`.
//! - Leadership: every replica tries `store.try_lead`; standbys retry every
//!   `leader_retry`. The leader connects to RabbitMQ and runs the scheduler,
//!   the events follower and the watermark follower, checking every
//!   `leader_check` that its lock's session is alive. Losing it stops those
//!   and sends the replica back to standby; runs in progress stay `running`
//!   and the next leader resumes them.

use crate::events::{
    self, EVENTS_CURSOR, EventFollower, FollowError, Follower, FollowerConfig, WATERMARK_CURSOR,
    WatermarkFollower,
};
use crate::full_sync::SyncContext;
use crate::metrics::Metrics;
use crate::scheduler::{ProviderSchedule, Scheduler};
use crate::sink::TaskSink;
use crate::webhook::{self, WebhookSecret};
use entra_sync_authentik::AuthentikClient;
use entra_sync_core::secret::Secret;
use entra_sync_provider::Provider;
use entra_sync_queue::{Publisher, Topology};
use entra_sync_store::Store;
use entra_sync_store::leader::Leadership;
use entra_sync_telemetry::Readiness;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

/// The leadership role name (the store's lock key also names the database and
/// schema, so installations sharing one server elect separately).
pub const LEADER_ROLE: &str = "producer";

/// How long the producer waits for its parts to stop on shutdown or on losing
/// leadership before aborting them.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// How long a follower that hit a configuration error waits before trying again.
const FOLLOWER_RESTART: Duration = Duration::from_secs(60);

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
    let health = Arc::new(Health {
        metrics,
        amqp: Mutex::new(None),
    });
    // The webhook wakes `hook`; the relay passes it on to the active
    // producer's events follower (`wake`), wherever that runs.
    let hook = Arc::new(Notify::new());
    let wake = Arc::new(Notify::new());
    let relay = tokio::spawn(relay_wakes(parts.store.clone(), hook.clone(), wake.clone()));
    let app = webhook::router(parts.webhook_secret.clone(), hook).merge(
        entra_sync_telemetry::router(registry, readiness(&parts.store, &health)),
    );
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving the webhook, /healthz, /readyz, /metrics");
    }
    let (stop_tx, stop_rx) = watch::channel(false);
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

/// What the active producer's readiness depends on.
struct Health {
    metrics: Arc<Metrics>,
    amqp: Mutex<Option<Arc<lapin::Connection>>>,
}

impl Health {
    fn set_amqp(&self, connection: Option<Arc<lapin::Connection>>) {
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
fn readiness(store: &Store, health: &Arc<Health>) -> Readiness {
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

/// Tries to lead until stopped; leads while it can.
async fn lead_loop(
    parts: ProducerParts,
    health: Arc<Health>,
    wake: Arc<Notify>,
    stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        match parts.store.try_lead(LEADER_ROLE).await {
            Ok(Some(leadership)) => {
                lead(&parts, &health, &wake, leadership, stop.clone()).await;
                continue;
            }
            Ok(None) => tracing::debug!("another producer is active; standing by"),
            Err(e) => tracing::warn!(error = %e, "cannot try to become the active producer"),
        }
        tokio::select! {
            _ = stopped(stop.clone()) => return,
            _ = tokio::time::sleep(parts.intervals.leader_retry) => {}
        }
    }
}

/// Why leading ended.
enum LeadEnd {
    /// Shutdown: give the lock back.
    Shutdown,
    /// The lock's session failed: leadership is gone.
    Lost,
}

/// Connects to RabbitMQ, retrying until connected, stopped or no longer leading.
async fn connect_amqp(
    parts: &ProducerParts,
    leadership: &Leadership,
    stop: &watch::Receiver<bool>,
) -> Result<(lapin::Connection, Publisher), LeadEnd> {
    loop {
        let attempt = async {
            let connection = entra_sync_queue::connect(parts.amqp_url.expose()).await?;
            let publisher = Publisher::open(&connection, parts.topology.clone()).await?;
            Ok::<_, entra_sync_queue::QueueError>((connection, publisher))
        };
        match attempt.await {
            Ok(pair) => return Ok(pair),
            Err(e) => {
                tracing::warn!(error = %e, "the active producer cannot reach RabbitMQ; retrying")
            }
        }
        tokio::select! {
            _ = stopped(stop.clone()) => return Err(LeadEnd::Shutdown),
            _ = tokio::time::sleep(parts.intervals.leader_retry) => {}
        }
        if leadership.still_leading().await.is_err() {
            return Err(LeadEnd::Lost);
        }
    }
}

/// Runs the scheduler and the followers while this replica leads.
async fn lead(
    parts: &ProducerParts,
    health: &Health,
    wake: &Arc<Notify>,
    leadership: Leadership,
    stop: watch::Receiver<bool>,
) {
    health.metrics.set_leader(true);
    tracing::info!("this producer is now the active one");
    let end = match connect_amqp(parts, &leadership, &stop).await {
        Err(end) => end,
        Ok((connection, publisher)) => {
            let connection = Arc::new(connection);
            health.set_amqp(Some(connection.clone()));
            let end = lead_connected(parts, wake, publisher, &leadership, &stop, health).await;
            health.set_amqp(None);
            let _ = connection.close(200, "producer stepping down".into()).await;
            end
        }
    };
    health.metrics.set_leader(false);
    match end {
        LeadEnd::Shutdown => {
            if let Err(e) = leadership.resign().await {
                tracing::warn!(error = %e, "resigning leadership failed; it ends with the session");
            }
            tracing::info!("the active producer stopped");
        }
        LeadEnd::Lost => {
            drop(leadership);
            tracing::warn!("leadership lost; standing by");
        }
    }
}

async fn lead_connected(
    parts: &ProducerParts,
    wake: &Arc<Notify>,
    publisher: Publisher,
    leadership: &Leadership,
    stop: &watch::Receiver<bool>,
    health: &Health,
) -> LeadEnd {
    let ctx = SyncContext {
        authentik: parts.authentik.clone(),
        store: parts.store.clone(),
        publisher,
        poll_interval: parts.intervals.run_poll,
        metrics: health.metrics.clone(),
    };
    let providers: Vec<Arc<Provider>> = parts
        .providers
        .iter()
        .map(|p| Arc::new(p.provider.clone()))
        .collect();
    let names: Vec<String> = providers.iter().map(|p| p.name.clone()).collect();
    let kick = Arc::new(Notify::new());
    let sink = TaskSink::new(ctx.clone(), providers, kick.clone());
    let (children_tx, children_rx) = watch::channel(false);
    let mut children = tokio::task::JoinSet::new();
    let mut scheduler = Scheduler::new(ctx.clone(), parts.providers.clone());
    // Register before following authentik, so the first runs say why they
    // started (a new provider, changed settings) rather than "events_gap".
    if let Err(e) = scheduler.register().await {
        tracing::warn!(error = %e, "registering providers failed; the scheduler retries");
    }
    children.spawn(scheduler.run(
        parts.intervals.schedule_tick,
        kick,
        stopped(children_rx.clone()),
    ));
    children.spawn(listen_for_wakes(
        parts.store.clone(),
        wake.clone(),
        stopped(children_rx.clone()),
    ));
    let events = EventFollower::new(
        parts.authentik.clone(),
        parts.store.clone(),
        FollowerConfig::new(EVENTS_CURSOR),
    );
    children.spawn(follow(
        "events",
        events,
        sink.clone(),
        wake.clone(),
        parts.intervals.events_poll,
        children_rx.clone(),
        parts.store.clone(),
        names.clone(),
    ));
    if let Some(every) = parts.intervals.watermark_poll {
        let watermark = WatermarkFollower::new(
            parts.authentik.clone(),
            parts.store.clone(),
            FollowerConfig::new(WATERMARK_CURSOR),
        );
        children.spawn(follow(
            "watermark",
            watermark,
            sink,
            Arc::new(Notify::new()),
            every,
            children_rx,
            parts.store.clone(),
            names,
        ));
    }
    let end = loop {
        tokio::select! {
            _ = stopped(stop.clone()) => break LeadEnd::Shutdown,
            _ = tokio::time::sleep(parts.intervals.leader_check) => {
                if let Err(e) = leadership.still_leading().await {
                    tracing::warn!(error = %e, "the leadership lock's session failed");
                    break LeadEnd::Lost;
                }
            }
        }
    };
    let _ = children_tx.send(true);
    if tokio::time::timeout(STOP_GRACE, async {
        while children.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        children.abort_all();
    }
    end
}

/// Drives a follower until stopped. A configuration error of authentik halts
/// every provider (none can sync without authentik) and the follower tries
/// again later; an unsupported feature stops the follower for good.
#[allow(clippy::too_many_arguments)]
async fn follow<F: Follower + 'static>(
    name: &'static str,
    follower: F,
    mut sink: TaskSink,
    wake: Arc<Notify>,
    every: Duration,
    stop: watch::Receiver<bool>,
    store: Store,
    providers: Vec<String>,
) {
    loop {
        let result = events::run(
            &follower,
            &mut sink,
            wake.clone(),
            every,
            stopped(stop.clone()),
        )
        .await;
        match result {
            Ok(()) => return,
            Err(FollowError::Unsupported(message)) => {
                tracing::error!(follower = name, %message, "follower stopped");
                return;
            }
            Err(e) => {
                let reason = format!("authentik ({name} follower): {e}");
                for provider in &providers {
                    match store.halt(provider, &reason).await {
                        Ok(true) => tracing::error!(%provider, %reason, "provider halted"),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(%provider, error = %e, "cannot halt provider"),
                    }
                }
            }
        }
        tokio::select! {
            _ = stopped(stop.clone()) => return,
            _ = tokio::time::sleep(FOLLOWER_RESTART) => {}
        }
    }
}

/// Passes every webhook on to the active producer, which may be another
/// replica, through PostgreSQL; wakes this process's follower too, in case
/// it leads and its listener is reconnecting.
async fn relay_wakes(store: Store, hook: Arc<Notify>, wake: Arc<Notify>) {
    loop {
        hook.notified().await;
        wake.notify_one();
        if let Err(e) = store.send_wake().await {
            tracing::warn!(error = %e, "cannot relay a webhook to the active producer; it sees the change at its next poll");
        }
    }
}

/// The active producer's side of [`relay_wakes`]: wakes the events follower
/// on every relayed webhook until `stop`.
async fn listen_for_wakes(store: Store, wake: Arc<Notify>, stop: impl Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        match store.listen_wakes().await {
            Ok(mut listener) => loop {
                tokio::select! {
                    _ = &mut stop => return,
                    next = listener.next() => match next {
                        Some(()) => wake.notify_one(),
                        None => break,
                    },
                }
            },
            Err(e) => tracing::warn!(error = %e, "cannot listen for relayed webhooks; retrying"),
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}
