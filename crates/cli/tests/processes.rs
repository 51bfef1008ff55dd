//! `entra-sync` processes against the real RabbitMQ and PostgreSQL and the
//! simulators: signals, crashes, health endpoints.

use entra_sync_sim::authentik::{Mode, NewUser};
use entra_sync_tests::{ProviderSpec, Stack};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spawn(config: &std::path::Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_entra-sync"))
        .args(args)
        .env("ENTRA_SYNC_CONFIG", config)
        .env_remove("DATABASE_URL")
        .env_remove("AMQP_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start entra-sync")
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

async fn wait_healthy(port: u16, child: &mut Child) {
    let url = format!("http://127.0.0.1:{port}/healthz");
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(&url).await
            && r.status().is_success()
        {
            return;
        }
        assert!(child.try_wait().unwrap().is_none(), "process exited early");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{url} not healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < within,
            "still running {within:?} after the signal"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_serves_health_and_metrics_and_exits_within_10_s_of_sigterm() {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    for n in 0..20 {
        stack.authentik.sim.create_user(
            NewUser {
                username: format!("u{n}"),
                name: format!("U {n}"),
                email: format!("u{n}@contoso.com"),
                is_active: true,
                ..Default::default()
            },
            Mode::Evented,
        );
    }
    let config = stack.process_config();
    let mut worker = spawn(&config.path, &["worker", "--concurrency", "2"]);
    wait_healthy(config.worker_port, &mut worker).await;
    let ready = reqwest::get(format!("http://127.0.0.1:{}/readyz", config.worker_port))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", config.worker_port))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("entra_sync_worker_tasks_in_flight"));
    signal(&worker, "TERM");
    let status = wait_exit(&mut worker, Duration::from_secs(10)).await;
    assert!(status.success(), "clean exit after SIGTERM: {status}");
}
