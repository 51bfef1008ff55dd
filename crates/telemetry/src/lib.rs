//! What the producer and the worker show operators over HTTP, in one place:
//! the process's Prometheus [`Registry`], and the [`router`] that serves
//! `/healthz`, `/readyz` and `/metrics` from it.
//!
//! Each service defines its own series and registers them in the registry
//! [`registry`] makes; every name then starts with `entra_sync_`. The
//! adapters record theirs through [`series()`], which every registry shows.
//! Labels carry only bounded names (lanes, providers, kinds, results), never
//! a secret.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use futures_util::future::BoxFuture;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use prometheus_client::registry::Registry;
pub use series::{Series, series};

mod series;

/// The prefix of every series name.
pub const PREFIX: &str = "entra_sync";

/// How long `/readyz` waits for one check before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The media type of the exposition `/metrics` serves.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A new registry whose series are named `entra_sync_…`, holding
/// `build_info` and the adapters' [`Series`].
pub fn registry() -> Registry {
    let mut registry = Registry::with_prefix(PREFIX);
    series().register(&mut registry);
    registry
}

/// The registry's series in the OpenMetrics text format, as `/metrics` serves them.
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

/// One dependency `/readyz` checks; `Err` holds why it is not usable.
type Check = Box<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What `/readyz` checks, in order: PostgreSQL, RabbitMQ… The process is
/// ready when every check passes within [`CHECK_TIMEOUT`].
#[derive(Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
}

impl Readiness {
    /// No checks yet: ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the check of `dependency`; `check` answers `Err(reason)` when the
    /// dependency is not usable.
    pub fn check<F, Fut>(mut self, dependency: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks
            .push((dependency, Box::new(move || Box::pin(check()))));
        self
    }

    /// Why the process is not ready, naming the first dependency that failed.
    async fn first_failure(&self) -> Option<String> {
        for (dependency, check) in &self.checks {
            let reason = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(Ok(())) => continue,
                Ok(Err(reason)) => reason,
                Err(_) => format!("no answer within {CHECK_TIMEOUT:?}"),
            };
            return Some(format!("{dependency}: {reason}"));
        }
        None
    }
}

/// Brings gauges read from elsewhere (the database) up to date before a scrape.
type Refresh = Box<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

struct Exposed {
    registry: Registry,
    readiness: Readiness,
    refresh: Option<Refresh>,
}

/// The routes every service serves: `GET /healthz` (200 while the process
/// runs), `GET /readyz` (200 when every [`Readiness`] check passes, else 503
/// with the reason) and `GET /metrics` (the registry in the OpenMetrics text format).
pub fn router(registry: Registry, readiness: Readiness) -> Router {
    routes(Exposed {
        registry,
        readiness,
        refresh: None,
    })
}

/// [`router`], with `refresh` awaited (for at most [`CHECK_TIMEOUT`]) before
/// each scrape of `/metrics`, so that gauges of shared state are current.
pub fn router_refreshing<F, Fut>(registry: Registry, readiness: Readiness, refresh: F) -> Router
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    routes(Exposed {
        registry,
        readiness,
        refresh: Some(Box::new(move || Box::pin(refresh()))),
    })
}

fn routes(exposed: Exposed) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(exposed))
}

async fn readyz(State(exposed): State<Arc<Exposed>>) -> (StatusCode, String) {
    match exposed.readiness.first_failure().await {
        None => (StatusCode::OK, "ready\n".into()),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

async fn metrics(State(exposed): State<Arc<Exposed>>) -> impl IntoResponse {
    if let Some(refresh) = &exposed.refresh {
        // A slow database leaves the gauges as they were rather than failing the scrape.
        let _ = tokio::time::timeout(CHECK_TIMEOUT, refresh()).await;
    }
    match render(&exposed.registry) {
        Ok(text) => (StatusCode::OK, [(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use std::sync::atomic::{AtomicBool, Ordering};

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }

    async fn get(base: &str, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("{base}{path}")).await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    #[tokio::test]
    async fn readyz_names_the_first_dependency_that_fails() {
        let broker_up = Arc::new(AtomicBool::new(true));
        let up = broker_up.clone();
        let readiness = Readiness::new()
            .check("PostgreSQL", || async { Ok(()) })
            .check("RabbitMQ", move || {
                let up = up.load(Ordering::SeqCst);
                async move {
                    if up {
                        Ok(())
                    } else {
                        Err("not connected".into())
                    }
                }
            });
        let base = serve(router(registry(), readiness)).await;
        assert_eq!(get(&base, "/readyz").await, (200, "ready\n".into()));
        broker_up.store(false, Ordering::SeqCst);
        assert_eq!(
            get(&base, "/readyz").await,
            (503, "RabbitMQ: not connected\n".into())
        );
        assert_eq!(get(&base, "/healthz").await.0, 200, "alive while not ready");
    }

    #[tokio::test]
    async fn metrics_shows_registered_series_under_the_prefix() {
        let mut registry = registry();
        let counter = Counter::<u64>::default();
        registry.register("things", "Things seen", counter.clone());
        counter.inc_by(3);
        let base = serve(router(registry, Readiness::new())).await;
        let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
        assert_eq!(response.headers()[header::CONTENT_TYPE], OPENMETRICS);
        let text = response.text().await.unwrap();
        assert!(text.contains("entra_sync_things_total 3\n"), "{text}");
    }

    #[tokio::test]
    async fn metrics_refreshes_before_each_scrape() {
        let mut registry = registry();
        let scrapes = Counter::<u64>::default();
        registry.register("scrapes", "Scrapes seen", scrapes.clone());
        let base = serve(router_refreshing(registry, Readiness::new(), move || {
            scrapes.inc();
            async {}
        }))
        .await;
        assert!(
            get(&base, "/metrics")
                .await
                .1
                .contains("entra_sync_scrapes_total 1\n")
        );
        assert!(
            get(&base, "/metrics")
                .await
                .1
                .contains("entra_sync_scrapes_total 2\n")
        );
    }
}
