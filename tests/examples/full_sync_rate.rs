//! How close a first full sync comes to Microsoft Graph's write limit.
//!
//! Runs the real pipeline in-process (producer, workers, RabbitMQ, PostgreSQL)
//! against the Graph simulator with Graph's write quota scaled down in time
//! but not in rate: 20 writes/s sustained (Graph: 3,000 per 150 s per app and
//! tenant), here 300 per 15 s so the burst is used up quickly. The provider's
//! shared budget is set to the same quota, as an operator would.
//!
//! `cargo run --release -p entra-sync-tests --example full_sync_rate -- [USERS] [WORKERS] [CONCURRENCY]`
//!
//! Prints the writes Graph accepted, the 429s it answered, the time the run
//! took, and the ratio of the fastest time Graph's limit allows to the
//! measured time (1.0 = exactly at the limit).

use entra_sync_sim::authentik::Mode;
use entra_sync_sim::graph::{SimConfig, ThrottleConfig};
use entra_sync_store::runs::RunState;
use entra_sync_tests::{ProviderSpec, Stack, new_group, new_user};
use std::time::{Duration, Instant};

const QUOTA: u32 = 300;
const WINDOW_S: u64 = 15;

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let users = args.first().copied().unwrap_or(1000);
    let workers = args.get(1).copied().unwrap_or(2);
    let concurrency = args.get(2).copied().unwrap_or(8);

    let mut spec = ProviderSpec::new("bench");
    spec.write_budget = (QUOTA, WINDOW_S);
    let graph = SimConfig {
        throttle: ThrottleConfig {
            write_quota: QUOTA,
            write_window: Duration::from_secs(WINDOW_S),
            ..ThrottleConfig::default()
        },
        ..SimConfig::default()
    };
    let stack = Stack::start_with(vec![spec], graph).await;
    let sim = &stack.authentik.sim;
    let pks: Vec<i64> = (0..users)
        .map(|i| sim.create_user(new_user(&format!("b{i:06}")), Mode::Silent))
        .collect();
    for g in 0..10 {
        let group = sim.create_group(new_group(&format!("bench-{g}")), Mode::Silent);
        for pk in pks.iter().skip(g).step_by(10) {
            sim.add_member(group, *pk, Mode::Silent);
        }
    }
    let started = Instant::now();
    let producer = stack.producer();
    let mut running = Vec::new();
    for _ in 0..workers {
        running.push(stack.worker(concurrency));
    }
    let store = &stack.db.store;
    let run = loop {
        if let Some(run) = store.latest_run("bench").await.unwrap()
            && run.state != RunState::Running
        {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let elapsed = started.elapsed();
    let counters = stack.graph().counters();
    let accepted: u64 = counters
        .0
        .iter()
        .filter(|c| c.method != "GET" && c.path != "token" && (200..300).contains(&c.status))
        .map(|c| c.count)
        .sum();
    let throttled = counters.status(429);
    let rate = f64::from(QUOTA) / WINDOW_S as f64;
    let floor = (accepted.saturating_sub(u64::from(QUOTA)) as f64 / rate).max(0.0);
    println!(
        "users={users} workers={workers}x{concurrency} run={:?} objects={} failed={}",
        run.state, run.objects_total, run.objects_failed
    );
    println!(
        "writes accepted={accepted} 429s={throttled} elapsed={:.1}s fastest-allowed={floor:.1}s ratio={:.2}",
        elapsed.as_secs_f64(),
        floor / elapsed.as_secs_f64()
    );
    producer.stop().await;
    for w in running {
        w.stop().await;
    }
}
