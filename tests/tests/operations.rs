//! What an operator sees after a full sync: the series of `/metrics` on the
//! producer and the worker, and the status page on `[producer] status_listen`.

use entra_sync_cli::wiring;
use entra_sync_core::task::ObjectKind;
use entra_sync_producer::service::Intervals;
use entra_sync_queue::Lane;
use entra_sync_sim::authentik::Mode;
use entra_sync_sim::graph::SimConfig;
use entra_sync_store::runs::RunState;
use entra_sync_tests::{ProviderSpec, Service, Stack, free_port, new_group, new_user};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const RUN: Duration = Duration::from_secs(90);

/// The value of the series line that starts with `series` (its name and labels).
fn value(text: &str, series: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"));
    line[series.len()..].trim().parse().unwrap()
}

/// The sample names a scrape can show: each family's name with its type's suffixes.
fn sample_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split(' ');
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "info" => &["_info"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
        }
    }
    names
}

/// Every `entra_sync_…` name the chart's dashboard and alerts use.
fn names_in_chart() -> BTreeSet<String> {
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/entra-sync");
    let mut names = BTreeSet::new();
    for file in [
        "dashboards/entra-sync.json",
        "templates/prometheusrule.yaml",
    ] {
        let text = std::fs::read_to_string(chart.join(file)).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("entra_sync_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    names
}

async fn scrape(addr: SocketAddr) -> String {
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// A producer wired as `entra-sync producer` is, on known ports.
fn producer(stack: &Stack, listen: SocketAddr, status: SocketAddr) -> Service {
    let mut parts = wiring::producer_parts(&stack.config(), stack.db.store.clone()).unwrap();
    parts.topology = Stack::topology();
    parts.listen = listen;
    parts.status_listen = Some(status);
    parts.intervals = Intervals {
        events_poll: Duration::from_millis(300),
        watermark_poll: Some(Duration::from_millis(500)),
        run_poll: Duration::from_millis(100),
        schedule_tick: Duration::from_millis(200),
        leader_retry: Duration::from_millis(200),
        leader_check: Duration::from_millis(500),
        ..parts.intervals
    };
    Service::spawn(|shutdown| async move {
        entra_sync_producer::service::run(parts, shutdown)
            .await
            .expect("producer runs");
    })
}

/// A worker wired as `entra-sync worker` is, serving `/metrics` on `listen`.
fn worker(stack: &Stack, listen: SocketAddr) -> Service {
    let mut parts = wiring::worker_parts(&stack.config(), stack.db.store.clone(), Some(4)).unwrap();
    parts.topology = Stack::topology();
    parts.listen = Some(listen);
    parts.settings.retry_backoff.base = Duration::from_millis(200);
    Service::spawn(|shutdown| async move {
        entra_sync_worker::runner::run(parts, shutdown)
            .await
            .expect("worker runs");
    })
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_full_sync_the_metrics_and_the_status_page_tell_what_happened() {
    // Graph allows fewer writes than the configured budget: some answers are 429s.
    let mut graph = SimConfig::default();
    graph.throttle.write_quota = 15;
    graph.throttle.write_window = Duration::from_secs(2);
    let stack = Stack::start_with(ProviderSpec::broken_and_healthy(), graph).await;
    let sim = &stack.authentik.sim;
    let staff = sim.create_group(new_group("staff"), Mode::Silent);
    for i in 0..30 {
        let pk = sim.create_user(new_user(&format!("user{i:02}")), Mode::Silent);
        sim.add_member(staff, pk, Mode::Silent);
    }
    let started = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let (producer_at, status_at, worker_at) =
        (local(free_port()), local(free_port()), local(free_port()));
    let producer = producer(&stack, producer_at, status_at);
    let worker = worker(&stack, worker_at);
    let store = &stack.db.store;
    stack
        .eventually("healthy's full sync done, broken halted", RUN, || async {
            let done = store
                .latest_run("healthy")
                .await
                .unwrap()
                .is_some_and(|r| r.state == RunState::Done);
            done && store.halt_of("broken").await.unwrap().is_some()
        })
        .await;
    store
        .record_dead_letter(
            Some("healthy"),
            Some(ObjectKind::User),
            Some("99"),
            None,
            "gave up after 5 attempts",
        )
        .await
        .unwrap();
    let run = store.latest_run("healthy").await.unwrap().unwrap();

    let text = scrape(producer_at).await;
    assert!(
        text.contains(&format!(
            "entra_sync_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert_eq!(
        value(&text, "entra_sync_provider_halted{provider=\"broken\"}"),
        1.0
    );
    assert_eq!(
        value(&text, "entra_sync_provider_halted{provider=\"healthy\"}"),
        0.0
    );
    assert_eq!(
        value(
            &text,
            "entra_sync_full_sync_phase{provider=\"healthy\",phase=\"idle\"}"
        ),
        1.0
    );
    for (state, count) in [
        ("total", run.objects_total),
        ("done", run.objects_done),
        ("failed", run.objects_failed),
    ] {
        let series =
            format!("entra_sync_full_sync_objects{{provider=\"healthy\",state=\"{state}\"}}");
        assert_eq!(value(&text, &series), f64::from(count), "{state}");
    }
    assert!(run.objects_done >= 31, "30 users and a group: {run:?}");
    let last_success = value(
        &text,
        "entra_sync_full_sync_last_success_timestamp_seconds{provider=\"healthy\"}",
    );
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    assert!(
        (started.as_secs_f64() - 1.0..=now.as_secs_f64()).contains(&last_success),
        "{last_success} not within the test"
    );
    assert_eq!(
        value(
            &text,
            "entra_sync_full_sync_interval_seconds{provider=\"healthy\"}"
        ),
        4.0 * 3600.0
    );
    assert_eq!(
        value(&text, "entra_sync_dead_letters{provider=\"healthy\"}"),
        1.0
    );
    // The producer and the worker run in this process: the Graph series hold both.
    let created = value(
        &text,
        "entra_sync_graph_requests_total{method=\"POST\",class=\"ok\",status=\"201\"}",
    );
    assert!(created >= 30.0, "30 users created: {created}");
    let upserted = value(
        &text,
        "entra_sync_graph_requests_total{method=\"PATCH\",class=\"ok\",status=\"201\"}",
    );
    assert!(upserted >= 1.0, "a group created by its upsert: {upserted}");
    let throttled = value(&text, "entra_sync_graph_throttled_total");
    assert!(throttled >= 1.0, "the tight Graph quota answered 429s");
    assert!(value(&text, "entra_sync_graph_retry_after_seconds_count") >= 1.0);
    assert!(
        value(
            &text,
            "entra_sync_graph_requests_total{method=\"POST\",class=\"transient\",status=\"429\"}"
        ) >= 1.0
    );
    assert!(
        value(
            &text,
            "entra_sync_graph_request_duration_seconds_count{method=\"GET\"}"
        ) >= 1.0
    );
    let budget = format!(
        "{{budget=\"graph-writes:{}:{}\"}}",
        SimConfig::TENANT_ID,
        SimConfig::CLIENT_ID
    );
    // The pace adapts to the 429s: below the configured 3,000 per 150 s.
    let pace = value(
        &text,
        &format!("entra_sync_graph_budget_pace_writes_per_second{budget}"),
    );
    assert!(pace > 0.0 && pace <= 3000.0 / 150.0, "{pace}");
    let tokens = value(&text, &format!("entra_sync_graph_budget_tokens{budget}"));
    assert!(tokens <= 3000.0, "{tokens}");
    assert!(
        text.contains("\nentra_sync_events_feed_lag_seconds "),
        "{text}"
    );

    let mut exposed = sample_names(&text);
    let text = scrape(worker_at).await;
    exposed.extend(sample_names(&text));
    let unknown: Vec<String> = names_in_chart().difference(&exposed).cloned().collect();
    assert!(
        unknown.is_empty(),
        "the chart's dashboard or alerts use series nothing exposes: {unknown:?}"
    );
    let users = value(
        &text,
        "entra_sync_worker_tasks_total{provider=\"healthy\",kind=\"user\",result=\"ok\"}",
    );
    assert!(users >= 30.0, "{users}");
    let topology = Stack::topology();
    for queue in [
        topology.queue(Lane::Direct),
        topology.queue(Lane::Bulk),
        topology.dead_letter_queue(),
    ] {
        let ready = value(
            &text,
            &format!("entra_sync_queue_messages{{queue=\"{queue}\"}}"),
        );
        assert!(ready >= 0.0, "{queue}: {ready}");
    }
    let in_flight = value(&text, "entra_sync_worker_tasks_in_flight");
    assert!(
        (0.0..=4.0).contains(&in_flight),
        "at most its concurrency: {in_flight}"
    );
    assert!(
        value(
            &text,
            "entra_sync_worker_task_duration_seconds_count{lane=\"bulk\"}"
        ) >= 30.0
    );

    let page = reqwest::get(format!("http://{status_at}/")).await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let halt = store.halt_of("broken").await.unwrap().unwrap();
    assert!(
        html.contains(
            "<section id=\"provider-broken\"><h2>broken <span class=\"state halted\">halted</span>"
        ),
        "{html}"
    );
    assert!(halt.reason.contains("40-department"), "{}", halt.reason);
    assert!(
        html.contains(&entra_sync_producer::status::page::escape(&halt.reason)),
        "the halt's reason is shown:\n{html}"
    );
    assert!(
        html.contains("<span class=\"dead-letter-count\">1</span>"),
        "{html}"
    );
    assert!(
        reqwest::get(format!("http://{producer_at}/"))
            .await
            .unwrap()
            .status()
            == 404,
        "the status page is not on the webhook's port"
    );
    producer.stop().await;
    worker.stop().await;
}
