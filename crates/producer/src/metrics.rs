//! The producer's series, registered in the process's telemetry registry.
//!
//! Labels carry only lane and provider names, never a secret.

use entra_sync_queue::Lane;
use entra_sync_telemetry::Registry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// The producer's counters and gauges; cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Metrics {
    leader: Gauge,
    tasks_published: Family<LaneLabel, Counter>,
    full_syncs_started: Family<ProviderLabel, Counter>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LaneLabel {
    lane: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabel {
    provider: String,
}

impl Metrics {
    /// Registers every series in `registry`; both lanes show from the start.
    pub fn register(&self, registry: &mut Registry) {
        for lane in Lane::ALL {
            // Creates the lane's series at 0.
            let _ = self.tasks_published.get_or_create(&lane_label(lane));
        }
        registry.register(
            "producer_leader",
            "Whether this process is the active producer",
            self.leader.clone(),
        );
        registry.register(
            "tasks_published",
            "Tasks published, by lane",
            self.tasks_published.clone(),
        );
        registry.register(
            "full_syncs_started",
            "Full syncs this process started, by provider",
            self.full_syncs_started.clone(),
        );
    }

    /// Records whether this process is the active producer.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Whether this process is the active producer.
    pub fn is_leader(&self) -> bool {
        self.leader.get() == 1
    }

    /// Counts one task published to `lane`.
    pub fn task_published(&self, lane: Lane) {
        self.tasks_published.get_or_create(&lane_label(lane)).inc();
    }

    /// Tasks published to `lane` so far.
    pub fn tasks_published(&self, lane: Lane) -> u64 {
        self.tasks_published.get_or_create(&lane_label(lane)).get()
    }

    /// Counts one full sync this process started for `provider`.
    pub fn full_sync_started(&self, provider: &str) {
        self.full_syncs_started
            .get_or_create(&provider_label(provider))
            .inc();
    }

    /// Full syncs this process started for `provider` so far.
    pub fn full_syncs_started(&self, provider: &str) -> u64 {
        self.full_syncs_started
            .get_or_create(&provider_label(provider))
            .get()
    }
}

fn lane_label(lane: Lane) -> LaneLabel {
    LaneLabel {
        lane: lane.as_str(),
    }
}

fn provider_label(provider: &str) -> ProviderLabel {
    ProviderLabel {
        provider: provider.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_shows_under_its_name_and_both_lanes_from_the_start() {
        let metrics = Metrics::default();
        let mut registry = entra_sync_telemetry::registry();
        metrics.register(&mut registry);
        metrics.set_leader(true);
        metrics.task_published(Lane::Bulk);
        metrics.full_sync_started("contoso");
        let text = entra_sync_telemetry::render(&registry).unwrap();
        for line in [
            "entra_sync_producer_leader 1\n",
            "entra_sync_tasks_published_total{lane=\"bulk\"} 1\n",
            "entra_sync_tasks_published_total{lane=\"direct\"} 0\n",
            "entra_sync_full_syncs_started_total{provider=\"contoso\"} 1\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
    }
}
