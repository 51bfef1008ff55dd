//! The process-wide series of the adapters: the Graph client's requests,
//! 429s and latency, the tenant budget's pace, and the events feed's lag.
//!
//! The adapters have no registry of their own, so they record through
//! [`series`], one call where the event happens; [`crate::registry`]
//! registers these series in every registry it makes. The services' own
//! series (tasks, in-flight work, full-sync state) live with the services.
//!
//! Labels are bounded: HTTP methods, failure classes, status codes, budget
//! names (one per configured app and tenant). Never a URL, an id or a secret.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// A gauge holding a float.
type FloatGauge = Gauge<f64, AtomicU64>;

/// The adapters' series; one per process, reached through [`series`].
#[derive(Debug)]
pub struct Series {
    graph_requests: Family<RequestLabels, Counter>,
    graph_request_duration: Family<MethodLabel, Histogram, fn() -> Histogram>,
    graph_throttled: Counter,
    graph_retry_after: Histogram,
    budget_pace: Family<BudgetLabel, FloatGauge>,
    events_feed_lag: FloatGauge,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    class: &'static str,
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabel {
    budget: String,
}

/// Graph latency buckets: 10 ms to about 41 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 13))
}

static SERIES: LazyLock<Series> = LazyLock::new(|| Series {
    graph_requests: Family::default(),
    graph_request_duration: Family::new_with_constructor(latency_histogram),
    graph_throttled: Counter::default(),
    // Retry-After: 1 s to 512 s.
    graph_retry_after: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
    budget_pace: Family::default(),
    events_feed_lag: FloatGauge::default(),
});

/// The process's adapter series.
pub fn series() -> &'static Series {
    &SERIES
}

impl Series {
    /// Registers every series, and `build_info`, in `registry`.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "build",
            "The running version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register(
            "graph_requests",
            "Microsoft Graph requests answered or failed, by HTTP method, failure class (ok when it succeeded) and status (network when none came)",
            self.graph_requests.clone(),
        );
        registry.register_with_unit(
            "graph_request_duration",
            "Time from sending a Graph request to its whole answer, by HTTP method",
            Unit::Seconds,
            self.graph_request_duration.clone(),
        );
        registry.register(
            "graph_throttled",
            "429 answers from Graph, outer and inside $batch",
            self.graph_throttled.clone(),
        );
        registry.register_with_unit(
            "graph_retry_after",
            "The Retry-After of Graph's 429 answers that carried one",
            Unit::Seconds,
            self.graph_retry_after.clone(),
        );
        registry.register(
            "graph_budget_pace_writes_per_second",
            "The pace at which the shared budget admits Graph writes, by budget (app and tenant)",
            self.budget_pace.clone(),
        );
        registry.register_with_unit(
            "events_feed_lag",
            "Age of the oldest new authentik event at the last read of the events feed (0 when none was new)",
            Unit::Seconds,
            self.events_feed_lag.clone(),
        );
    }

    /// One Graph request ended: `class` is `ok` or the failure class,
    /// `status` the HTTP status (`None`: no answer came).
    pub fn graph_request(
        &self,
        method: &str,
        class: &'static str,
        status: Option<u16>,
        elapsed: Duration,
    ) {
        let status = status.map_or_else(|| "network".to_owned(), |s| s.to_string());
        self.graph_requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                class,
                status,
            })
            .inc();
        self.graph_request_duration
            .get_or_create(&MethodLabel {
                method: method.to_owned(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Graph answered 429, with its Retry-After if it sent one.
    pub fn graph_throttled(&self, retry_after: Option<Duration>) {
        self.graph_throttled.inc();
        if let Some(wait) = retry_after {
            self.graph_retry_after.observe(wait.as_secs_f64());
        }
    }

    /// The pace at which `budget` admits writes now.
    pub fn budget_pace(&self, budget: &str, writes_per_second: f64) {
        self.budget_pace
            .get_or_create(&BudgetLabel {
                budget: budget.to_owned(),
            })
            .set(writes_per_second);
    }

    /// The events feed was read: the oldest new event was `seconds` old (0: none was new).
    pub fn events_feed_lag(&self, seconds: f64) {
        self.events_feed_lag.set(seconds.max(0.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_show_under_prometheus_names() {
        let s = series();
        s.graph_request("PATCH", "ok", Some(204), Duration::from_millis(30));
        s.graph_request("GET", "transient", None, Duration::from_millis(5));
        s.graph_throttled(Some(Duration::from_secs(3)));
        s.budget_pace("graph-writes:t:app", 20.0);
        s.events_feed_lag(4.5);
        let text = crate::render(&crate::registry()).unwrap();
        for line in [
            "entra_sync_build_info{version=\"",
            "entra_sync_graph_requests_total{method=\"PATCH\",class=\"ok\",status=\"204\"} 1\n",
            "entra_sync_graph_requests_total{method=\"GET\",class=\"transient\",status=\"network\"} 1\n",
            "entra_sync_graph_request_duration_seconds_bucket{le=\"0.04\",method=\"PATCH\"} 1\n",
            "entra_sync_graph_throttled_total 1\n",
            "entra_sync_graph_retry_after_seconds_bucket{le=\"4.0\"} 1\n",
            "entra_sync_graph_budget_pace_writes_per_second{budget=\"graph-writes:t:app\"} 20.0\n",
            "entra_sync_events_feed_lag_seconds 4.5\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
    }
}
