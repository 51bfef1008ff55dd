//! Following authentik while leading: the followers' loops, and the webhook
//! relay that wakes the active producer wherever it runs.
//!
//! A configuration error of authentik halts every provider (invariant 6 of
//! DESIGN.md: halt with a clear reason until fixed); a lost wake-up only
//! delays a change to the next poll.

use super::stopped;
use crate::events::{self, Follower};
use crate::sink::TaskSink;
use entra_sync_store::Store;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// How long a follower that hit a configuration error waits before trying again.
const FOLLOWER_RESTART: Duration = Duration::from_secs(60);

/// Drives a follower until stopped. A configuration error of authentik halts
/// every provider (none can sync without authentik) and the follower tries
/// again later.
#[allow(clippy::too_many_arguments)]
pub(super) async fn follow<F: Follower + 'static>(
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
pub(super) async fn relay_wakes(store: Store, hook: Arc<Notify>, wake: Arc<Notify>) {
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
pub(super) async fn listen_for_wakes(
    store: Store,
    wake: Arc<Notify>,
    stop: impl Future<Output = ()>,
) {
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
