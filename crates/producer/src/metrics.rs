//! The producer's Prometheus metrics: a few atomics, rendered as text.
//!
//! Labels carry only lane and provider names, never a secret.

use entra_sync_queue::Lane;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Counters and gauges of one producer process.
#[derive(Debug, Default)]
pub struct Metrics {
    leader: AtomicBool,
    published_direct: AtomicU64,
    published_bulk: AtomicU64,
    full_syncs_started: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// Records whether this process is the active producer.
    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::SeqCst);
    }

    /// Whether this process is the active producer.
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::SeqCst)
    }

    /// Counts one task published to `lane`.
    pub fn task_published(&self, lane: Lane) {
        let counter = match lane {
            Lane::Direct => &self.published_direct,
            Lane::Bulk => &self.published_bulk,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Tasks published to `lane` so far.
    pub fn tasks_published(&self, lane: Lane) -> u64 {
        match lane {
            Lane::Direct => self.published_direct.load(Ordering::Relaxed),
            Lane::Bulk => self.published_bulk.load(Ordering::Relaxed),
        }
    }

    /// Counts one full sync this process started for `provider`.
    pub fn full_sync_started(&self, provider: &str) {
        let mut map = self
            .full_syncs_started
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *map.entry(provider.to_owned()).or_default() += 1;
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP entra_sync_producer_leader Whether this process is the active producer.\n",
        );
        out.push_str("# TYPE entra_sync_producer_leader gauge\n");
        let _ = writeln!(
            out,
            "entra_sync_producer_leader {}",
            u8::from(self.is_leader())
        );
        out.push_str("# HELP entra_sync_tasks_published_total Tasks published, by lane.\n");
        out.push_str("# TYPE entra_sync_tasks_published_total counter\n");
        for lane in Lane::ALL {
            let _ = writeln!(
                out,
                "entra_sync_tasks_published_total{{lane=\"{}\"}} {}",
                lane.as_str(),
                self.tasks_published(lane)
            );
        }
        out.push_str(
            "# HELP entra_sync_full_syncs_started_total Full syncs this process started, by provider.\n",
        );
        out.push_str("# TYPE entra_sync_full_syncs_started_total counter\n");
        let map = self
            .full_syncs_started
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (provider, n) in map.iter() {
            let _ = writeln!(
                out,
                "entra_sync_full_syncs_started_total{{provider=\"{}\"}} {n}",
                escape_label(provider)
            );
        }
        out
    }
}

/// Escapes a label value for the text format.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric_with_escaped_labels() {
        let m = Metrics::default();
        m.set_leader(true);
        m.task_published(Lane::Bulk);
        m.task_published(Lane::Bulk);
        m.full_sync_started("a\"b");
        let text = m.render();
        assert!(text.contains("entra_sync_producer_leader 1\n"));
        assert!(text.contains("entra_sync_tasks_published_total{lane=\"bulk\"} 2\n"));
        assert!(text.contains("entra_sync_tasks_published_total{lane=\"direct\"} 0\n"));
        assert!(text.contains("entra_sync_full_syncs_started_total{provider=\"a\\\"b\"} 1\n"));
    }
}
