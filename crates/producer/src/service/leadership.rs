//! Leadership: one active producer at a time, behind the store's lock.
//!
//! The leader connects to RabbitMQ, registers the providers and runs the
//! scheduler and the followers until it stops or its lock's session fails.
//! Keeps invariant 3 of DESIGN.md: a run in progress stays `running` when the
//! leader goes, and the next leader resumes it.

use super::following::{follow, listen_for_wakes};
use super::readiness::Health;
use super::release::{check_release, watch_release};
use super::{LEADER_ROLE, ProducerParts, STOP_GRACE, stopped};
use crate::events::{
    EVENTS_CURSOR, EventFollower, FollowerConfig, MAX_BACKLOG, SilentScan, WATERMARK_CURSOR,
    WatermarkFollower,
};
use crate::full_sync::SyncContext;
use crate::scheduler::Scheduler;
use crate::sink::TaskSink;
use entra_sync_provider::Provider;
use entra_sync_queue::Publisher;
use entra_sync_store::leader::Leadership;
use std::sync::Arc;
use tokio::sync::{Notify, watch};

/// Tries to lead until stopped; leads while it can.
pub(super) async fn lead_loop(
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
        stall_timeout: parts.intervals.stall_timeout,
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
    // Know the release before following: it decides which followers read.
    check_release(&parts.authentik, &parts.store).await;
    let (children_tx, children_rx) = watch::channel(false);
    let mut children = tokio::task::JoinSet::new();
    children.spawn(watch_release(
        parts.authentik.clone(),
        parts.store.clone(),
        parts.intervals.release_check,
        stopped(children_rx.clone()),
    ));
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
            sink.clone(),
            Arc::new(Notify::new()),
            every,
            children_rx.clone(),
            parts.store.clone(),
            names.clone(),
        ));
    }
    if let Some(every) = parts.intervals.silent_scan {
        let scan = SilentScan::new(parts.authentik.clone(), parts.store.clone(), MAX_BACKLOG);
        children.spawn(follow(
            "silent scan",
            scan,
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
