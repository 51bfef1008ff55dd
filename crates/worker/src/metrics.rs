//! The worker's series, registered in the process's telemetry registry.
//!
//! Labels carry only provider names, object kinds and results, never a secret.

use entra_sync_telemetry::Registry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// Counters of the worker loop; cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    tasks: Family<TaskLabels, Counter>,
    in_flight: Gauge,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    provider: String,
    kind: &'static str,
    result: &'static str,
}

impl WorkerMetrics {
    /// Registers every series in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "worker_tasks",
            "Tasks finished, by provider, object kind and result",
            self.tasks.clone(),
        );
        registry.register(
            "worker_tasks_in_flight",
            "Tasks being reconciled now",
            self.in_flight.clone(),
        );
    }

    /// Counts a task that ended with `result` (ok, failed, retrying, dead, halted, dropped).
    pub fn task_finished(&self, provider: &str, kind: &'static str, result: &'static str) {
        self.tasks
            .get_or_create(&TaskLabels {
                provider: provider.to_owned(),
                kind,
                result,
            })
            .inc();
    }

    /// A task started (`+1`) or ended (`-1`).
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.inc_by(delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tasks_by_labels_and_tracks_those_in_flight() {
        let metrics = WorkerMetrics::default();
        let mut registry = entra_sync_telemetry::registry();
        metrics.register(&mut registry);
        metrics.task_finished("contoso", "user", "ok");
        metrics.task_finished("contoso", "user", "ok");
        metrics.task_finished("contoso", "group", "failed");
        metrics.in_flight(3);
        metrics.in_flight(-1);
        let text = entra_sync_telemetry::render(&registry).unwrap();
        for line in [
            "entra_sync_worker_tasks_total{provider=\"contoso\",kind=\"user\",result=\"ok\"} 2\n",
            "entra_sync_worker_tasks_total{provider=\"contoso\",kind=\"group\",result=\"failed\"} 1\n",
            "entra_sync_worker_tasks_in_flight 2\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
    }
}
