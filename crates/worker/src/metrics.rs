//! The worker's series, registered in the process's telemetry registry.
//!
//! Labels carry only provider names, object kinds and results, never a secret.

use entra_sync_queue::Lane;
use entra_sync_telemetry::Registry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Unit;
use std::time::Instant;

/// Counters of the worker loop; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct WorkerMetrics {
    tasks: Family<TaskLabels, Counter>,
    in_flight: Gauge,
    task_duration: Family<LaneLabel, Histogram, fn() -> Histogram>,
    queue_messages: Family<QueueLabel, Gauge>,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self {
            tasks: Family::default(),
            in_flight: Gauge::default(),
            task_duration: Family::new_with_constructor(duration_histogram),
            queue_messages: Family::default(),
        }
    }
}

/// Task durations: 5 ms to about 5.7 min.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 17))
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabel {
    queue: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneLabel {
    lane: &'static str,
}

/// A task being handled: in flight until dropped, when its duration is observed.
#[must_use = "the task counts as in flight until this is dropped"]
pub struct TaskTimer<'a> {
    metrics: &'a WorkerMetrics,
    lane: Lane,
    started: Instant,
}

impl Drop for TaskTimer<'_> {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
        self.metrics
            .task_duration
            .get_or_create(&LaneLabel {
                lane: self.lane.as_str(),
            })
            .observe(self.started.elapsed().as_secs_f64());
    }
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
        registry.register_with_unit(
            "worker_task_duration",
            "Time from taking a delivery to settling it, by lane",
            Unit::Seconds,
            self.task_duration.clone(),
        );
        registry.register(
            "queue_messages",
            "Messages ready in the direct, bulk and dead-letter queues, read at each scrape",
            self.queue_messages.clone(),
        );
    }

    /// `messages` are ready in `queue`.
    pub fn queue_depth(&self, queue: &str, messages: u32) {
        self.queue_messages
            .get_or_create(&QueueLabel {
                queue: queue.to_owned(),
            })
            .set(i64::from(messages));
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

    /// A delivery from `lane` is being handled: in flight until the timer drops.
    pub fn task_started(&self, lane: Lane) -> TaskTimer<'_> {
        self.in_flight.inc();
        TaskTimer {
            metrics: self,
            lane,
            started: Instant::now(),
        }
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
        let first = metrics.task_started(Lane::Direct);
        let _second = metrics.task_started(Lane::Bulk);
        drop(first);
        metrics.queue_depth("es.bulk", 7);
        let text = entra_sync_telemetry::render(&registry).unwrap();
        for line in [
            "entra_sync_worker_tasks_total{provider=\"contoso\",kind=\"user\",result=\"ok\"} 2\n",
            "entra_sync_worker_tasks_total{provider=\"contoso\",kind=\"group\",result=\"failed\"} 1\n",
            "entra_sync_worker_tasks_in_flight 1\n",
            "entra_sync_worker_task_duration_seconds_count{lane=\"direct\"} 1\n",
            "entra_sync_queue_messages{queue=\"es.bulk\"} 7\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
    }
}
