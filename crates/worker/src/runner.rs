//! The worker loop: takes deliveries from RabbitMQ, the direct lane first,
//! and hands each to the handler (`handler.rs`) while a permit is free;
//! on shutdown it stops taking, lets in-flight tasks finish within the grace
//! period and leaves the rest to the broker.
//!
//! - Direct tasks never wait behind bulk work: a bulk delivery is taken only
//!   when no direct one waits (DESIGN invariant 8).
//! - A task not acked when the worker stops goes back to its queue, so
//!   nothing is lost (invariant 3).

use crate::dead_letters;
use crate::handler::Handler;
use crate::health;
use crate::metrics::WorkerMetrics;
use crate::recorder::Recorder;
use crate::waiting::WaitingRule;
use entra_sync_authentik::AuthentikClient;
use entra_sync_config::ProviderConfig;
use entra_sync_core::backoff::Backoff;
use entra_sync_queue::{
    Consumer, DeadLetterConsumer, Lane, Publisher, QueueError, Topology, policy,
};
use entra_sync_store::{Store, StoreError};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;

/// How the worker loop behaves.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Tasks reconciled at once.
    pub concurrency: usize,
    /// Attempts of a task before it goes to the dead-letter queue.
    pub max_attempts: u32,
    /// How long a task waits for its object's lock in one try; the waiting
    /// rule ([`crate::waiting`]) decides what follows.
    pub lock_timeout: Duration,
    /// How long in-flight tasks may take to finish after a shutdown request;
    /// the rest are requeued by the broker.
    pub shutdown_grace: Duration,
    /// The delay of a task's delayed retries, by attempt.
    pub retry_backoff: Backoff,
}

impl WorkerSettings {
    /// `concurrency` and `max_attempts` as configured; a 3 s lock timeout,
    /// 7 s of shutdown grace, and retries after 5 s, doubled per attempt up to an hour.
    pub fn new(concurrency: usize, max_attempts: u32) -> Self {
        Self {
            concurrency,
            max_attempts,
            lock_timeout: Duration::from_secs(3),
            shutdown_grace: Duration::from_secs(7),
            retry_backoff: Backoff {
                base: Duration::from_secs(5),
                max: Duration::from_secs(3600),
            },
        }
    }
}

/// Everything the worker loop runs on.
pub struct WorkerParts {
    /// The state.
    pub store: Store,
    /// RabbitMQ URL.
    pub amqp_url: String,
    /// Queue names and retry tiers.
    pub topology: Topology,
    /// The authentik client.
    pub authentik: AuthentikClient,
    /// The configured providers.
    pub providers: Vec<ProviderConfig>,
    /// Loop settings.
    pub settings: WorkerSettings,
    /// Where to serve `/healthz`, `/readyz` and `/metrics`, if anywhere.
    pub listen: Option<SocketAddr>,
    /// RabbitMQ's management HTTP API, through which the queues' policies
    /// are set at start, if given.
    pub management_url: Option<String>,
}

/// The worker could not start or lost its broker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// RabbitMQ failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The database pools cannot be built.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The health and metrics address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Consumes tasks until `shutdown` resolves, then stops taking new ones, lets
/// in-flight ones finish within the grace period and returns; unfinished
/// deliveries go back to their queue when the channel closes.
pub async fn run(
    parts: WorkerParts,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    if let Some(management) = &parts.management_url {
        match policy::apply(&parts.topology, &parts.amqp_url, management).await {
            Ok(()) => tracing::info!("RabbitMQ policies set"),
            Err(e) => {
                tracing::warn!(error = %e, "RabbitMQ policies not set; set them as the README says")
            }
        }
    }
    let connection = Arc::new(entra_sync_queue::connect(&parts.amqp_url).await?);
    let metrics = Arc::new(WorkerMetrics::default());
    if let Some(addr) = parts.listen {
        health::serve(
            addr,
            parts.store.clone(),
            connection.clone(),
            parts.topology.clone(),
            metrics.clone(),
        )
        .await
        .map_err(|source| WorkerError::Listen { addr, source })?;
    }
    let publisher = Publisher::open(&connection, parts.topology.clone()).await?;
    let concurrency = parts.settings.concurrency.max(1);
    let prefetch = u16::try_from(concurrency).unwrap_or(u16::MAX);
    let mut direct = Consumer::open(&connection, &parts.topology, Lane::Direct, prefetch).await?;
    let mut bulk = Consumer::open(&connection, &parts.topology, Lane::Bulk, prefetch).await?;
    let dead_letters = tokio::spawn(dead_letters::follow(
        DeadLetterConsumer::open(&connection, &parts.topology).await?,
        publisher.clone(),
        parts.store.clone(),
    ));
    let handler = Arc::new(Handler {
        recorder: Recorder::start(parts.store.clone()),
        // Locks come from their own pool: a task holds one while it uses others.
        store: parts.store.with_lock_pool(concurrency)?,
        authentik: parts.authentik,
        configs: parts
            .providers
            .into_iter()
            .map(|p| (p.name.clone(), p))
            .collect(),
        workers: Mutex::new(HashMap::new()),
        publisher,
        rule: WaitingRule::new(parts.settings.max_attempts, parts.settings.retry_backoff),
        settings: parts.settings.clone(),
        metrics,
    });
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut in_flight = JoinSet::new();
    tracing::info!(concurrency, "worker started");
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        // Direct tasks first: a bulk task is taken only when no direct one waits.
        let delivery = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            Some(d) = direct.next() => d,
            Some(d) = bulk.next() => d,
            else => break,
        };
        let delivery = match delivery {
            Ok(delivery) => delivery,
            Err(e) => {
                tracing::warn!(error = %e, "consumer error; waiting for the connection to recover");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let handler = handler.clone();
        let span = delivery.span();
        in_flight.spawn(async move {
            tracing::Instrument::instrument(handler.handle(delivery), span).await;
            drop(permit);
        });
        while in_flight.try_join_next().is_some() {}
    }
    tracing::info!(in_flight = in_flight.len(), "shutting down: no new tasks");
    for consumer in [&direct, &bulk] {
        if let Err(e) = consumer.cancel().await {
            tracing::warn!(error = %e, lane = consumer.lane().as_str(), "cannot cancel a consumer; closing the connection stops it");
        }
    }
    // Whatever it holds unsettled comes back to the queue.
    dead_letters.abort();
    let drained = tokio::time::timeout(handler.settings.shutdown_grace, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = in_flight.len(),
            "in-flight tasks did not finish in time; the broker requeues them"
        );
        in_flight.abort_all();
    }
    let _ = connection.close(200, "shutdown".into()).await;
    Ok(())
}
