//! The shared adaptive write budget, through PostgreSQL and the Graph
//! simulator (DESIGN invariant 5): workers share one pace, a 429 cuts it and
//! success raises it again, and direct writes are granted ahead of bulk ones.

mod common;

use entra_sync_core::pace::{Ceiling, Urgency};
use entra_sync_graph::{
    GraphClient, GraphConfig, RequestCost, RequestGate, RetryPolicy, ThrottleSignals,
};
use entra_sync_provider::budget::{BudgetGate, with_urgency};
use entra_sync_sim::graph::{GraphSim, SimConfig, ThrottleConfig};
use entra_sync_store::Store;
use entra_sync_store::testing::TestDatabase;
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;

const WRITE: RequestCost = RequestCost {
    resource_units: 1,
    writes: 1,
};

/// A second connection pool to the same database: another worker process.
fn other_process(db: &TestDatabase) -> Store {
    Store::connect(&db.url_with_schema(), 2, None).unwrap()
}

fn gate(store: Store, quota: u32, window: Duration) -> Arc<BudgetGate> {
    Arc::new(BudgetGate::writes(
        store,
        SimConfig::TENANT_ID,
        SimConfig::CLIENT_ID,
        quota,
        window,
    ))
}

/// The shared pace's current rate (writes per second).
async fn rate(store: &Store, quota: u32, window: Duration) -> f64 {
    let key = format!(
        "graph-writes:{}:{}",
        SimConfig::TENANT_ID,
        SimConfig::CLIENT_ID
    );
    store
        .with_pace(&key, Ceiling::quota(quota, window), |pace, _| pace.rate)
        .await
        .unwrap()
}

fn client(sim: &GraphSim, gate: Arc<BudgetGate>) -> GraphClient {
    let config = GraphConfig {
        retry: RetryPolicy::none(),
        ..common::graph_config(&sim.base_url())
    };
    GraphClient::with_gate(config, gate).unwrap()
}

fn user(alias: &str) -> Map<String, Value> {
    json!({
        "accountEnabled": true,
        "displayName": format!("User {alias}"),
        "mailNickname": alias,
        "userPrincipalName": format!("{alias}@contoso.com"),
        "passwordProfile": {"forceChangePasswordNextSignIn": true, "password": "Str0ng!Passw0rd"}
    })
    .as_object()
    .cloned()
    .unwrap()
}

async fn sim_with_budget(quota: u32, window: Duration) -> GraphSim {
    GraphSim::start(SimConfig {
        throttle: ThrottleConfig {
            write_quota: quota,
            write_window: window,
            ..ThrottleConfig::default()
        },
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn two_workers_share_one_budget() {
    let db = TestDatabase::migrated().await;
    // Each worker is configured with 10 writes, 10 more per second; the tenant
    // takes a little more than that in all, far less than both together.
    let window = Duration::from_secs(1);
    let sim = sim_with_budget(12, window).await;
    let workers = [
        client(&sim, gate(db.store.clone(), 10, window)),
        client(&sim, gate(other_process(&db), 10, window)),
    ];
    let mut writes = Vec::new();
    for (w, graph) in workers.iter().enumerate() {
        for i in 0..20 {
            let graph = graph.clone();
            writes.push(tokio::spawn(async move {
                graph.create_user(&user(&format!("w{w}u{i}"))).await
            }));
        }
    }
    for write in writes {
        write.await.unwrap().expect("no write is throttled");
    }
    assert_eq!(sim.counters().status(429), 0, "{:?}", sim.counters());
    assert_eq!(sim.counters().get("POST", "users"), 40);
}

#[tokio::test]
async fn the_pace_drops_after_429s_and_recovers_while_writes_succeed() {
    let db = TestDatabase::migrated().await;
    // Configured for 100 writes per second; the tenant really takes 5, 5 more per second.
    let window = Duration::from_secs(1);
    let sim = sim_with_budget(5, window).await;
    let gate = gate(db.store.clone(), 100, window);
    let graph = client(&sim, gate.clone());
    let mut writes = Vec::new();
    for i in 0..20 {
        let graph = graph.clone();
        writes.push(tokio::spawn(async move {
            graph.create_user(&user(&format!("u{i}"))).await
        }));
    }
    for write in writes {
        let _ = write.await.unwrap();
    }
    assert!(sim.counters().status(429) > 0, "the tenant throttled");
    let cut = rate(&db.store, 100, window).await;
    assert!(cut < 100.0, "the shared rate dropped: {cut}");
    // Writes succeed again (answers without throttle headers): the rate rises.
    for _ in 0..40 {
        gate.observe(WRITE, 201, &ThrottleSignals::default());
        with_urgency(Urgency::Bulk, gate.before(WRITE)).await;
    }
    let recovered = rate(&db.store, 100, window).await;
    assert!(recovered > cut, "{recovered} after {cut}");
}

#[tokio::test]
async fn a_high_limit_percentage_slows_every_worker_down() {
    let db = TestDatabase::migrated().await;
    let window = Duration::from_secs(150);
    let one = gate(db.store.clone(), 3_000, window);
    one.before(WRITE).await;
    let high = ThrottleSignals {
        limit_percentage: Some(0.98),
        ..ThrottleSignals::default()
    };
    one.observe(WRITE, 201, &high);
    one.before(WRITE).await;
    let slowed = rate(&db.store, 3_000, window).await;
    assert!(slowed < 20.0, "{slowed}");
    // The other worker is paced by the same, slowed budget.
    assert_eq!(rate(&other_process(&db), 3_000, window).await, slowed);
}

#[tokio::test]
async fn a_direct_write_is_granted_ahead_of_queued_bulk_writes() {
    let db = TestDatabase::migrated().await;
    // 2 writes per second, a burst of 2.
    let window = Duration::from_secs(1);
    let bulk_gate = gate(db.store.clone(), 2, window);
    let direct_gate = gate(other_process(&db), 2, window);
    let order = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let mut bulk = Vec::new();
    for i in 0..6 {
        let (gate, order) = (bulk_gate.clone(), order.clone());
        bulk.push(tokio::spawn(with_urgency(Urgency::Bulk, async move {
            gate.before(WRITE).await;
            order.lock().await.push(format!("bulk {i}"));
        })));
    }
    // Six bulk writes are queued (three seconds of budget) before the direct one asks.
    tokio::time::sleep(Duration::from_millis(200)).await;
    with_urgency(Urgency::Direct, direct_gate.before(WRITE)).await;
    order.lock().await.push("direct".into());
    for b in bulk {
        b.await.unwrap();
    }
    let order = order.lock().await.clone();
    let direct = order.iter().position(|o| o == "direct").unwrap();
    assert!(
        direct <= 3,
        "granted after the burst and at most one bulk write granted ahead: {order:?}"
    );
    assert_eq!(order.len(), 7);
}
