//! `entra-sync` processes against the real RabbitMQ and PostgreSQL and the
//! simulators: signals, crashes, health endpoints.

mod common;

use common::page;
use entra_sync_sim::authentik::{Mode, NewUser};
use entra_sync_store::runs::{Run, RunState};
use entra_sync_tests::{ProviderSpec, Stack};
use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A service command: it listens where its configuration says, and its stdout is dropped.
fn command(config: &std::path::Path, args: &[&str]) -> Command {
    let mut command = common::command(config, args);
    command
        .env_remove("ENTRA_SYNC_LISTEN")
        .stdout(Stdio::null());
    command
}

fn spawn(config: &std::path::Path, args: &[&str]) -> Child {
    command(config, args)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start entra-sync")
}

/// A process that is killed when dropped, e.g. when an assertion fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a worker logging JSON; returns it and a channel that receives the
/// address it logs serving health on. Its log lines are passed on to stderr.
fn spawn_worker(mut command: Command) -> (Killed, mpsc::Receiver<SocketAddr>) {
    let mut child = command
        .args(["--log-format", "json"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start entra-sync");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            eprintln!("{line}");
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let fields = &entry["fields"];
            if fields["message"] == "serving /healthz, /readyz, /metrics"
                && let Some(addr) = fields["addr"].as_str().and_then(|a| a.parse().ok())
            {
                let _ = tx.send(addr);
            }
        }
    });
    (Killed(child), rx)
}

/// The address `child` logged serving health on.
async fn logged_addr(child: &mut Child, addr: &mpsc::Receiver<SocketAddr>) -> SocketAddr {
    let started = Instant::now();
    loop {
        if let Ok(addr) = addr.try_recv() {
            return addr;
        }
        assert!(child.try_wait().unwrap().is_none(), "process exited early");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no health address logged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether a full sync has ended, however it ended.
fn ended(run: &Run) -> bool {
    run.state != RunState::Running
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
async fn sigterm_mid_sync_stops_a_worker_within_10_s_and_loses_no_task() {
    use entra_sync_sim::graph::FaultConfig;
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    for n in 0..150 {
        stack.authentik.sim.create_user(
            NewUser {
                username: format!("u{n}"),
                name: format!("U {n}"),
                email: format!("u{n}@contoso.com"),
                is_active: true,
                ..Default::default()
            },
            Mode::Silent,
        );
    }
    stack.graph().set_faults(FaultConfig {
        latency_min_ms: 50,
        latency_max_ms: 100,
        ..Default::default()
    });
    let config = stack.process_config();
    let mut worker = spawn(&config.path, &["worker", "--concurrency", "4"]);
    wait_healthy(config.worker_port, &mut worker).await;
    let ready = reqwest::get(format!("http://127.0.0.1:{}/readyz", config.worker_port))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let mut producer = spawn(&config.path, &["producer"]);
    wait_healthy(config.producer_port, &mut producer).await;
    let in_flight = |r: &Run| r.objects_done >= 20;
    stack
        .wait_for_latest_run("p", "tasks in flight", Duration::from_secs(60), in_flight)
        .await;
    let metrics = page(format!("http://127.0.0.1:{}/metrics", config.worker_port)).await;
    assert!(
        metrics
            .contains("entra_sync_worker_tasks_total{provider=\"p\",kind=\"user\",result=\"ok\"}")
    );
    signal(&worker, "TERM");
    let status = wait_exit(&mut worker, Duration::from_secs(10)).await;
    assert!(status.success(), "clean exit after SIGTERM: {status}");
    // A new worker picks up what the stopped one requeued; nothing is lost.
    let other = stack.process_config();
    let mut replacement = spawn(&other.path, &["worker", "--concurrency", "4"]);
    let run = stack
        .wait_for_latest_run("p", "the sync ends", Duration::from_secs(90), ended)
        .await;
    assert_eq!(
        (run.state, run.objects_failed),
        (RunState::Done, 0),
        "{run:?}"
    );
    assert_eq!(
        stack.graph().state()["users"].as_array().unwrap().len(),
        150
    );
    signal(&producer, "TERM");
    let status = wait_exit(&mut producer, Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "producer exits cleanly after SIGTERM: {status}"
    );
    let _ = replacement.kill();
    let _ = replacement.wait();
}

/// Runs `entra-sync ARGS` with `config`; (exit code, stdout).
fn run_cli(config: &std::path::Path, args: &[&str]) -> (i32, String) {
    let (code, stdout, _) = common::run(config, args);
    (code, stdout)
}

/// A producer and a worker process on `stack`, each with its own ports; killed
/// when the returned guard drops.
fn spawn_producer_and_worker(stack: &Stack) -> impl Drop {
    let producer = spawn(&stack.process_config().path, &["producer"]);
    let worker = spawn(&stack.process_config().path, &["worker"]);
    kill_on_drop(vec![producer, worker])
}

/// Creates one authentik user (silently) for each name; their pks.
fn silent_users(stack: &Stack, names: impl Iterator<Item = String>) -> Vec<i64> {
    let sim = &stack.authentik.sim;
    names
        .map(|name| sim.create_user(entra_sync_tests::new_user(&name), Mode::Silent))
        .collect()
}

fn kill_on_drop(children: Vec<Child>) -> impl Drop {
    struct Killer(Vec<Child>);
    impl Drop for Killer {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    Killer(children)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_worker_processes_converge_exactly_when_one_is_killed_halfway() {
    use entra_sync_sim::graph::FaultConfig;
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let sim = &stack.authentik.sim;
    let users = silent_users(&stack, (0..300).map(|n| format!("k{n:03}")));
    for g in 0..4 {
        let group = sim.create_group(
            entra_sync_tests::new_group(&format!("team{g}")),
            Mode::Silent,
        );
        for pk in users.iter().skip(g).step_by(4) {
            sim.add_member(group, *pk, Mode::Silent);
        }
    }
    // Slow Graph down so the kill lands in the middle of the users phase.
    stack.graph().set_faults(FaultConfig {
        latency_min_ms: 20,
        latency_max_ms: 40,
        ..Default::default()
    });
    let producer_config = stack.process_config();
    let a = stack.process_config();
    let b = stack.process_config();
    let mut victim = spawn(&a.path, &["worker", "--concurrency", "4"]);
    let survivor = spawn(&b.path, &["worker", "--concurrency", "4"]);
    let producer = spawn(&producer_config.path, &["producer"]);
    wait_healthy(a.worker_port, &mut victim).await;
    let a_third_done = |r: &Run| r.objects_done >= 100;
    stack
        .wait_for_latest_run("p", "a third done", Duration::from_secs(60), a_third_done)
        .await;
    signal(&victim, "KILL");
    victim.wait().unwrap();
    let _guard = kill_on_drop(vec![survivor, producer]);
    let run = stack
        .wait_for_latest_run("p", "the sync ends", Duration::from_secs(120), ended)
        .await;
    assert_eq!(run.state, RunState::Done, "{run:?}");
    assert_eq!(run.objects_failed, 0, "{run:?}");
    let expected = stack.expected("p").await;
    assert_eq!(stack.actual(0, &expected), expected);
    // Created exactly once each: a create repeated after the kill is adopted, not duplicated.
    assert_eq!(
        stack.graph().counters().with_status("POST", "users", 201),
        300
    );
    assert_eq!(
        stack
            .graph()
            .counters()
            .with_status("PATCH", "groups(uniqueName)", 201),
        4
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_wait_exit_codes_status_json_and_resume() {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let sim = &stack.authentik.sim;
    sim.create_user(entra_sync_tests::new_user("ok1"), Mode::Silent);
    let _services = spawn_producer_and_worker(&stack);
    let config = stack.config_path();
    let config = config.as_path();

    // Everything synced: 0.
    let (code, _) = run_cli(
        config,
        &["sync", "--provider", "p", "--wait", "--timeout", "60"],
    );
    assert_eq!(code, 0);

    // One object Graph rejects for good (a UPN on a domain the tenant has not verified): 1.
    let mut foreign = entra_sync_tests::new_user("stranger");
    foreign.email = "stranger@fabrikam.example".into();
    sim.create_user(foreign, Mode::Silent);
    let (code, _) = run_cli(
        config,
        &["sync", "--provider", "p", "--wait", "--timeout", "60"],
    );
    assert_eq!(code, 1);

    let (code, out) = run_cli(config, &["status", "--provider", "p", "--json"]);
    assert_eq!(code, 0);
    let status: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(status["name"], "p");
    assert_eq!(status["halted"], false);
    assert!(status["halt_reason"].is_null());
    let last = &status["last_full_sync"];
    assert_eq!(last["state"], "done");
    assert_eq!(last["objects_failed"], 1);
    assert!(
        last["id"].is_string() && last["started_at"].is_string() && last["finished_at"].is_string()
    );
    assert_eq!(
        last["objects_total"], 1,
        "only the new user: the unchanged one gets no task"
    );
    assert_eq!(status["links"]["users"], 1);
    assert_eq!(status["links"]["groups"], 0);
    assert_eq!(status["dead_letters"], 0);
    let failure = &status["recent_failures"][0];
    assert_eq!(failure["kind"], "user");
    assert!(
        failure["error"]
            .as_str()
            .unwrap()
            .contains("fabrikam.example"),
        "the failure says why: {failure}"
    );
    let (_, all) = run_cli(config, &["status", "--json"]);
    let all: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all["providers"][0]["name"], "p");

    // Halted: 2, until resumed.
    stack.db.store.halt("p", "test halt").await.unwrap();
    let (code, _) = run_cli(config, &["sync", "--provider", "p", "--wait"]);
    assert_eq!(code, 2);
    let (_, out) = run_cli(config, &["status", "--provider", "p", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["halted"], true);
    assert_eq!(status["halt_reason"], "test halt");
    let (code, _) = run_cli(config, &["resume", "--provider", "p"]);
    assert_eq!(code, 0);
    assert!(stack.db.store.halt_of("p").await.unwrap().is_none());

    // An unknown provider is an error naming it: 2.
    let out = Command::new(env!("CARGO_BIN_EXE_entra-sync"))
        .args(["sync", "--provider", "nope"])
        .env("ENTRA_SYNC_CONFIG", config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_with_one_configuration_both_run_and_serve_health() {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let config = stack.process_config();
    // One configuration for both, with `[worker] listen` left out.
    let text = std::fs::read_to_string(&config.path).unwrap();
    let worker_listen = format!("listen = \"127.0.0.1:{}\"\n", config.worker_port);
    assert!(text.contains(&worker_listen), "{text}");
    std::fs::write(&config.path, text.replace(&worker_listen, "")).unwrap();

    let (mut first, first_log) = spawn_worker(command(&config.path, &["worker"]));
    let (mut second, second_log) = spawn_worker(command(&config.path, &["worker"]));
    let first_addr = logged_addr(&mut first.0, &first_log).await;
    let second_addr = logged_addr(&mut second.0, &second_log).await;
    assert_ne!(first_addr, second_addr);
    wait_healthy(first_addr.port(), &mut first.0).await;
    wait_healthy(second_addr.port(), &mut second.0).await;
    for addr in [first_addr, second_addr] {
        let ready = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
        assert_eq!(ready.status(), 200, "{addr}");
    }

    // `--listen` gives a fixed address; one that is taken (ENTRA_SYNC_LISTEN
    // here) stops the process loudly.
    let fixed = entra_sync_tests::free_port();
    let (mut third, third_log) = spawn_worker(command(
        &config.path,
        &["worker", "--listen", &format!("127.0.0.1:{fixed}")],
    ));
    assert_eq!(logged_addr(&mut third.0, &third_log).await.port(), fixed);
    wait_healthy(fixed, &mut third.0).await;
    let taken = command(&config.path, &["worker"])
        .env("ENTRA_SYNC_LISTEN", first_addr.to_string())
        .output()
        .unwrap();
    assert_eq!(taken.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&taken.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {first_addr}")),
        "{stderr}"
    );

    for worker in [&first, &second, &third] {
        signal(&worker.0, "TERM");
    }
    for worker in [&mut first, &mut second, &mut third] {
        let status = wait_exit(&mut worker.0, Duration::from_secs(10)).await;
        assert!(status.success(), "clean exit after SIGTERM: {status}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_worker_processes_share_the_deletion_guard_and_resume_allow_deletions_lets_the_rest_through()
 {
    use entra_sync_store::providers::HaltKind;
    let mut spec = ProviderSpec::new("p");
    spec.deletion_threshold = 10;
    let stack = Stack::start(vec![spec]).await;
    let sim = &stack.authentik.sim;
    let users = silent_users(&stack, (0..40).map(|n| format!("d{n:02}")));
    let producer = stack.process_config();
    let (a, b) = (stack.process_config(), stack.process_config());
    let children = vec![
        spawn(&a.path, &["worker", "--concurrency", "4"]),
        spawn(&b.path, &["worker", "--concurrency", "4"]),
        spawn(&producer.path, &["producer"]),
    ];
    let _guard = kill_on_drop(children);
    stack.settle().await;
    assert_eq!(stack.graph().state()["users"].as_array().unwrap().len(), 40);

    // A bulk clean-up in authentik: 40 deletions, each with an event.
    for pk in &users {
        sim.delete_user(*pk, Mode::Evented);
    }
    let store = &stack.db.store;
    stack
        .eventually(
            "the guard halts the provider",
            Duration::from_secs(30),
            || async { store.halt_of("p").await.unwrap().is_some() },
        )
        .await;
    let halt = store.halt_of("p").await.unwrap().unwrap();
    assert_eq!(halt.kind, HaltKind::DeletionGuard);
    assert!(
        halt.reason.starts_with("deletion guard: 11 deletions or suspensions within 1h would exceed deletion_threshold 10;"),
        "{}",
        halt.reason
    );
    let conn = store.conn().await.unwrap();
    stack
        .eventually(
            "the granted deletions are recorded",
            Duration::from_secs(30),
            || async {
                let row = conn
                    .query_one(
                        "SELECT count(*) FROM object_outcomes WHERE action = 'deleted'",
                        &[],
                    )
                    .await
                    .unwrap();
                row.get::<_, i64>(0) == 10
            },
        )
        .await;
    assert_eq!(stack.requests("DELETE", "users/{id}"), 10);

    // Plain resume would keep the guard; --allow-deletions lets the rest through.
    let (code, out) = run_cli(
        &stack.config_path(),
        &["resume", "--provider", "p", "--allow-deletions"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("provider p resumed"), "{out}");
    stack
        .eventually(
            "every deleted user is gone from Entra",
            Duration::from_secs(60),
            || async {
                stack.graph().state()["users"]
                    .as_array()
                    .unwrap()
                    .is_empty()
            },
        )
        .await;
    assert_eq!(stack.requests("DELETE", "users/{id}"), 40);
    assert!(store.halt_of("p").await.unwrap().is_none());
}

/// Runs `entra-sync resume --provider p --allow-deletions`; its exit code and stderr.
fn resume_allowing_deletions(config: &std::path::Path) -> (Option<i32>, String) {
    let out = command(config, &["resume", "--provider", "p", "--allow-deletions"])
        .output()
        .expect("run entra-sync");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_allow_deletions_on_a_provider_not_halted_by_the_guard_changes_nothing() {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let store = &stack.db.store;
    let config = stack.config_path();

    let (code, stderr) = resume_allowing_deletions(&config);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("provider p is not halted by the deletion guard (it is not halted)"),
        "{stderr}"
    );

    store.register_provider("p", "h").await.unwrap();
    store.halt("p", "a mapping is broken").await.unwrap();
    let (code, stderr) = resume_allowing_deletions(&config);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("not halted by the deletion guard (it is halted: a mapping is broken)"),
        "{stderr}"
    );
    let halt = store.halt_of("p").await.unwrap().expect("still halted");
    assert_eq!(halt.reason, "a mapping is broken");
    assert!(
        store.latest_run("p").await.unwrap().is_none(),
        "no full sync started"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_graph_refuses_makes_sync_wait_exit_1_without_halting() {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let sim = &stack.authentik.sim;
    let admin = sim.create_user(entra_sync_tests::new_user("admin"), Mode::Silent);
    let _services = spawn_producer_and_worker(&stack);
    let config = stack.config_path();
    let sync = ["sync", "--provider", "p", "--wait", "--timeout", "60"];
    assert_eq!(run_cli(&config, &sync).0, 0);

    // A user holding a privileged admin role: Graph refuses to change it.
    let link = stack
        .db
        .store
        .link("p", entra_sync_core::ids::AkUserPk(admin))
        .await
        .unwrap()
        .expect("admin linked");
    stack.graph().refuse_writes(link.entra_id.as_str());
    let renamed = entra_sync_sim::authentik::UserPatch {
        name: Some("Admin Renamed".into()),
        ..Default::default()
    };
    sim.update_user(admin, renamed, Mode::Silent);
    assert_eq!(run_cli(&config, &sync).0, 1, "one object failed");
    assert!(stack.db.store.halt_of("p").await.unwrap().is_none());
}
