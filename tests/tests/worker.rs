//! The worker loop against the real RabbitMQ and PostgreSQL and the simulators:
//! tasks are published the way the producer publishes them.

use entra_sync_core::ids::AkUserPk;
use entra_sync_core::task::{ObjectRef, Task, TaskReason};
use entra_sync_queue::{Lane, Publisher};
use entra_sync_sim::authentik::{Mode, NewUser};
use entra_sync_sim::graph::FaultConfig;
use entra_sync_tests::{ProviderSpec, Stack};
use std::time::Duration;

async fn publisher(stack: &Stack) -> Publisher {
    let conn = entra_sync_queue::connect(&stack.vhost.url()).await.unwrap();
    let publisher = Publisher::open(&conn, Stack::topology()).await.unwrap();
    std::mem::forget(conn); // the publisher's channel lives on the connection
    publisher
}

fn user(n: u32) -> NewUser {
    NewUser {
        username: format!("user{n}"),
        name: format!("User {n}"),
        email: format!("user{n}@contoso.com"),
        is_active: true,
        ..Default::default()
    }
}

fn user_task(provider: &str, pk: i64) -> Task {
    Task::new(provider, ObjectRef::User(AkUserPk(pk)), TaskReason::Event)
}

async fn outcomes(stack: &Stack, result: &str) -> i64 {
    let conn = stack.db.store.conn().await.unwrap();
    conn.query_one(
        "SELECT count(*) FROM object_outcomes WHERE result = $1",
        &[&result],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_direct_task_creates_the_user_and_records_the_outcome() {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let pk = stack.authentik.sim.create_user(user(1), Mode::Silent);
    let worker = stack.worker(2);
    publisher(&stack)
        .await
        .publish(Lane::Direct, &user_task("p", pk))
        .await
        .unwrap();
    stack
        .eventually("user created in Entra", Duration::from_secs(10), || async {
            stack.graph().state()["users"].as_array().unwrap().len() == 1
        })
        .await;
    stack
        .eventually("outcome recorded", Duration::from_secs(5), || async {
            outcomes(&stack, "ok").await == 1
        })
        .await;
    let users = stack.graph().state()["users"].clone();
    assert_eq!(users[0]["userPrincipalName"], "user1@contoso.com");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_task_is_dead_lettered_with_its_reason_and_others_go_on() {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let pk = stack.authentik.sim.create_user(user(1), Mode::Silent);
    let worker = stack.worker(1);
    let publisher = publisher(&stack).await; // declares the topology first
    let conn = entra_sync_queue::connect(&stack.vhost.url()).await.unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .basic_publish(
            "e2e.tasks".into(),
            "direct".into(),
            Default::default(),
            br#"{"v":1,"provider":"p","kind":"user","object_id":"not-a-number","reason":"event"}"#,
            Default::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    publisher
        .publish(Lane::Direct, &user_task("p", pk))
        .await
        .unwrap();
    stack
        .eventually("dead letter recorded", Duration::from_secs(10), || async {
            let conn = stack.db.store.conn().await.unwrap();
            let row = conn
                .query_opt("SELECT reason FROM dead_letters", &[])
                .await
                .unwrap();
            row.is_some_and(|r| r.get::<_, String>(0).contains("not-a-number"))
        })
        .await;
    stack
        .eventually(
            "the valid task still ran",
            Duration::from_secs(10),
            || async { stack.graph().state()["users"].as_array().unwrap().len() == 1 },
        )
        .await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_graph_failures_are_retried_until_the_object_is_written() {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let pks: Vec<i64> = (0..5)
        .map(|n| stack.authentik.sim.create_user(user(n), Mode::Silent))
        .collect();
    // An outage longer than the Graph client's inline retries.
    stack.graph().set_faults(FaultConfig {
        seed: 7,
        error_rate: 1.0,
        error_statuses: vec![503],
        ..Default::default()
    });
    let worker = stack.worker(2);
    let publisher = publisher(&stack).await;
    for pk in &pks {
        publisher
            .publish(Lane::Bulk, &user_task("p", *pk))
            .await
            .unwrap();
    }
    stack
        .eventually("a retry was scheduled", Duration::from_secs(20), || async {
            outcomes(&stack, "retrying").await > 0
        })
        .await;
    stack.graph().set_faults(FaultConfig::default());
    stack
        .eventually(
            "every user created despite 503s",
            Duration::from_secs(30),
            || async { stack.graph().state()["users"].as_array().unwrap().len() == 5 },
        )
        .await;
    stack
        .eventually("every user linked", Duration::from_secs(10), || async {
            stack
                .db
                .store
                .link_count::<entra_sync_core::ids::AkUserPk>("p")
                .await
                .unwrap()
                == 5
        })
        .await;
    assert!(
        outcomes(&stack, "retrying").await > 0,
        "some attempts were retried"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_mapping_halts_its_provider_after_few_writes_and_tasks_stop_quietly() {
    let mut broken = ProviderSpec::new("broken");
    broken.mappings.push((
        "50-typo".into(),
        "user".into(),
        "return {\"display_name\": user.no_such_field}".into(),
    ));
    let stack = Stack::start(vec![broken]).await;
    let pks: Vec<i64> = (0..30)
        .map(|n| stack.authentik.sim.create_user(user(n), Mode::Silent))
        .collect();
    let worker = stack.worker(4);
    let publisher = publisher(&stack).await;
    for pk in &pks {
        publisher
            .publish(Lane::Bulk, &user_task("broken", *pk))
            .await
            .unwrap();
    }
    stack
        .eventually("provider halted", Duration::from_secs(10), || async {
            stack.db.store.halt_of("broken").await.unwrap().is_some()
        })
        .await;
    let halt = stack.db.store.halt_of("broken").await.unwrap().unwrap();
    assert!(
        halt.reason.contains("50-typo"),
        "reason names the mapping: {}",
        halt.reason
    );
    // Let the rest of the queue drain: dropped quietly, no write, no flood of errors.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.graph().mutating_requests(), 0);
    assert_eq!(
        outcomes(&stack, "halted").await,
        1,
        "one halted outcome, not one per task"
    );
    assert_eq!(outcomes(&stack, "failed").await, 0);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_direct_task_overtakes_a_bulk_backlog() {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let bulk: Vec<i64> = (0..80)
        .map(|n| stack.authentik.sim.create_user(user(n), Mode::Silent))
        .collect();
    let urgent = stack.authentik.sim.create_user(user(999), Mode::Silent);
    // Each write takes ~100 ms and the worker does one at a time: an 8 s backlog.
    stack.graph().set_faults(FaultConfig {
        latency_min_ms: 100,
        latency_max_ms: 100,
        ..Default::default()
    });
    let publisher = publisher(&stack).await;
    for pk in &bulk {
        publisher
            .publish(Lane::Bulk, &user_task("p", *pk))
            .await
            .unwrap();
    }
    let worker = stack.worker(1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    publisher
        .publish(Lane::Direct, &user_task("p", urgent))
        .await
        .unwrap();
    let created = |upn: &str| {
        stack.graph().state()["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["userPrincipalName"] == upn)
    };
    stack
        .eventually(
            "the direct task is done",
            Duration::from_secs(5),
            || async { created("user999@contoso.com") },
        )
        .await;
    let bulk_done = stack.graph().state()["users"].as_array().unwrap().len() - 1;
    assert!(
        bulk_done < 40,
        "the direct task waited behind {bulk_done} of 80 bulk tasks"
    );
    worker.stop().await;
}
