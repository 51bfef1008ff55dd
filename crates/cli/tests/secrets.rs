//! No secret leaves (DESIGN invariant 9): a full sync and a webhook with
//! known secret values, then every log line of the producer and the worker
//! (at debug level), the CLI's `sync`, `status` and `status --json` output,
//! the status page and both `/metrics` pages are scanned for them, and for
//! access tokens.

mod common;

use common::page;
use entra_sync_sim::authentik::Mode;
use entra_sync_sim::graph::SimConfig;
use entra_sync_tests::{AUTHENTIK_TOKEN, ProviderSpec, Stack, WEBHOOK_SECRET};
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The database password the configuration files carry (the test server
/// trusts local connections, so any password connects).
const DB_PASSWORD: &str = "db-pw-Zq81xK-e2e";

/// Puts [`DB_PASSWORD`] into the `postgres://user:password@` URL of `config`.
fn with_db_password(config: &Path) {
    let text = std::fs::read_to_string(config).unwrap();
    let start = text.find("postgres://").expect("a database URL") + "postgres://".len();
    let at = start + text[start..].find('@').expect("user info");
    let user = text[start..at].split(':').next().unwrap();
    let text = format!("{}{user}:{DB_PASSWORD}{}", &text[..start], &text[at..]);
    std::fs::write(config, text).unwrap();
}

/// A process whose stderr lines are collected; killed when dropped.
struct Logged(Child);

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_logged(config: &Path, role: &str, lines: &Arc<Mutex<Vec<String>>>) -> Logged {
    let mut child = Command::new(env!("CARGO_BIN_EXE_entra-sync"))
        .args([role, "--log-format", "json"])
        .env("ENTRA_SYNC_CONFIG", config)
        .env("RUST_LOG", "debug")
        .env_remove("DATABASE_URL")
        .env_remove("AMQP_URL")
        .env_remove("ENTRA_SYNC_LISTEN")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start entra-sync");
    for output in [
        Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stdout.take().unwrap()),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(output)
                .lines()
                .map_while(Result::ok)
            {
                lines.lock().unwrap().push(line);
            }
        });
    }
    Logged(child)
}

/// Runs a CLI command; its stdout and stderr together.
fn run_cli(config: &Path, args: &[&str]) -> String {
    let out = common::command(config, args)
        .env("RUST_LOG", "debug")
        .output()
        .expect("run entra-sync");
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_shows_in_logs_cli_output_or_metrics_after_a_full_sync() {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let sim = &stack.authentik.sim;
    for name in ["ada", "grace", "linus"] {
        sim.create_user(entra_sync_tests::new_user(name), Mode::Silent);
    }
    let producer_config = stack.process_config();
    let worker_config = stack.process_config();
    let config = stack.config_path();
    for path in [&producer_config.path, &worker_config.path, &config] {
        with_db_password(path);
    }
    let status_port = entra_sync_tests::free_port();
    let text = std::fs::read_to_string(&producer_config.path).unwrap();
    let text = text.replacen(
        "[producer]\n",
        &format!("[producer]\nstatus_listen = \"127.0.0.1:{status_port}\"\n"),
        1,
    );
    std::fs::write(&producer_config.path, text).unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let _producer = spawn_logged(&producer_config.path, "producer", &lines);
    let _worker = spawn_logged(&worker_config.path, "worker", &lines);

    let mut scanned = Vec::new();
    scanned.push(run_cli(
        &config,
        &["sync", "--provider", "p", "--wait", "--timeout", "90"],
    ));

    // A change through the webhook path too, with the webhook's secret.
    sim.create_user(entra_sync_tests::new_user("margaret"), Mode::Evented);
    let http = reqwest::Client::new();
    let hook = format!(
        "http://127.0.0.1:{}/hooks/authentik",
        producer_config.producer_port
    );
    let started = Instant::now();
    loop {
        let sent = http
            .post(&hook)
            .bearer_auth(WEBHOOK_SECRET)
            .json(&serde_json::json!({"body": "model_created"}))
            .send()
            .await;
        if sent.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "webhook not served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stack
        .eventually(
            "the webhook's user reaches Entra",
            Duration::from_secs(60),
            || async { stack.graph().state().to_string().contains("margaret") },
        )
        .await;
    // And a wrong webhook secret, whose refusal is logged.
    let refused = http
        .post(&hook)
        .bearer_auth("not-the-webhook-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);

    scanned.push(run_cli(&config, &["status"]));
    let status = run_cli(&config, &["status", "--json"]);
    assert!(status.contains("\"name\": \"p\""), "{status}");
    scanned.push(status);
    let status_page = page(format!("http://127.0.0.1:{status_port}/")).await;
    assert!(
        status_page.to_lowercase().contains("<html"),
        "{status_page}"
    );
    scanned.push(status_page);
    for port in [producer_config.producer_port, worker_config.worker_port] {
        let metrics = page(format!("http://127.0.0.1:{port}/metrics")).await;
        assert!(metrics.contains("entra_sync_"), "{metrics}");
        scanned.push(metrics);
    }
    drop((_producer, _worker));
    let logs = lines.lock().unwrap().clone();
    assert!(logs.len() > 100, "only {} log lines", logs.len());
    assert!(
        logs.iter()
            .any(|l| l.contains("graph.request") || l.contains("\"level\":\"DEBUG\"")),
        "debug logs were collected"
    );
    scanned.extend(logs);

    let secrets = [
        SimConfig::CLIENT_SECRET,
        AUTHENTIK_TOKEN,
        WEBHOOK_SECRET,
        DB_PASSWORD,
        // An access token or client assertion: a JWT's base64url '{"' start.
        "eyJ",
        "Bearer ",
    ];
    for text in &scanned {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret:?} leaked in: {text}");
        }
    }
}
