//! The Graph client's [`RequestGate`] over the shared adaptive pace in
//! PostgreSQL ([`entra_sync_core::pace`]): every worker of every replica draws
//! writes from one budget per (app, tenant); a 429 to any process, the
//! producer's discovery included, pauses that tenant's writes for all of them
//! and cuts the pace; accepted writes and Graph's throttle headers move it
//! (DESIGN invariant 5).
//!
//! - Direct writes are granted ahead of bulk ones ([`with_urgency`] says which
//!   a task serves); in one process, bulk writes queue for their turn here so
//!   only one of them at a time asks the database.
//! - Each write asks the database once. There is no local lease paced by a
//!   rate limiter such as `governor`: at Graph's ceiling of about 20 writes/s
//!   per tenant a round trip per write costs the database next to nothing,
//!   while a leased slice would idle in one worker while another waits, and
//!   would let bulk writes in one process hold budget a direct write in
//!   another needs.

use entra_sync_core::pace::{Ceiling, Feedback, Grant, Urgency};
use entra_sync_graph::{RequestCost, RequestGate, ThrottleSignals};
use entra_sync_store::Store;
use futures_util::future::BoxFuture;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

/// Longest single wait before asking again (keeps shutdown prompt), and the
/// longest a direct write may be granted ahead of the pace.
const MAX_WAIT: Duration = Duration::from_secs(5);
/// How often a failing database is retried before a request goes ungated.
const STORE_ATTEMPTS: u32 = 3;

tokio::task_local! {
    static URGENCY: Urgency;
}

/// Runs `work` with its Graph writes granted as `urgency`; writes outside
/// any such scope (a full sync's discovery, for one) count as bulk.
pub async fn with_urgency<F: Future>(urgency: Urgency, work: F) -> F::Output {
    URGENCY.scope(urgency, work).await
}

fn current_urgency() -> Urgency {
    URGENCY.try_with(|u| *u).unwrap_or(Urgency::Bulk)
}

/// Admits Graph writes against a shared, adaptive write budget.
#[derive(Debug)]
pub struct BudgetGate {
    store: Store,
    key: String,
    ceiling: Ceiling,
    /// Answers not yet folded into the shared pace; sent with the next grant.
    feedback: Mutex<Feedback>,
    /// Bulk writes of this process ask the database one at a time.
    bulk_turn: tokio::sync::Mutex<()>,
}

impl BudgetGate {
    /// The write budget of `client_id` in `tenant`, at most `quota` writes per `window`.
    pub fn writes(
        store: Store,
        tenant: &str,
        client_id: &str,
        quota: u32,
        window: Duration,
    ) -> Self {
        Self {
            store,
            key: write_budget_key(tenant, client_id),
            ceiling: Ceiling::quota(quota, window),
            feedback: Mutex::new(Feedback::default()),
            bulk_turn: tokio::sync::Mutex::new(()),
        }
    }

    /// Waits until `writes` tokens are granted (or the database keeps failing).
    async fn admit(&self, writes: f64, urgency: Urgency) {
        let turn = match urgency {
            Urgency::Bulk => Some(self.bulk_turn.lock().await),
            Urgency::Direct => None,
        };
        let ceiling = self.ceiling;
        let mut failures = 0;
        let mut rate = ceiling.per_second;
        loop {
            let feedback = self.take_feedback();
            let grant = self
                .store
                .with_pace(&self.key, ceiling, |pace, now| {
                    if !feedback.is_empty() {
                        pace.accepted(ceiling, feedback, now);
                    }
                    rate = pace.rate;
                    pace.reserve(ceiling, writes, urgency, MAX_WAIT, now)
                })
                .await;
            match grant {
                Ok(Grant::Now(wait)) => {
                    drop(turn);
                    entra_sync_telemetry::series().budget_pace(&self.key, rate);
                    tokio::time::sleep(wait).await;
                    return;
                }
                Ok(Grant::Paused(left)) => {
                    tracing::debug!(budget = %self.key, ?left, "tenant paused by a 429");
                    tokio::time::sleep(left.min(MAX_WAIT) + jitter()).await;
                }
                Ok(Grant::Later(wait)) => {
                    tokio::time::sleep(wait.min(MAX_WAIT) + jitter() / 10).await;
                }
                Err(e) => {
                    self.give_back(feedback);
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

    fn take_feedback(&self) -> Feedback {
        std::mem::take(&mut *self.feedback.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn give_back(&self, feedback: Feedback) {
        let mut pending = self.feedback.lock().unwrap_or_else(|e| e.into_inner());
        pending.add(feedback.accepted, feedback.limit_percentage);
    }
}

/// The key of the write budget of `client_id` in `tenant` in `rate_budgets`.
pub fn write_budget_key(tenant: &str, client_id: &str) -> String {
    format!("graph-writes:{tenant}:{client_id}")
}

/// Up to 100 ms, so paused workers do not all wake at once.
fn jitter() -> Duration {
    Duration::from_millis(rand::random_range(0..100))
}

impl RequestGate for BudgetGate {
    fn before(&self, cost: RequestCost) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if cost.writes > 0 {
                self.admit(f64::from(cost.writes), current_urgency()).await;
            }
        })
    }

    fn throttled<'a>(&'a self, pause: Duration, signals: &'a ThrottleSignals) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if signals.scope_limit() == Some("Read") {
                return;
            }
            let ceiling = self.ceiling;
            let cut = self
                .store
                .with_pace(&self.key, ceiling, |pace, now| {
                    pace.throttled(ceiling, pause, now);
                    pace.rate
                })
                .await;
            match cut {
                Ok(rate) => {
                    tracing::debug!(budget = %self.key, ?pause, rate, "Graph throttled a write; pace cut")
                }
                Err(e) => {
                    tracing::warn!(budget = %self.key, error = %e, "cannot share a 429 pause")
                }
            }
        })
    }

    fn observe(&self, cost: RequestCost, status: u16, signals: &ThrottleSignals) {
        if cost.writes > 0 && status != 429 {
            self.give_back(Feedback {
                accepted: f64::from(cost.writes),
                limit_percentage: signals.limit_percentage,
            });
        }
    }
}
