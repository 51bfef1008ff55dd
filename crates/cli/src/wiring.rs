//! Builds the producer's and the worker's parts from a [`Config`].

use entra_sync_authentik::{ApiToken, AuthentikClient, ClientConfig};
use entra_sync_config::{Config, ProviderConfig};
use entra_sync_producer::scheduler::ProviderSchedule;
use entra_sync_producer::service::{Intervals, ProducerParts};
use entra_sync_producer::webhook::WebhookSecret;
use entra_sync_provider::Provider;
use entra_sync_queue::Topology;
use entra_sync_store::Store;
use entra_sync_store::retention::Retention;
use entra_sync_worker::runner::{WorkerParts, WorkerSettings};

/// The database pool, with at least `min_size` connections allowed.
pub fn store(config: &Config, min_size: usize) -> anyhow::Result<Store> {
    let size = config.database.max_connections.max(min_size);
    Ok(Store::connect(config.database.url.expose(), size, None)?)
}

/// What the producer's background pruning keeps (`[retention]`).
pub fn retention(config: &Config) -> Retention {
    let r = &config.retention;
    Retention {
        outcomes_max_age: r.outcomes_max_age,
        outcomes_max_rows: r.outcomes_max_rows,
        dead_letters_max_age: r.dead_letters_max_age,
        dead_letters_max_rows: r.dead_letters_max_rows,
        runs_kept: r.runs_kept,
        run_objects_max_age: r.run_objects_max_age,
    }
}

/// The authentik API client.
pub fn authentik(config: &Config) -> anyhow::Result<AuthentikClient> {
    let client = AuthentikClient::new(ClientConfig::new(
        config.authentik.url.clone(),
        ApiToken::from_source(config.authentik.token.clone()),
    ))?;
    Ok(client)
}

/// The full-sync schedule of one provider.
pub fn provider_schedule(
    provider: &ProviderConfig,
    store: &Store,
) -> anyhow::Result<ProviderSchedule> {
    Ok(ProviderSchedule {
        provider: Provider::from_config(provider, store)?,
        full_sync_interval: provider.full_sync_interval,
    })
}

/// Everything `entra-sync producer` runs on.
pub fn producer_parts(config: &Config, store: Store) -> anyhow::Result<ProducerParts> {
    let providers = config
        .providers
        .iter()
        .map(|p| provider_schedule(p, &store))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(ProducerParts {
        store,
        amqp_url: config.amqp.url.clone(),
        topology: Topology::new(&config.amqp.queue_prefix),
        authentik: authentik(config)?,
        webhook_secret: WebhookSecret::new(config.authentik.webhook_secret.expose()),
        listen: config.producer.listen,
        status_listen: config.producer.status_listen,
        intervals: Intervals {
            stall_timeout: config.producer.stall_timeout,
            ..Intervals::new(
                config.producer.events_poll_interval,
                Some(config.producer.watermark_poll_interval),
                Some(config.producer.silent_scan_interval),
            )
        },
        providers,
    })
}

/// Everything `entra-sync worker` runs on; `concurrency` overrides the configuration.
pub fn worker_parts(
    config: &Config,
    store: Store,
    concurrency: Option<usize>,
) -> anyhow::Result<WorkerParts> {
    let concurrency = concurrency.unwrap_or(config.worker.concurrency).max(1);
    Ok(WorkerParts {
        store,
        amqp_url: config.amqp.url.expose().to_owned(),
        topology: Topology::new(&config.amqp.queue_prefix),
        authentik: authentik(config)?,
        providers: config.providers.clone(),
        settings: WorkerSettings::new(concurrency, config.worker.max_attempts),
        listen: Some(config.worker.listen),
        management_url: config.amqp.management_url.as_ref().map(|u| u.to_string()),
    })
}

/// The pool size a worker with `concurrency` needs besides the connections
/// that hold object locks (a pool of their own): one per task, and the loop's.
pub fn worker_pool_size(concurrency: usize) -> usize {
    concurrency + 2
}
