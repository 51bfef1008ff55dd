//! Retries that lose nothing, against the shared RabbitMQ and PostgreSQL and
//! the simulators: throttling never uses up attempts, the broker's own dead
//! letters are recorded, and a stalled phase is republished (issue 10).

use entra_sync_core::ids::AkUserPk;
use entra_sync_core::pace::Ceiling;
use entra_sync_core::task::{ObjectKind, ObjectRef, Task, TaskReason};
use entra_sync_queue::{Lane, Publisher, policy};
use entra_sync_sim::authentik::Mode;
use entra_sync_sim::graph::{SimConfig, ThrottleConfig};
use entra_sync_store::runs::{RunState, RunTrigger};
use entra_sync_tests::{ProviderSpec, Stack, new_user};
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicNackOptions, QueuePurgeOptions};
use lapin::types::FieldTable;
use std::time::Duration;

async fn count(stack: &Stack, sql: &str) -> i64 {
    let conn = stack.db.store.conn().await.unwrap();
    conn.query_one(sql, &[]).await.unwrap().get(0)
}

async fn assert_converged(stack: &Stack, provider: &str) {
    let expected = stack.expected(provider).await;
    assert_eq!(stack.actual(0, &expected), expected, "Entra differs");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_storm_longer_than_every_attempt_dead_letters_nothing() {
    // Graph takes one write per 11 s: its Retry-After is longer than the
    // client waits inline, so the 429s reach the worker. The provider's own
    // budget believes in 3,000 writes per 150 s.
    let graph = SimConfig {
        throttle: ThrottleConfig {
            write_quota: 2,
            write_window: Duration::from_secs(22),
            ..ThrottleConfig::default()
        },
        ..SimConfig::default()
    };
    let stack = Stack::start_with(vec![ProviderSpec::new("entra")], graph).await;
    let sim = &stack.authentik.sim;
    for i in 0..4 {
        sim.create_user(new_user(&format!("u{i:02}")), Mode::Silent);
    }
    // max_attempts 5 with backoff from 200 ms: about 3 s of attempts, against
    // a storm of over 20 s.
    let services = stack.services_unsettled();
    stack
        .eventually("the first full sync ended", Duration::from_secs(120), || async {
            matches!(stack.db.store.latest_run("entra").await.unwrap(), Some(r) if r.state != RunState::Running)
        })
        .await;
    let run = stack.db.store.latest_run("entra").await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Done, "{run:?}");
    assert_eq!(run.objects_failed, 0, "{run:?}");
    assert_eq!(count(&stack, "SELECT count(*) FROM dead_letters").await, 0);
    assert!(
        count(
            &stack,
            "SELECT count(*) FROM object_outcomes WHERE result = 'waiting' AND detail->>'waiting_for' = 'throttled'"
        )
        .await
            > 0,
        "the storm made tasks wait"
    );
    assert_eq!(
        count(
            &stack,
            "SELECT COALESCE(max(attempt), 0)::bigint FROM object_outcomes"
        )
        .await,
        0,
        "waiting never counted an attempt"
    );
    assert_converged(&stack, "entra").await;
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_the_broker_dead_letters_is_recorded_and_ends_its_run_object() {
    let stack = Stack::start(vec![ProviderSpec::new("entra")]).await;
    let store = &stack.db.store;
    store.register_provider("entra", "h").await.unwrap();
    let run = store
        .start_run("entra", RunTrigger::OnDemand)
        .await
        .unwrap()
        .id();
    store
        .plan_run_objects(run, ObjectKind::User, &["41".to_owned()])
        .await
        .unwrap();
    let topology = Stack::topology();
    policy::apply(&topology, &stack.vhost.url(), stack.vhost.management_url())
        .await
        .unwrap();
    let conn = entra_sync_queue::connect(&stack.vhost.url()).await.unwrap();
    let publisher = Publisher::open(&conn, topology.clone()).await.unwrap();
    let mut task = Task::new("entra", ObjectRef::User(AkUserPk(41)), TaskReason::FullSync);
    task.run_id = Some(run);
    publisher.publish(Lane::Bulk, &task).await.unwrap();
    // A task that kills every worker that takes it: handed out and returned
    // until the broker's delivery limit dead-letters it.
    let channel = conn.create_channel().await.unwrap();
    let mut crashing = channel
        .basic_consume(
            topology.queue(Lane::Bulk).as_str().into(),
            "crash".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut deliveries = 0u32;
    while let Ok(Some(Ok(delivery))) =
        tokio::time::timeout(Duration::from_secs(3), crashing.next()).await
    {
        deliveries += 1;
        let requeue = BasicNackOptions {
            requeue: true,
            ..Default::default()
        };
        delivery.acker.nack(requeue).await.unwrap();
    }
    assert!(
        (2..=policy::DELIVERY_LIMIT + 1).contains(&deliveries),
        "handed out until the limit: {deliveries}"
    );
    let worker = stack.worker(1);
    stack
        .eventually("the run object ended", Duration::from_secs(20), || async {
            store.run(run).await.unwrap().unwrap().objects_failed == 1
        })
        .await;
    assert_eq!(
        count(&stack, "SELECT count(*) FROM dead_letters WHERE reason LIKE '%delivery_limit%' AND object_id = '41'").await,
        1
    );
    let finished = store.run(run).await.unwrap().unwrap();
    assert_eq!(
        (finished.objects_total, finished.objects_failed),
        (1, 1),
        "{finished:?}"
    );
    assert_eq!(
        count(
            &stack,
            "SELECT count(*) FROM object_outcomes WHERE result = 'dead' AND object_id = '41'"
        )
        .await,
        1
    );
    // Parked, not lost, and recorded once.
    let parked = channel
        .queue_declare(
            topology.parked_queue().as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(parked.message_count(), 1);
    assert_eq!(count(&stack, "SELECT count(*) FROM dead_letters").await, 1);
    worker.stop().await;
}

/// Starts a producer with a 1 s stall timeout and no worker, waits until the
/// users phase is published, then loses its tasks (purges the queue).
async fn lose_the_users_phase(stack: &Stack) -> (entra_sync_tests::Service, uuid::Uuid) {
    let sim = &stack.authentik.sim;
    for i in 0..6 {
        sim.create_user(new_user(&format!("u{i}")), Mode::Silent);
    }
    let producer = stack.producer_with_stall_timeout(Duration::from_secs(1));
    let store = &stack.db.store;
    stack
        .eventually("users phase published", Duration::from_secs(30), || async {
            matches!(store.latest_run("entra").await.unwrap(), Some(r) if r.phase == "users")
        })
        .await;
    let run = store.latest_run("entra").await.unwrap().unwrap().id;
    let conn = entra_sync_queue::connect(&stack.vhost.url()).await.unwrap();
    let channel = conn.create_channel().await.unwrap();
    let queue = Stack::topology().queue(Lane::Bulk);
    let mut purged = 0;
    for _ in 0..100 {
        purged += channel
            .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
            .await
            .unwrap();
        if purged >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(purged, 6, "the users phase's tasks were lost");
    (producer, run)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_phase_is_republished_and_its_run_finishes() {
    let stack = Stack::start(vec![ProviderSpec::new("entra")]).await;
    let (producer, run) = lose_the_users_phase(&stack).await;
    let worker = stack.worker(2);
    let finished = stack.wait_for_run(run, Duration::from_secs(60)).await;
    assert_eq!(finished.state, RunState::Done, "{finished:?}");
    assert_eq!(finished.objects_failed, 0);
    let recovery = stack.db.store.stall_recovery(run).await.unwrap();
    let recovery = recovery.expect("the stall was recorded for status");
    assert_eq!(recovery.phase, "users");
    assert!(recovery.count >= 1);
    assert_converged(&stack, "entra").await;
    worker.stop().await;
    producer.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_phase_that_is_only_throttled_is_not_republished() {
    let stack = Stack::start(vec![ProviderSpec::new("entra")]).await;
    // The tenant is paused by a 429 before anything runs.
    let key =
        entra_sync_provider::budget::write_budget_key(SimConfig::TENANT_ID, SimConfig::CLIENT_ID);
    let store = &stack.db.store;
    let ceiling = Ceiling::quota(3000, Duration::from_secs(150));
    store
        .with_pace(&key, ceiling, |pace, now| {
            pace.throttled(ceiling, Duration::from_secs(3600), now)
        })
        .await
        .unwrap();
    let (producer, run) = lose_the_users_phase(&stack).await;
    // Many stall checks (every 200 ms, 1 s stall timeout) while throttled.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(store.stall_recovery(run).await.unwrap(), None);
    assert_eq!(
        store
            .pending_run_object_count(run, ObjectKind::User)
            .await
            .unwrap(),
        6
    );
    // Once the pause is over, the stall is seen and recovered.
    let conn = store.conn().await.unwrap();
    conn.execute("UPDATE rate_budgets SET throttled_until = NULL", &[])
        .await
        .unwrap();
    let worker = stack.worker(2);
    let finished = stack.wait_for_run(run, Duration::from_secs(60)).await;
    assert_eq!(finished.state, RunState::Done, "{finished:?}");
    assert!(store.stall_recovery(run).await.unwrap().is_some());
    worker.stop().await;
    producer.stop().await;
}
