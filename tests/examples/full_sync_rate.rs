//! How close a first full sync comes to the tenant's real Graph write budget,
//! and how fast direct changes get through meanwhile (BENCHMARKS.md,
//! scenarios 1, 4 and 5).
//!
//! Runs the real pipeline in-process (producer, workers, RabbitMQ, PostgreSQL)
//! against the Graph simulator. entra-sync is configured with one budget
//! (`ceiling`, Graph's published 3,000 writes per 150 s by default) while the
//! simulated tenant really accepts another (`real`, e.g. 200 writes per 10 s:
//! a burst of 200 and 20/s). `scale` divides both windows, compressing time
//! without changing either burst. Each worker is its own service with its own
//! pools and budget gate, sharing the budget through PostgreSQL as worker
//! processes do.
//!
//! `cargo run --release -p entra-sync-tests --example full_sync_rate -- users=2000 workers=2 concurrency=16 real=200/10 ceiling=3000/150 scale=1 latency=50-200 direct=20`
//!
//! Prints the writes the tenant accepted (a `members@odata.bind` PATCH counts
//! as the writes it is charged), the share of write attempts answered 429,
//! members per membership write, the ratio of the fastest time the real budget
//! allows to the measured time, and the latency of direct changes (created in
//! authentik once a second during the sync) to their Graph write.

use entra_sync_sim::authentik::Mode;
use entra_sync_sim::graph::{FaultConfig, SimConfig, ThrottleConfig};
use entra_sync_store::runs::RunState;
use entra_sync_tests::bench::Args;
use entra_sync_tests::{ProviderSpec, Stack, new_group, new_user};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn epoch_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let users: usize = args.get("users", 2000);
    let (workers, concurrency) = args.workers();
    let scale: u64 = args.get("scale", 1);
    let direct: usize = args.get("direct", 0);
    let real = args.budget("real", (200, 10));
    let ceiling = args.budget("ceiling", (3000, 150));
    let (latency_min_ms, latency_max_ms) = args.latency();
    let window = |w: u64| Duration::from_millis(w * 1000 / scale);

    let mut spec = ProviderSpec::new("bench");
    assert!(
        ceiling.1.is_multiple_of(scale),
        "scale must divide the ceiling's window"
    );
    spec.write_budget = (ceiling.0, ceiling.1 / scale);
    let graph = SimConfig {
        throttle: ThrottleConfig {
            write_quota: real.0,
            write_window: window(real.1),
            ..ThrottleConfig::default()
        },
        faults: FaultConfig {
            latency_min_ms,
            latency_max_ms,
            ..FaultConfig::default()
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
    // Direct changes: one user created in authentik per second while the sync runs.
    let mut created = Vec::new();
    let run = loop {
        if let Some(run) = store.latest_run("bench").await.unwrap()
            && run.state != RunState::Running
        {
            break run;
        }
        if created.len() < direct
            && started.elapsed() >= Duration::from_secs(created.len() as u64 + 3)
        {
            let pk = sim.create_user(
                new_user(&format!("direct{:03}", created.len())),
                Mode::Evented,
            );
            created.push((pk, SystemTime::now()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let elapsed = started.elapsed();
    let graph = stack.graph();
    let counters = graph.counters();
    let charged = graph.writes_charged();
    let throttled = counters.status(429);
    let attempts: u64 = counters
        .0
        .iter()
        .filter(|c| c.method != "GET" && c.path != "token" && c.path != "$batch")
        .map(|c| c.count)
        .sum();
    let member_writes = counters
        .0
        .iter()
        .filter(|c| {
            c.method == "PATCH" && c.path == "groups/{id}" && (200..300).contains(&c.status)
        })
        .map(|c| c.count)
        .sum::<u64>();
    let member_adds = counters
        .0
        .iter()
        .filter(|c| {
            c.method == "POST"
                && c.path == "groups/{id}/members/$ref"
                && (200..300).contains(&c.status)
        })
        .map(|c| c.count)
        .sum::<u64>();
    let members: usize = graph
        .state()
        .get("groups")
        .and_then(|g| g.as_array())
        .map_or(0, |groups| {
            groups
                .iter()
                .filter_map(|g| g["id"].as_str())
                .map(|id| graph.members(id).len())
                .sum()
        });
    // The binding budget: the lower rate of the real one and the ceiling, with its burst.
    let rate = |(q, w): (u32, u64)| f64::from(q) / window(w).as_secs_f64();
    let (burst, budget_rate) = if rate(real) <= rate(ceiling) {
        (real.0, rate(real))
    } else {
        (ceiling.0, rate(ceiling))
    };
    let fastest = (charged.saturating_sub(u64::from(burst)) as f64 / budget_rate).max(0.0);
    println!(
        "users={users} workers={workers}x{concurrency} real={}/{}s ceiling={}/{}s scale={scale} latency={latency_min_ms}-{latency_max_ms}ms run={:?} objects={} failed={}",
        real.0, real.1, ceiling.0, ceiling.1, run.state, run.objects_total, run.objects_failed
    );
    println!(
        "writes charged={charged} attempts={attempts} 429s={throttled} ({:.2}% of attempts) elapsed={:.1}s fastest-allowed={fastest:.1}s ratio={:.3}",
        100.0 * throttled as f64 / attempts.max(1) as f64,
        elapsed.as_secs_f64(),
        fastest / elapsed.as_secs_f64()
    );
    println!(
        "members={members} member-bind PATCHes={member_writes} single adds={member_adds} members per membership write={:.1}",
        members as f64 / (member_writes + member_adds).max(1) as f64
    );
    let conn = store.conn().await.unwrap();
    if !created.is_empty() {
        let mut latencies = Vec::new();
        for (pk, at) in &created {
            let written: Option<f64> = conn
                .query_one(
                    "SELECT EXTRACT(EPOCH FROM min(at))::float8 FROM object_outcomes
                     WHERE run_id IS NULL AND kind = 'user' AND object_id = $1 AND result = 'ok'",
                    &[&pk.to_string()],
                )
                .await
                .unwrap()
                .get(0);
            if let Some(written) = written {
                latencies.push(written - epoch_secs(*at));
            }
        }
        latencies.sort_by(f64::total_cmp);
        println!(
            "direct changes: {} of {} written; latency p50={:.2}s p99={:.2}s max={:.2}s",
            latencies.len(),
            created.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or(f64::NAN)
        );
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
