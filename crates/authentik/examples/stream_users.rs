//! Streams every user of a simulated authentik through the client and reports
//! throughput and the client process's peak memory.
//!
//! The simulator runs in a child process (this binary with `serve`), so the
//! peak RSS printed is the client's alone:
//!
//! ```text
//! cargo build --release -p entra-sync-authentik --example stream_users
//! /usr/bin/time -v target/release/examples/stream_users 100000
//! ```
//!
//! (`/usr/bin/time`'s "Maximum resident set size" is the simulator child's,
//! which holds the 100,000 users; the line printed by the example is the client's.)

use entra_sync_authentik::{ApiToken, AuthentikClient, ClientConfig, UserQuery};
use entra_sync_sim::authentik::{AuthentikSim, OrgSpec, SimConfig};
use futures_util::TryStreamExt;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

const TOKEN: &str = "bench-token";

/// `VmHWM` (peak resident set) and `VmRSS` of this process, in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

async fn serve(users: usize) {
    let sim = AuthentikSim::new(SimConfig::new(TOKEN));
    sim.generate(&OrgSpec::new(1, users, 200));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("{}", listener.local_addr().unwrap());
    sim.serve_on(listener).await.unwrap();
}

async fn stream(users: usize) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["serve", &users.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = format!("http://{}/", line.trim());
    let client = AuthentikClient::new(ClientConfig::new(
        base.parse().unwrap(),
        ApiToken::new(TOKEN),
    ))
    .unwrap();
    let (hwm_before, _) = memory_kib();
    let started = Instant::now();
    let mut pages = std::pin::pin!(client.users(&UserQuery::default()));
    let (mut count, mut max_rss) = (0usize, 0u64);
    while let Some(page) = pages.try_next().await.unwrap() {
        count += page.len();
        max_rss = max_rss.max(memory_kib().1);
    }
    let elapsed = started.elapsed();
    let (hwm, _) = memory_kib();
    let _ = child.kill();
    let _ = child.wait();
    println!(
        "streamed {count} users in {:.2} s: {:.0} users/s; client peak RSS (VmHWM) {hwm} KiB ({hwm_before} KiB before streaming), max VmRSS while streaming {max_rss} KiB",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(count, users + OrgSpec::new(1, users, 200).service_accounts);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [mode, n] if mode == "serve" => serve(n.parse().unwrap()).await,
        [n] => stream(n.parse().unwrap()).await,
        [] => stream(100_000).await,
        _ => eprintln!("usage: stream_users [USERS] | serve USERS"),
    }
}
