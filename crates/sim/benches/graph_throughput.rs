//! Throughput of the Graph simulator: simple authenticated GETs over a pooled
//! client from many concurrent tasks. Run with
//! `cargo bench -p entra-sync-sim --bench graph_throughput`
//! (set `BENCH_SECS` and `BENCH_TASKS` to change the run).
//!
//! Client and simulator share this process and the machine's cores, so it also
//! reports requests per CPU-second of the whole process (client + simulator): the
//! simulator alone needs less CPU than that per request, so that figure is a lower
//! bound of what it serves with one core to itself, independent of other load.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{access_token, no_throttle};
use entra_sync_sim::graph::GraphSim;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The throughput the simulator must reach.
const TARGET: f64 = 10_000.0;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU time of this process, from `/proc/self/stat` (Linux).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based).
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel reports clock ticks; USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let secs = env("BENCH_SECS", 5);
    let tasks = env("BENCH_TASKS", 32);
    let sim = GraphSim::start(no_throttle())
        .await
        .expect("simulator starts");
    let id = sim
        .seed_user(json!({"userPrincipalName": "bench@contoso.com", "displayName": "Bench", "accountEnabled": true}))
        .expect("seeded");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(tasks as usize)
        .build()
        .expect("client");
    let token = Arc::new(access_token(&http, &sim).await);
    let url = Arc::new(format!(
        "{}/v1.0/users/{id}?$select=id,displayName",
        sim.base_url()
    ));
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let cpu_before = process_cpu();
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let (http, token, url, done, errors) = (
                http.clone(),
                token.clone(),
                url.clone(),
                done.clone(),
                errors.clone(),
            );
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let ok = match http
                        .get(url.as_str())
                        .bearer_auth(token.as_str())
                        .send()
                        .await
                    {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if ok {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(after, before)| (after - before).as_secs_f64());
    let served = done.load(Ordering::Relaxed);
    let rate = served as f64 / elapsed;
    println!(
        "graph simulator: {served} GET /users/{{id}} in {elapsed:.2} s with {tasks} tasks = {rate:.0} requests/s ({:.2}× the {TARGET:.0} target), {} errors",
        rate / TARGET,
        errors.load(Ordering::Relaxed)
    );
    if let Some(cpu) = cpu.filter(|c| *c > 0.0) {
        let per_cpu = served as f64 / cpu;
        println!(
            "process CPU {cpu:.2} s (client + simulator) = {per_cpu:.0} requests per CPU-second ({:.2}× the target per core)",
            per_cpu / TARGET
        );
    }
}
