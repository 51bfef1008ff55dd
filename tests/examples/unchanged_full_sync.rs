//! What a full sync of an unchanged directory costs: drift detection alone.
//!
//! Builds USERS users and GROUPS groups (10 members each) in authentik, puts
//! exactly their mapped state into the Graph simulator (as a converged
//! tenant), lets a first full sync link everything, then times a second one
//! and counts its Graph requests, reads, resource units and writes, with
//! the real PostgreSQL and RabbitMQ, one producer and one worker in-process.
//!
//! `cargo run --release -p entra-sync-tests --example unchanged_full_sync -- [USERS] [GROUPS]`

use entra_sync_sim::graph::{SimConfig, ThrottleConfig};
use entra_sync_store::runs::RunState;
use entra_sync_tests::bench::{converged_directory, first_full_sync};
use entra_sync_tests::{ProviderSpec, Stack};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let users = args.first().copied().unwrap_or(10_000);
    let groups = args.get(1).copied().unwrap_or(1_000);
    let graph = SimConfig {
        throttle: ThrottleConfig::disabled(),
        ..SimConfig::default()
    };
    let stack = Stack::start_with(vec![ProviderSpec::new("bench")], graph).await;
    converged_directory(&stack, "bench", users, groups).await;

    // The first full sync links every object (discovery): long at this size.
    let services = first_full_sync(&stack, "bench").await;
    let graph = stack.graph();
    let (requests, gets, ru, writes) = (
        graph.counters().total(),
        get_requests(&stack),
        graph.resource_units(),
        graph.mutating_requests(),
    );
    let started = Instant::now();
    let id = stack.request_full_sync("bench").await;
    let run = stack.wait_for_run(id, Duration::from_secs(600)).await;
    let took = started.elapsed();
    assert_eq!(run.state, RunState::Done, "{run:?}");
    println!(
        "unchanged full sync of {users} users and {groups} groups: {:.2} s, {} Graph requests ({} reads), {} RU, {} writes, {} tasks",
        took.as_secs_f64(),
        graph.counters().total() - requests,
        get_requests(&stack) - gets,
        graph.resource_units() - ru,
        graph.mutating_requests() - writes,
        run.objects_total,
    );
    services.stop().await;
}

fn get_requests(stack: &Stack) -> u64 {
    stack
        .graph()
        .counters()
        .0
        .iter()
        .filter(|c| c.method == "GET")
        .map(|c| c.count)
        .sum()
}
