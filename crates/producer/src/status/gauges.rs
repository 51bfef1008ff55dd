//! The shared state as Prometheus gauges, read from PostgreSQL before each
//! scrape, so every producer replica reports the same current values:
//! halts, full-sync phase and progress, the last successful full sync, dead
//! letters and the shared rate budgets.

use super::snapshot::{ProviderStatus, Watched};
use entra_sync_store::{Store, StoreError};
use entra_sync_telemetry::Registry;
use futures_util::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Unit;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// The phases of a full sync, and `idle` when none runs.
const PHASES: [&str; 6] = [
    "idle",
    "queued",
    "discovery",
    "users",
    "groups",
    "memberships",
];

type FloatGauge = Gauge<f64, AtomicU64>;

/// The gauges of the shared state.
#[derive(Debug, Default)]
pub struct StateGauges {
    halted: Family<ProviderLabel, Gauge>,
    phase: Family<PhaseLabels, Gauge>,
    objects: Family<ObjectLabels, Gauge>,
    last_success: Family<ProviderLabel, FloatGauge>,
    interval: Family<ProviderLabel, FloatGauge>,
    dead_letters: Family<ProviderLabel, Gauge>,
    budget_tokens: Family<BudgetLabel, FloatGauge>,
    budget_paused: Family<BudgetLabel, Gauge>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabel {
    provider: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    provider: String,
    phase: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ObjectLabels {
    provider: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabel {
    budget: String,
}

impl StateGauges {
    /// Registers every gauge in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "provider_halted",
            "Whether the provider is halted (1) until an operator or the cause clears it",
            self.halted.clone(),
        );
        registry.register(
            "full_sync_phase",
            "The phase of the provider's running full sync (1), idle when none runs",
            self.phase.clone(),
        );
        registry.register(
            "full_sync_objects",
            "Objects of the provider's newest full sync: total planned, done and failed",
            self.objects.clone(),
        );
        registry.register_with_unit(
            "full_sync_last_success_timestamp",
            "When the provider's newest successful full sync finished (Unix time)",
            Unit::Seconds,
            self.last_success.clone(),
        );
        registry.register_with_unit(
            "full_sync_interval",
            "The provider's configured full_sync_interval",
            Unit::Seconds,
            self.interval.clone(),
        );
        registry.register(
            "dead_letters",
            "Tasks of the provider in the dead-letter queue, as recorded in PostgreSQL",
            self.dead_letters.clone(),
        );
        registry.register(
            "graph_budget_tokens",
            "Writes left in the shared budget at its last reservation (negative: reserved ahead), by budget",
            self.budget_tokens.clone(),
        );
        registry.register(
            "graph_budget_paused",
            "Whether a 429 pauses the shared budget now (1), by budget",
            self.budget_paused.clone(),
        );
    }

    /// Reads the state of `providers` and the budgets and sets the gauges.
    pub async fn refresh(&self, store: &Store, providers: &[Watched]) -> Result<(), StoreError> {
        for provider in providers {
            let status = ProviderStatus::read(store, provider, 0).await?;
            self.set(&status);
        }
        for level in store.budget_levels().await? {
            let budget = BudgetLabel { budget: level.key };
            self.budget_tokens.get_or_create(&budget).set(level.tokens);
            let paused = i64::from(level.paused_until.is_some());
            self.budget_paused.get_or_create(&budget).set(paused);
        }
        Ok(())
    }

    /// What `/metrics` calls before each scrape: [`StateGauges::refresh`],
    /// logging a failure and leaving the gauges as they were.
    pub fn refresher(
        self: Arc<Self>,
        store: Store,
        providers: Vec<Watched>,
    ) -> impl Fn() -> BoxFuture<'static, ()> + Send + Sync + 'static {
        move || {
            let (gauges, store, providers) = (self.clone(), store.clone(), providers.clone());
            Box::pin(async move {
                if let Err(e) = gauges.refresh(&store, &providers).await {
                    tracing::warn!(error = %e, "cannot read the state for /metrics");
                }
            })
        }
    }

    fn set(&self, status: &ProviderStatus) {
        let name = &status.provider.name;
        let label = ProviderLabel {
            provider: name.clone(),
        };
        self.halted
            .get_or_create(&label)
            .set(i64::from(status.halt.is_some()));
        let running = status.current.as_ref().map_or("idle", |r| r.phase.as_str());
        for phase in PHASES {
            let labels = PhaseLabels {
                provider: name.clone(),
                phase,
            };
            self.phase
                .get_or_create(&labels)
                .set(i64::from(phase == running));
        }
        if let Some(run) = status.current.as_ref().or(status.last.as_ref()) {
            for (state, count) in [
                ("total", run.objects_total),
                ("done", run.objects_done),
                ("failed", run.objects_failed),
            ] {
                let labels = ObjectLabels {
                    provider: name.clone(),
                    state,
                };
                self.objects.get_or_create(&labels).set(i64::from(count));
            }
        }
        if let Some(at) = status.last_success.as_ref().and_then(|r| r.finished_at) {
            let seconds = at.timestamp_millis() as f64 / 1000.0;
            self.last_success.get_or_create(&label).set(seconds);
        }
        let interval = status.provider.full_sync_interval.as_secs_f64();
        self.interval.get_or_create(&label).set(interval);
        self.dead_letters
            .get_or_create(&label)
            .set(status.dead_letters);
    }
}
