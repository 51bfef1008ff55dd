//! `entra-sync` processes through a PostgreSQL or a RabbitMQ outage mid-sync,
//! each on a throwaway server of its own (the shared ones are never
//! stopped): every process stays up, the run ends `done`, Entra is exact,
//! nothing is dead-lettered and `sync --wait` exits 0 (issue 10).

use entra_sync_queue::testing::TestVhost;
use entra_sync_sim::authentik::{Mode, NewGroup, NewUser};
use entra_sync_sim::graph::{FaultConfig, SimConfig};
use entra_sync_store::runs::{Run, RunState};
use entra_sync_store::testing::TestDatabase;
use entra_sync_tests::throwaway::{ThrowawayPostgres, ThrowawayRabbit};
use entra_sync_tests::{ProviderSpec, Stack};
use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process that is killed when dropped, e.g. when an assertion fails.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(config: &std::path::Path, args: &[&str]) -> Killed {
    let child = Command::new(env!("CARGO_BIN_EXE_entra-sync"))
        .args(args)
        .env("ENTRA_SYNC_CONFIG", config)
        .env_remove("DATABASE_URL")
        .env_remove("AMQP_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start entra-sync");
    Killed(child)
}

/// The provider's latest run, or `None` while the database does not answer.
async fn latest(stack: &Stack) -> Option<Run> {
    stack.db.store.latest_run("entra").await.ok().flatten()
}

/// 60 users in two groups, and a Graph that answers slowly enough for the
/// outage to fall mid-sync.
fn organisation(stack: &Stack) {
    let sim = &stack.authentik.sim;
    let staff = sim.create_group(
        NewGroup {
            name: "staff".into(),
            ..Default::default()
        },
        Mode::Silent,
    );
    let ops = sim.create_group(
        NewGroup {
            name: "ops".into(),
            ..Default::default()
        },
        Mode::Silent,
    );
    for n in 0..60 {
        let pk = sim.create_user(
            NewUser {
                username: format!("u{n:02}"),
                name: format!("U {n}"),
                email: format!("u{n:02}@contoso.com"),
                is_active: true,
                ..Default::default()
            },
            Mode::Silent,
        );
        sim.add_member(if n % 2 == 0 { staff } else { ops }, pk, Mode::Silent);
    }
    stack.graph().set_faults(FaultConfig {
        latency_min_ms: 200,
        latency_max_ms: 300,
        ..Default::default()
    });
}

/// Runs a producer, a worker and `sync --wait`; brings on `outage` once the
/// first full sync is under way; then checks that everything rode it out.
async fn ride_out(stack: &Stack, outage: impl Future<Output = ()>) {
    organisation(stack);
    let config = stack.process_config();
    let mut producer = spawn(&config.path, &["producer"]);
    let mut worker = spawn(&config.path, &["worker"]);
    let started = Instant::now();
    while latest(stack).await.is_none_or(|r| r.objects_done < 3) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no sync started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut sync = Command::new(env!("CARGO_BIN_EXE_entra-sync"))
        .args(["sync", "--provider", "entra", "--wait", "--timeout", "240"])
        .env("ENTRA_SYNC_CONFIG", &config.path)
        .env_remove("DATABASE_URL")
        .env_remove("AMQP_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map(Killed)
        .expect("start entra-sync sync");
    // The outage comes once `sync` has found the run it waits for.
    let stdout = sync.0.stdout.take().expect("piped stdout");
    let (lines, line) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            println!("sync: {l}");
            let _ = lines.send(l);
        }
    });
    let first_line = tokio::task::spawn_blocking(move || line.recv())
        .await
        .unwrap()
        .expect("sync prints the run it waits for");
    assert!(first_line.contains("is already running"), "{first_line}");
    outage.await;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = sync.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "sync --wait did not end"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        producer.0.try_wait().unwrap().is_none(),
        "the producer stays up"
    );
    assert!(
        worker.0.try_wait().unwrap().is_none(),
        "the worker stays up"
    );
    assert_eq!(status.code(), Some(0), "sync --wait exits 0");
    let run = latest(stack).await.expect("the database answers");
    assert_eq!(
        (run.state, run.objects_failed),
        (RunState::Done, 0),
        "{run:?}"
    );
    let conn = stack.db.store.conn().await.unwrap();
    let dead: i64 = conn
        .query_one("SELECT count(*) FROM dead_letters", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(dead, 0, "nothing dead-lettered");
    let expected = stack.expected("entra").await;
    assert_eq!(stack.actual(0, &expected), expected, "Entra is exact");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgresql_stopped_for_10_s_mid_sync_loses_nothing() {
    let pg = ThrowawayPostgres::start().await;
    let db = TestDatabase::migrated_at(&pg.url()).await;
    let stack = Stack::start_on(
        vec![ProviderSpec::new("entra")],
        SimConfig::default(),
        db,
        TestVhost::new().await,
    )
    .await;
    ride_out(&stack, async {
        pg.stop().await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        pg.start_again().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_stopped_and_started_mid_sync_loses_nothing() {
    let rabbit = ThrowawayRabbit::start().await;
    let vhost = TestVhost::on(&rabbit.amqp_addr(), &rabbit.management_url()).await;
    let stack = Stack::start_on(
        vec![ProviderSpec::new("entra")],
        SimConfig::default(),
        TestDatabase::migrated().await,
        vhost,
    )
    .await;
    ride_out(&stack, async {
        rabbit.stop_app().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        rabbit.start_app().await;
    })
    .await;
}
