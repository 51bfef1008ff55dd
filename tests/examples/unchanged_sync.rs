//! What a full sync of an unchanged directory costs, and the per-task
//! pipeline's headroom (BENCHMARKS.md, scenarios 2 and 3).
//!
//! Runs the real pipeline in-process (producer, workers, RabbitMQ, PostgreSQL)
//! against simulators with no throttling and no added latency. A first full
//! sync creates everything; a second, on demand, finds nothing to write: each
//! of its tasks is a no-op, so its rate is the pipeline's own, producer to ack.
//!
//! `cargo run --release -p entra-sync-tests --example unchanged_sync -- [USERS] [GROUPS] [WORKERS] [CONCURRENCY]`

use entra_sync_provider::RunTrigger;
use entra_sync_sim::authentik::Mode;
use entra_sync_sim::graph::{SimConfig, ThrottleConfig};
use entra_sync_store::Store;
use entra_sync_store::runs::{Run, RunState};
use entra_sync_tests::{ProviderSpec, Stack, new_group, new_user};
use std::time::{Duration, Instant};

async fn finished(store: &Store, after: Option<uuid::Uuid>) -> Run {
    loop {
        if let Some(run) = store.latest_run("bench").await.unwrap()
            && Some(run.id) != after
            && run.state != RunState::Running
        {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let users = args.first().copied().unwrap_or(10_000);
    let groups = args.get(1).copied().unwrap_or(users / 10).max(1);
    let workers = args.get(2).copied().unwrap_or(2);
    let concurrency = args.get(3).copied().unwrap_or(16);

    let graph = SimConfig {
        throttle: ThrottleConfig::disabled(),
        ..SimConfig::default()
    };
    let stack = Stack::start_with(vec![ProviderSpec::new("bench")], graph).await;
    let sim = &stack.authentik.sim;
    let pks: Vec<i64> = (0..users)
        .map(|i| sim.create_user(new_user(&format!("b{i:06}")), Mode::Silent))
        .collect();
    for g in 0..groups {
        let group = sim.create_group(new_group(&format!("bench-{g}")), Mode::Silent);
        for pk in pks.iter().skip(g).step_by(groups) {
            sim.add_member(group, *pk, Mode::Silent);
        }
    }
    let store = &stack.db.store;
    let producer = stack.producer();
    let mut running = Vec::new();
    for _ in 0..workers {
        running.push(stack.worker(concurrency));
    }
    let started = Instant::now();
    let first = finished(store, None).await;
    let initial = started.elapsed();
    println!(
        "users={users} groups={groups} workers={workers}x{concurrency} initial: {:?} objects={} failed={} in {:.1}s ({:.0} tasks/s)",
        first.state,
        first.objects_total,
        first.objects_failed,
        initial.as_secs_f64(),
        f64::from(first.objects_total) / initial.as_secs_f64()
    );
    let writes_before = stack.graph().mutating_requests();
    let started = Instant::now();
    store
        .start_run("bench", RunTrigger::OnDemand)
        .await
        .unwrap();
    let second = finished(store, Some(first.id)).await;
    let unchanged = started.elapsed();
    println!(
        "unchanged: {:?} objects={} failed={} in {:.1}s ({:.0} no-op tasks/s), Graph writes={}",
        second.state,
        second.objects_total,
        second.objects_failed,
        unchanged.as_secs_f64(),
        f64::from(second.objects_total) / unchanged.as_secs_f64(),
        stack.graph().mutating_requests() - writes_before
    );
    producer.stop().await;
    for w in running {
        w.stop().await;
    }
}
