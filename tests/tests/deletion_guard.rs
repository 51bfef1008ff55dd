//! The deletion guard on every path, end to end (issue 9): direct deletions and
//! suspensions past `deletion_threshold` are held back and halt the provider;
//! `resume --allow-deletions` lets them through.

use entra_sync_provider::{Provider, Resumed, resume};
use entra_sync_sim::authentik::Mode;
use entra_sync_store::providers::{Halt, HaltKind};
use entra_sync_store::runs::RunState;
use entra_sync_tests::{ProviderSpec, Stack, new_user};
use std::time::Duration;

const SOON: Duration = Duration::from_secs(30);
const RUN: Duration = Duration::from_secs(60);

/// A provider `entra` letting `threshold` deletions through, with `n` users
/// synced to Entra and services running.
async fn synced(
    user_delete_action: &str,
    threshold: u32,
    n: usize,
) -> (Stack, entra_sync_tests::Services, Vec<i64>) {
    let mut spec = ProviderSpec::new("entra");
    spec.user_delete_action = user_delete_action.into();
    spec.deletion_threshold = threshold;
    let stack = Stack::start(vec![spec]).await;
    let users: Vec<i64> = (0..n)
        .map(|i| {
            stack
                .authentik
                .sim
                .create_user(new_user(&format!("u{i:02}")), Mode::Silent)
        })
        .collect();
    let services = stack.services().await;
    assert_eq!(stack.graph().state()["users"].as_array().unwrap().len(), n);
    (stack, services, users)
}

/// Waits for the provider's halt.
async fn halt(stack: &Stack) -> Halt {
    let store = &stack.db.store;
    stack
        .eventually("the provider halts", SOON, || async {
            store.halt_of("entra").await.unwrap().is_some()
        })
        .await;
    store.halt_of("entra").await.unwrap().unwrap()
}

/// Waits until `n` outcomes with `action` are recorded.
async fn outcomes(stack: &Stack, action: &str, n: i64) {
    let conn = stack.db.store.conn().await.unwrap();
    stack
        .eventually(&format!("{n} {action} outcomes"), SOON, || async {
            let row = conn
                .query_one(
                    "SELECT count(*) FROM object_outcomes WHERE action = $1",
                    &[&action],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0) == n
        })
        .await;
}

fn reason(would_be: u64, threshold: u32) -> String {
    format!(
        "deletion guard: {would_be} deletions or suspensions within 1h would exceed deletion_threshold {threshold}; \
         nothing more was deleted. Check authentik, then run entra-sync resume --provider entra --allow-deletions"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_deletions_past_the_threshold_are_held_back_until_resume_allows_them() {
    let (stack, services, users) = synced("delete", 5, 15).await;
    for pk in &users[..12] {
        stack.authentik.sim.delete_user(*pk, Mode::Evented);
    }
    let halt = halt(&stack).await;
    assert_eq!(halt.kind, HaltKind::DeletionGuard);
    assert_eq!(halt.reason, reason(6, 5));
    outcomes(&stack, "deleted", 5).await;
    assert_eq!(stack.requests("DELETE", "users/{id}"), 5);
    assert_eq!(stack.graph().state()["users"].as_array().unwrap().len(), 10);
    let failures = stack.db.store.recent_failures("entra", 20).await.unwrap();
    assert!(
        failures
            .iter()
            .any(|f| f.result == "held_back" && f.error.as_deref() == Some(halt.reason.as_str())),
        "status shows the held-back task and why: {failures:?}"
    );

    // `resume --allow-deletions`, as the command does it.
    let config = stack.config();
    let provider =
        Provider::from_config(config.provider("entra").unwrap(), &stack.db.store).unwrap();
    let Resumed::Resumed { run, .. } = resume(&stack.db.store, &provider, true).await.unwrap()
    else {
        panic!("halted by the guard")
    };
    let run = stack
        .wait_for_run(run.run().expect("a full sync"), RUN)
        .await;
    assert_eq!(run.state, RunState::Done, "{run:?}");
    assert_eq!(stack.requests("DELETE", "users/{id}"), 12);
    let expected = stack.expected("entra").await;
    assert_eq!(stack.actual(0, &expected), expected);
    assert!(stack.db.store.halt_of("entra").await.unwrap().is_none());
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspension_counts_toward_the_threshold() {
    let (stack, services, users) = synced("suspend", 3, 8).await;
    for pk in &users[..6] {
        stack.authentik.sim.delete_user(*pk, Mode::Evented);
    }
    let halt = halt(&stack).await;
    assert_eq!(halt.kind, HaltKind::DeletionGuard);
    assert_eq!(halt.reason, reason(4, 3));
    outcomes(&stack, "suspended", 3).await;
    let disabled = stack.graph().state()["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["accountEnabled"] == false)
        .count();
    assert_eq!(disabled, 3);
    services.stop().await;
}
