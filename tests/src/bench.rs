//! What the benchmark examples share (BENCHMARKS.md): their `key=value`
//! arguments, and a converged directory to measure against.

use crate::{Services, Stack, new_group, new_user};
use entra_sync_core::ids::AkGroupPk;
use entra_sync_sim::authentik::Mode;
use entra_sync_sim::graph::{Seed, SeedMember};
use entra_sync_store::runs::RunState;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// `key=value` arguments with defaults.
pub struct Args(HashMap<String, String>);

impl Args {
    /// The process's arguments.
    pub fn parse() -> Self {
        Self(
            std::env::args()
                .skip(1)
                .map(|a| {
                    let (k, v) = a.split_once('=').expect("arguments are key=value");
                    (k.to_string(), v.to_string())
                })
                .collect(),
        )
    }

    /// The value of `key`, or `default`.
    pub fn get<T: std::str::FromStr>(&self, key: &str, default: T) -> T {
        self.0
            .get(key)
            .map_or(default, |v| v.parse().ok().expect("a number"))
    }

    /// `workers` and the `concurrency` of each: 2 × 16 by default.
    pub fn workers(&self) -> (usize, usize) {
        (self.get("workers", 2), self.get("concurrency", 16))
    }

    /// `quota/window_seconds`, e.g. `200/10`.
    pub fn budget(&self, key: &str, default: (u32, u64)) -> (u32, u64) {
        self.0.get(key).map_or(default, |v| {
            let (q, w) = v.split_once('/').expect("quota/window");
            (q.parse().expect("a quota"), w.parse().expect("a window"))
        })
    }

    /// `min-max` milliseconds.
    pub fn latency(&self) -> (u64, u64) {
        self.0.get("latency").map_or((50, 200), |v| {
            let (a, b) = v.split_once('-').unwrap_or((v, v));
            (a.parse().expect("ms"), b.parse().expect("ms"))
        })
    }
}

/// The objects of a directory built by [`converged_directory`].
pub struct Built {
    /// The users' authentik pks.
    pub users: Vec<i64>,
    /// The groups' authentik pks.
    pub groups: Vec<AkGroupPk>,
}

/// Builds `users` users and `groups` groups of 10 members each in authentik
/// (silently: no events), and seeds the Graph simulator with exactly what
/// `provider`'s mappings make of them, as a converged tenant.
pub async fn converged_directory(
    stack: &Stack,
    provider: &str,
    users: usize,
    groups: usize,
) -> Built {
    let sim = &stack.authentik.sim;
    let pks: Vec<i64> = (0..users)
        .map(|i| sim.create_user(new_user(&format!("b{i:06}")), Mode::Silent))
        .collect();
    let groups = (0..groups)
        .map(|g| {
            let group = sim.create_group(new_group(&format!("bench-{g:05}")), Mode::Silent);
            for k in 0..10 {
                sim.add_member(group, pks[(g * 10 + k) % users], Mode::Silent);
            }
            AkGroupPk(group)
        })
        .collect();
    seed_converged(stack, provider).await;
    Built { users: pks, groups }
}

/// Seeds Entra with exactly what authentik's state maps to.
async fn seed_converged(stack: &Stack, provider: &str) {
    let expected = stack.expected(provider).await;
    let (user_ids, group_ids) = stack
        .graph()
        .seed(Seed {
            users: expected
                .users
                .values()
                .cloned()
                .map(Value::Object)
                .collect(),
            groups: expected
                .groups
                .values()
                .cloned()
                .map(Value::Object)
                .collect(),
            members: Vec::new(),
        })
        .unwrap();
    let user_id: BTreeMap<&String, String> = expected.users.keys().zip(user_ids).collect();
    let group_id: BTreeMap<&String, String> = expected.groups.keys().zip(group_ids).collect();
    let members = expected
        .members
        .iter()
        .flat_map(|(name, upns)| {
            upns.iter().map(|upn| SeedMember {
                group: group_id[name].clone(),
                member: user_id[upn].clone(),
            })
        })
        .collect();
    stack
        .graph()
        .seed(Seed {
            members,
            ..Seed::default()
        })
        .unwrap();
}

/// Starts a producer and a worker and waits until the first full sync of
/// `provider` has linked every object (by discovery, on a converged
/// directory) and the services have settled; returns them running.
pub async fn first_full_sync(stack: &Stack, provider: &str) -> Services {
    let services = stack.services_unsettled();
    let first = loop {
        match stack.db.store.latest_run(provider).await.unwrap() {
            Some(run) if run.state != RunState::Running => break run,
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };
    assert_eq!(first.state, RunState::Done, "{first:?}");
    stack.settle().await;
    services
}
