//! The background pruning of old state ([`Store::prune`]): every producer
//! replica runs it; the store lets one prune at a time.

use entra_sync_store::Store;
use entra_sync_store::retention::Retention;
use std::time::Duration;

/// Prunes what `retention` does not keep, now and every `every`, forever.
pub async fn prune_loop(store: Store, retention: Retention, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match store.prune(&retention).await {
            Ok(Some(pruned)) => tracing::info!(
                outcomes = pruned.outcomes,
                dead_letters = pruned.dead_letters,
                runs = pruned.runs,
                run_objects = pruned.run_objects,
                "pruned old state"
            ),
            Ok(None) => tracing::debug!("another producer is pruning"),
            Err(e) => tracing::warn!(error = %e, "pruning old state failed; trying again later"),
        }
    }
}
