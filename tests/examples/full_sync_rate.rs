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
    // Graph's rate (20 writes/s) with a 15 s window; BENCH_QUOTA changes the quota per window.
    let quota: u32 = std::env::var("BENCH_QUOTA").map_or(300, |q| q.parse().expect("a number"));

    let mut spec = ProviderSpec::new("bench");
    // BENCH_GATE_QUOTA sets entra-sync's own budget apart from Graph's (to see each side alone).
    let gate_quota: u32 =
        std::env::var("BENCH_GATE_QUOTA").map_or(quota, |q| q.parse().expect("a number"));
    spec.write_budget = (gate_quota, WINDOW_S);
    let graph = SimConfig {
        throttle: ThrottleConfig {
            write_quota: quota,
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
    let rate = f64::from(quota) / WINDOW_S as f64;
    let floor = (accepted.saturating_sub(u64::from(quota)) as f64 / rate).max(0.0);
    println!(
        "users={users} workers={workers}x{concurrency} run={:?} objects={} failed={}",
        run.state, run.objects_total, run.objects_failed
    );
    println!(
        "writes accepted={accepted} 429s={throttled} elapsed={:.1}s fastest-allowed={floor:.1}s ratio={:.2}",
        elapsed.as_secs_f64(),
        floor / elapsed.as_secs_f64()
    );
    let conn = store.conn().await.unwrap();
    for row in conn
        .query(
            "SELECT kind || ' ' || action || ' ' || result, count(*), EXTRACT(EPOCH FROM min(at) - $1::timestamptz)::float8,
                    EXTRACT(EPOCH FROM max(at) - $1::timestamptz)::float8
             FROM object_outcomes GROUP BY 1 ORDER BY 3",
            &[&run.started_at],
        )
        .await
        .unwrap()
    {
        let (kind, n, first, last): (String, i64, f64, f64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        println!("  {kind:<28} {n:>6} outcomes, from {first:>6.1}s to {last:>6.1}s after the run started");
    }
    let per_window: Vec<String> = conn
        .query(
            "SELECT floor(EXTRACT(EPOCH FROM at - $1::timestamptz) / 5)::int8 AS w, count(*)
             FROM object_outcomes WHERE result = 'ok' GROUP BY w ORDER BY w",
            &[&run.started_at],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{}s:{}", r.get::<_, i64>(0) * 5, r.get::<_, i64>(1)))
        .collect();
    println!("  objects done per 5 s: {}", per_window.join(" "));
    producer.stop().await;
    for w in running {
        w.stop().await;
    }
}
