//! The worker's HTTP endpoints: `/healthz` (alive), `/readyz` (PostgreSQL and
//! RabbitMQ reachable) and `/metrics` (Prometheus text).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use entra_sync_store::Store;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// Counters of the worker loop.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    /// Finished tasks by (provider, kind, result).
    tasks: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
    in_flight: AtomicI64,
}

impl WorkerMetrics {
    /// Counts a task that ended with `result` (ok, failed, retrying, dead, halted, dropped).
    pub fn task_finished(&self, provider: &str, kind: &'static str, result: &'static str) {
        let mut tasks = self.tasks.lock().expect("metrics lock");
        *tasks
            .entry((provider.to_owned(), kind, result))
            .or_default() += 1;
    }

    /// A task started (`+1`) or ended (`-1`).
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP entra_sync_worker_tasks_total Tasks finished, by provider, object kind and result.\n");
        out.push_str("# TYPE entra_sync_worker_tasks_total counter\n");
        for ((provider, kind, result), n) in self.tasks.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "entra_sync_worker_tasks_total{{provider=\"{}\",kind=\"{kind}\",result=\"{result}\"}} {n}",
                escape(provider)
            );
        }
        out.push_str("# HELP entra_sync_worker_tasks_in_flight Tasks being reconciled now.\n");
        out.push_str("# TYPE entra_sync_worker_tasks_in_flight gauge\n");
        let _ = writeln!(
            out,
            "entra_sync_worker_tasks_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        out
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What the endpoints read.
#[derive(Clone)]
pub struct HealthState {
    /// The state, pinged by `/readyz`.
    pub store: Store,
    /// The broker connection, checked by `/readyz`.
    pub broker: Arc<entra_sync_queue::Connection>,
    /// The counters.
    pub metrics: Arc<WorkerMetrics>,
}

/// The router with `/healthz`, `/readyz` and `/metrics`.
pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn ready(State(state): State<HealthState>) -> (StatusCode, String) {
    if !state.broker.status().connected() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "RabbitMQ not connected".into(),
        );
    }
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready".into()),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn metrics(State(state): State<HealthState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_escaped_labels() {
        let m = WorkerMetrics::default();
        m.task_finished("a\"b", "user", "ok");
        m.task_finished("a\"b", "user", "ok");
        m.in_flight(3);
        m.in_flight(-1);
        let text = m.render();
        assert!(text.contains(
            "entra_sync_worker_tasks_total{provider=\"a\\\"b\",kind=\"user\",result=\"ok\"} 2"
        ));
        assert!(text.contains("entra_sync_worker_tasks_in_flight 2"));
    }
}
