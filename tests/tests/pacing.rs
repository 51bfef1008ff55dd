//! The shared write pace end to end (DESIGN invariant 5): a full sync into a
//! tenant whose real write budget is far below the configured one is throttled
//! at first, slows down, and ends with every object written; no throttled
//! write fails or is dead-lettered.

use entra_sync_sim::authentik::Mode;
use entra_sync_sim::graph::{SimConfig, ThrottleConfig};
use entra_sync_store::runs::RunState;
use entra_sync_tests::{ProviderSpec, Stack, new_group, new_user};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_write_is_retried_until_written_never_failed() {
    // Configured: 100 writes per second. The tenant: 10, then 10 per second
    // (a 20-member bind PATCH is charged 7 of them).
    let mut spec = ProviderSpec::new("p");
    spec.write_budget = (100, 1);
    let graph = SimConfig {
        throttle: ThrottleConfig {
            write_quota: 10,
            write_window: Duration::from_secs(1),
            ..ThrottleConfig::default()
        },
        ..SimConfig::default()
    };
    let stack = Stack::start_with(vec![spec], graph).await;
    let sim = &stack.authentik.sim;
    let group = sim.create_group(new_group("paced"), Mode::Silent);
    for i in 0..30 {
        let pk = sim.create_user(new_user(&format!("paced{i:02}")), Mode::Silent);
        sim.add_member(group, pk, Mode::Silent);
    }
    let producer = stack.producer();
    let workers = [stack.worker(8), stack.worker(8)];
    let store = &stack.db.store;
    let written = || async {
        let state = stack.graph().state();
        let users = state["users"].as_array().map_or(0, Vec::len);
        let members = state["groups"][0]["id"]
            .as_str()
            .map_or(0, |id| stack.graph().members(id).len());
        let idle = store
            .latest_run("p")
            .await
            .unwrap()
            .is_some_and(|r| r.state != RunState::Running);
        users == 30 && members == 30 && idle
    };
    stack
        .eventually("everything written", Duration::from_secs(120), written)
        .await;
    let run = store.latest_run("p").await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Done);
    assert_eq!(run.objects_failed, 0);
    assert!(
        stack.graph().counters().status(429) > 0,
        "the tenant throttled"
    );
    assert_eq!(store.dead_letter_count("p").await.unwrap(), 0);
    let conn = store.conn().await.unwrap();
    let failed: i64 = conn
        .query_one(
            "SELECT count(*) FROM object_outcomes WHERE result NOT IN ('ok', 'retrying', 'waiting')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(failed, 0, "no outcome other than done or waiting");
    producer.stop().await;
    for w in workers {
        w.stop().await;
    }
}
