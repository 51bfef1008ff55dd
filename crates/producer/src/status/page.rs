//! The status page: read-only HTML on `[producer] status_listen`, an address
//! of its own because it shows user names. Rendered on the server from the
//! database, with no script, and refreshed by the browser every 30 s. It
//! shows each provider's halt, its current and last full sync with their
//! progress, its newest failures with their reasons, and its dead letters.
//!
//! Every value from the database is HTML-escaped; nothing secret is in what
//! it reads.

use super::snapshot::{ProviderStatus, Watched};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use entra_sync_store::Store;
use entra_sync_store::runs::Run;
use std::fmt::Write;
use std::sync::Arc;

/// How many of the newest failures and dead letters each provider lists.
const LISTED: i64 = 20;

struct Page {
    store: Store,
    providers: Vec<Watched>,
}

/// `GET /`: the status page of `providers`.
pub fn router(store: Store, providers: Vec<Watched>) -> Router {
    Router::new()
        .route("/", get(show))
        .with_state(Arc::new(Page { store, providers }))
}

/// Serves the status page of `providers` on `listener` in the background until `stop` completes.
pub fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    providers: Vec<Watched>,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving the status page");
    }
    let serving = axum::serve(listener, router(store, providers)).with_graceful_shutdown(stop);
    tokio::spawn(async move {
        if let Err(e) = serving.await {
            tracing::error!(error = %e, "the status page stopped");
        }
    });
}

async fn show(State(page): State<Arc<Page>>) -> Response {
    let mut statuses = Vec::with_capacity(page.providers.len());
    for provider in &page.providers {
        match ProviderStatus::read(&page.store, provider, LISTED).await {
            Ok(status) => statuses.push(status),
            Err(e) => {
                tracing::warn!(error = %e, "status page: cannot read the state");
                let body = format!("cannot read the state: {}\n", escape(&e.to_string()));
                return (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
            }
        }
    }
    let html = render(&statuses, Utc::now());
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response()
}

/// Escapes text for HTML content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
.state{font-weight:bold;padding:.1em .5em;border-radius:.3em}.ok{background:#d7f5dd}.halted{background:#f8d0d0}\
section{border-top:2px solid #888;margin-top:1.5em}";

/// The whole page for `statuses`, as of `now`.
pub fn render(statuses: &[ProviderStatus], now: DateTime<Utc>) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"30\"><title>entra-sync status</title>\
         <style>{STYLE}</style></head><body><h1>entra-sync status</h1>\
         <p>As of {}. This page refreshes every 30 seconds.</p>",
        time(now)
    );
    if statuses.is_empty() {
        html.push_str("<p>No provider is configured.</p>");
    }
    for status in statuses {
        provider(&mut html, status);
    }
    html.push_str("</body></html>\n");
    html
}

fn provider(html: &mut String, s: &ProviderStatus) {
    let name = escape(&s.provider.name);
    let _ = write!(html, "<section id=\"provider-{name}\"><h2>{name} ");
    match &s.halt {
        Some(halt) => {
            let _ = write!(
                html,
                "<span class=\"state halted\">halted</span></h2>\
                 <p class=\"halt\">Halted since {} ({}): <strong class=\"halt-reason\">{}</strong></p>",
                time(halt.halted_at),
                escape(halt.kind.as_str()),
                escape(&halt.reason)
            );
        }
        None => html.push_str("<span class=\"state ok\">active</span></h2>"),
    }
    html.push_str("<h3>Full sync</h3><table><tr><th></th><th>Run</th><th>Started</th><th>Phase</th><th>Progress</th><th>Finished</th><th>Error</th></tr>");
    run_row(html, "Current", s.current.as_ref());
    run_row(html, "Last finished", s.last.as_ref());
    run_row(html, "Last successful", s.last_success.as_ref());
    let _ = write!(
        html,
        "</table><p>A full sync starts every {}.</p>",
        humantime::format_duration(s.provider.full_sync_interval)
    );
    let _ = write!(
        html,
        "<h3>Recent failures</h3><table class=\"failures\"><tr><th>When</th><th>Object</th><th>Result</th><th>Reason</th></tr>"
    );
    for f in &s.recent_failures {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td></tr>",
            time(f.at),
            escape(&f.kind),
            escape(&f.object_id),
            escape(&f.result),
            escape(f.error.as_deref().unwrap_or(""))
        );
    }
    if s.recent_failures.is_empty() {
        html.push_str("<tr><td colspan=\"4\">none</td></tr>");
    }
    let _ = write!(
        html,
        "</table><h3>Dead letters: <span class=\"dead-letter-count\">{}</span></h3>\
         <table class=\"dead-letters\"><tr><th>When</th><th>Object</th><th>Reason</th></tr>",
        s.dead_letters
    );
    for d in &s.recent_dead_letters {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{} {}</td><td>{}</td></tr>",
            time(d.at),
            escape(d.kind.as_deref().unwrap_or("?")),
            escape(d.object_id.as_deref().unwrap_or("?")),
            escape(&d.reason)
        );
    }
    if s.recent_dead_letters.is_empty() {
        html.push_str("<tr><td colspan=\"3\">none</td></tr>");
    }
    html.push_str("</table></section>");
}

fn run_row(html: &mut String, which: &str, run: Option<&Run>) {
    let Some(run) = run else {
        let _ = write!(html, "<tr><th>{which}</th><td colspan=\"6\">none</td></tr>");
        return;
    };
    let finished = run.objects_done + run.objects_failed;
    let _ = write!(
        html,
        "<tr><th>{which}</th><td>{} ({})</td><td>{}</td><td>{}</td>\
         <td><progress max=\"{}\" value=\"{}\"></progress> {} of {} ({} failed)</td><td>{}</td><td>{}</td></tr>",
        run.id,
        escape(&run.trigger),
        time(run.started_at),
        escape(&run.phase),
        run.objects_total.max(1),
        finished,
        finished,
        run.objects_total,
        run.objects_failed,
        run.finished_at.map(time).unwrap_or_default(),
        escape(run.error.as_deref().unwrap_or(""))
    );
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use entra_sync_store::providers::{Halt, HaltKind};
    use std::time::Duration;

    fn halted(reason: &str) -> ProviderStatus {
        ProviderStatus {
            provider: Watched {
                name: "contoso<1>".into(),
                full_sync_interval: Duration::from_secs(3600),
            },
            halt: Some(Halt {
                reason: reason.into(),
                kind: HaltKind::Configuration,
                halted_at: Utc::now(),
            }),
            current: None,
            last: None,
            last_success: None,
            dead_letters: 0,
            recent_failures: Vec::new(),
            recent_dead_letters: Vec::new(),
        }
    }

    #[test]
    fn every_value_from_the_database_is_escaped() {
        let html = render(
            &[halted("<script>alert('x')</script> & \"more\"")],
            Utc::now(),
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;more&quot;"),
            "{html}"
        );
        assert!(html.contains("<h2>contoso&lt;1&gt; "), "{html}");
    }
}
