//! The Graph client's [`RequestGate`] over the shared PostgreSQL budget: every
//! worker of every replica draws writes from one token bucket per (app,
//! tenant), and a 429 to any process, the producer's discovery included,
//! pauses that tenant's writes for all of them (DESIGN invariant 5).

use entra_sync_graph::{RequestCost, RequestGate, ThrottleSignals};
use entra_sync_store::Store;
use entra_sync_store::budget::{BucketShape, Reservation};
use futures_util::future::BoxFuture;
use std::time::Duration;

/// Longest single wait for tokens before asking again (keeps shutdown prompt).
const MAX_WAIT: Duration = Duration::from_secs(5);
/// How often a failing database is retried before a request goes ungated.
const STORE_ATTEMPTS: u32 = 3;

/// Admits Graph writes against a shared write quota.
#[derive(Debug, Clone)]
pub struct BudgetGate {
    store: Store,
    key: String,
    shape: BucketShape,
}

impl BudgetGate {
    /// The write budget of `client_id` in `tenant`: `quota` writes per `window`.
    pub fn writes(
        store: Store,
        tenant: &str,
        client_id: &str,
        quota: u32,
        window: Duration,
    ) -> Self {
        Self {
            store,
            key: format!("graph-writes:{tenant}:{client_id}"),
            shape: BucketShape::quota(quota, window),
        }
    }

    /// Waits until `writes` tokens are reserved (or the database keeps failing).
    async fn admit(&self, writes: f64) {
        let mut failures = 0;
        loop {
            match self
                .store
                .reserve(&self.key, self.shape, writes, MAX_WAIT)
                .await
            {
                Ok(Reservation::Granted(wait)) => {
                    entra_sync_telemetry::series().budget_pace(&self.key, self.shape.per_second);
                    tokio::time::sleep(wait).await;
                    return;
                }
                Ok(Reservation::Paused(until)) => {
                    let left = (until - chrono::Utc::now()).to_std().unwrap_or_default();
                    tracing::debug!(budget = %self.key, ?left, "tenant paused by a 429");
                    tokio::time::sleep(left.min(MAX_WAIT) + jitter()).await;
                }
                Ok(Reservation::TooLong(wait)) => {
                    tokio::time::sleep(wait.min(MAX_WAIT) + jitter()).await;
                }
                Err(e) => {
                    failures += 1;
                    if failures >= STORE_ATTEMPTS {
                        tracing::warn!(budget = %self.key, error = %e, "rate budget unavailable; sending without it");
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(failures))).await;
                }
            }
        }
    }
}

/// Up to 100 ms, so paused workers do not all wake at once.
fn jitter() -> Duration {
    Duration::from_millis(rand::random_range(0..100))
}

impl RequestGate for BudgetGate {
    fn before(&self, cost: RequestCost) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if cost.writes > 0 {
                self.admit(f64::from(cost.writes)).await;
            }
        })
    }

    fn throttled<'a>(
        &'a self,
        pause: Duration,
        _signals: &'a ThrottleSignals,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self.store.pause(&self.key, self.shape, pause).await {
                tracing::warn!(budget = %self.key, error = %e, "cannot share a 429 pause");
            }
        })
    }
}
