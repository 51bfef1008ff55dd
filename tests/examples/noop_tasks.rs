//! Per-task headroom (BENCHMARKS.md scenario 3): how many no-op tasks per
//! second the pipeline carries end to end, from the first publish to the last
//! outcome recorded, against the target of 5,000/s with 2 workers.
//!
//! Builds a converged directory (`users` users, `groups` groups of 10
//! members) and lets a first full sync link it. Then, with the producer
//! stopped, it starts a run of its own and publishes one bulk task per user
//! and group of it, with confirms, as a full sync's phase does
//! ([`Publisher::publish_all`]). A full sync would publish none of them (nothing differs), so each is
//! a no-op: the workers (each its own service with its own pools, as worker
//! processes are) decode it, check the halt, take the object's lock, read
//! authentik, the link and the observation, plan, and record the outcome
//! before the ack. Graph must see no write, and every task an outcome.
//!
//! `cargo run --release -p entra-sync-tests --example noop_tasks -- users=20000 groups=2000 workers=2 concurrency=16`

use entra_sync_core::task::{ObjectKind, ObjectRef, Task, TaskReason};
use entra_sync_queue::{Lane, Publisher};
use entra_sync_sim::graph::{SimConfig, ThrottleConfig};
use entra_sync_store::runs::{RunStart, RunState, RunTrigger};
use entra_sync_tests::bench::{Args, converged_directory, first_full_sync};
use entra_sync_tests::{ProviderSpec, Stack};
use std::time::{Duration, Instant};

/// Issue 11's target for no-op tasks per second, 2 workers.
const TARGET_PER_SECOND: f64 = 5_000.0;

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let users: usize = args.get("users", 20_000);
    let groups: usize = args.get("groups", 2_000);
    let (workers, concurrency) = args.workers();
    let graph = SimConfig {
        throttle: ThrottleConfig::disabled(),
        ..SimConfig::default()
    };
    let stack = Stack::start_with(vec![ProviderSpec::new("bench")], graph).await;
    let built = converged_directory(&stack, "bench", users, groups).await;
    first_full_sync(&stack, "bench").await.stop().await;

    let store = &stack.db.store;
    let RunStart::Started(run) = store
        .start_run("bench", RunTrigger::OnDemand)
        .await
        .unwrap()
    else {
        panic!("a run is still running");
    };
    let tasks: Vec<ObjectRef> = built
        .users
        .iter()
        .map(|&pk| ObjectRef::User(entra_sync_core::ids::AkUserPk(pk)))
        .chain(built.groups.iter().map(|&pk| ObjectRef::Group(pk)))
        .collect();
    for kind in [ObjectKind::User, ObjectKind::Group] {
        let ids: Vec<String> = tasks
            .iter()
            .filter(|o| o.kind() == kind)
            .map(|o| o.id_string())
            .collect();
        store.plan_run_objects(run, kind, &ids).await.unwrap();
    }
    let connection = entra_sync_queue::connect(&stack.vhost.url()).await.unwrap();
    let publisher = Publisher::open(&connection, Stack::topology())
        .await
        .unwrap();
    let running: Vec<_> = (0..workers)
        .map(|_| stack.worker_with_own_pool(concurrency))
        .collect();
    // Let the workers open their consumers.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes_before = stack.graph().mutating_requests();
    let authentik_before = stack.authentik.sim.stats().api_requests;
    let transactions_before = transactions(&stack).await;

    let started = Instant::now();
    let bodies: Vec<Task> = tasks
        .iter()
        .map(|&object| {
            let mut task = Task::new("bench", object, TaskReason::FullSync);
            task.run_id = Some(run);
            task
        })
        .collect();
    publisher.publish_all(Lane::Bulk, &bodies).await.unwrap();
    let published = started.elapsed();
    while pending(&stack, run).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "tasks still pending after 600 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();

    let writes = stack.graph().mutating_requests() - writes_before;
    let authentik_reads = stack.authentik.sim.stats().api_requests - authentik_before;
    // PostgreSQL publishes a session's statistics within a second of its transactions.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let transactions = transactions(&stack).await - transactions_before;
    let conn = store.conn().await.unwrap();
    let outcomes: Vec<(String, String, i64)> = conn
        .query(
            "SELECT action, result, count(*) FROM object_outcomes WHERE run_id = $1 GROUP BY 1, 2",
            &[&run],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let queued = publisher.queued().await.unwrap();
    store.finish_run(run, RunState::Done, None).await.unwrap();
    for worker in running {
        worker.stop().await;
    }
    let n = tasks.len() as f64;
    let rate = n / took.as_secs_f64();
    println!(
        "users={users} groups={groups} workers={workers}x{concurrency} tasks={} outcomes={outcomes:?} Graph writes={writes} queued={queued}",
        tasks.len()
    );
    println!(
        "per task: {:.2} authentik requests, {:.2} PostgreSQL transactions (the whole database's, other sessions included)",
        authentik_reads as f64 / n,
        transactions as f64 / n
    );
    println!(
        "published in {:.2}s ({:.0}/s); all recorded after {:.2}s: {rate:.0} no-op tasks/s = {:.3} of the target {TARGET_PER_SECOND}/s",
        published.as_secs_f64(),
        n / published.as_secs_f64(),
        took.as_secs_f64(),
        rate / TARGET_PER_SECOND
    );
    assert_eq!(writes, 0, "no-op tasks must not write to Graph");
    assert_eq!(queued, 0, "every task was taken");
    assert_eq!(
        outcomes,
        vec![("unchanged".to_owned(), "ok".to_owned(), tasks.len() as i64)],
        "every task recorded once as an unchanged object"
    );
}

/// How many objects of the run wait for their outcome.
async fn pending(stack: &Stack, run: uuid::Uuid) -> i64 {
    let store = &stack.db.store;
    let mut total = 0;
    for kind in [ObjectKind::User, ObjectKind::Group] {
        total += store.pending_run_object_count(run, kind).await.unwrap();
    }
    total
}

/// Transactions committed or rolled back in the database so far, by every
/// session (a statement outside a transaction is one).
async fn transactions(stack: &Stack) -> i64 {
    let conn = stack.db.store.conn().await.unwrap();
    conn.query_one(
        "SELECT (xact_commit + xact_rollback)::int8 FROM pg_stat_database WHERE datname = current_database()",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}
