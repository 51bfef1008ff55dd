//! A scope that is always current (issue 9): the filter group is resolved at
//! every full sync and group event and shared through PostgreSQL, a worker
//! re-resolves it before a user leaves the scope, a missing one halts until it
//! exists again, and verified domains are read again at every full sync.

use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_core::task::{ObjectRef, Task, TaskReason};
use entra_sync_queue::{Lane, Publisher};
use entra_sync_sim::authentik::{Mode, NewGroup, UserPatch};
use entra_sync_store::providers::HaltKind;
use entra_sync_store::runs::RunState;
use entra_sync_tests::{ProviderSpec, Stack, new_user};
use std::time::Duration;
use uuid::Uuid;

const SOON: Duration = Duration::from_secs(10);
const RUN: Duration = Duration::from_secs(60);

/// A provider filtered by the authentik group "entra" that deletes users.
fn filtered() -> ProviderSpec {
    let mut spec = ProviderSpec::new("p");
    spec.filter_group = Some("entra".into());
    spec
}

/// The group "entra" with `users`.
fn entra(users: &[i64]) -> NewGroup {
    NewGroup {
        name: "entra".into(),
        users: users.to_vec(),
        ..Default::default()
    }
}

/// Six members of "entra" and one outsider, made silently; returns the
/// members and the group.
fn organisation(stack: &Stack) -> (Vec<i64>, Uuid) {
    let sim = &stack.authentik.sim;
    let members: Vec<i64> = (0..6)
        .map(|i| sim.create_user(new_user(&format!("member{i}")), Mode::Silent))
        .collect();
    sim.create_user(new_user("outsider"), Mode::Silent);
    let group = sim.create_group(entra(&members), Mode::Silent);
    (members, group)
}

/// Waits until Entra holds authentik's mapped state.
async fn converged(stack: &Stack) {
    stack
        .eventually("Entra holds authentik's state", RUN, || async {
            // A re-created group's Entra group is re-created too: wait for the old one to go.
            let state = stack.graph().state();
            let groups = state["groups"].as_array().unwrap();
            if groups
                .iter()
                .filter(|g| g["displayName"] == "entra")
                .count()
                > 1
            {
                return false;
            }
            let expected = stack.expected("p").await;
            stack.actual(0, &expected) == expected
        })
        .await;
}

fn users_in_entra(stack: &Stack) -> usize {
    stack.graph().state()["users"].as_array().unwrap().len()
}

/// A full sync, requested and awaited; it must end done.
async fn full_sync(stack: &Stack) {
    let run = stack.request_full_sync("p").await;
    let run = stack.wait_for_run(run, RUN).await;
    assert_eq!(run.state, RunState::Done, "{run:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filter_group_re_created_with_the_same_members_deletes_and_disables_nobody() {
    let stack = Stack::start(vec![filtered()]).await;
    let (members, group) = organisation(&stack);
    let services = stack.services().await;
    converged(&stack).await;
    assert_eq!(users_in_entra(&stack), 6);

    let sim = &stack.authentik.sim;
    sim.delete_group(group, Mode::Evented);
    sim.create_group(entra(&members), Mode::Evented);
    converged(&stack).await;
    full_sync(&stack).await;

    assert_eq!(stack.requests("DELETE", "users/{id}"), 0);
    assert_eq!(users_in_entra(&stack), 6);
    // Every member still enabled, with its properties: the state is exact.
    converged(&stack).await;
    assert_eq!(stack.db.store.halt_of("p").await.unwrap(), None);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_re_resolves_a_silently_re_created_filter_group_before_a_user_leaves_the_scope() {
    let stack = Stack::start(vec![filtered()]).await;
    let (members, group) = organisation(&stack);
    let services = stack.services().await;
    converged(&stack).await;

    // A blueprint re-applied by authentik's worker records no event.
    let sim = &stack.authentik.sim;
    sim.delete_group(group, Mode::Silent);
    let recreated = sim.create_group(entra(&members), Mode::Silent);
    // A user event (not a group event): the producer shares no new resolution.
    let patch = UserPatch {
        name: Some("Member Zero".into()),
        ..Default::default()
    };
    sim.update_user(members[0], patch, Mode::Evented);
    stack
        .eventually("the edit reached Entra", SOON, || async {
            stack.graph().state()["users"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["displayName"] == "Member Zero")
        })
        .await;
    assert_eq!(
        stack
            .db
            .store
            .filter_group("p", "entra")
            .await
            .unwrap()
            .unwrap()
            .pk,
        Some(AkGroupPk(recreated)),
        "the worker shared the live resolution"
    );
    full_sync(&stack).await;
    assert_eq!(stack.requests("DELETE", "users/{id}"), 0);
    converged(&stack).await;
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_filter_group_halts_the_provider_with_the_reason_and_deletes_nothing() {
    let stack = Stack::start(vec![filtered()]).await;
    let (members, group) = organisation(&stack);
    let services = stack.services().await;
    converged(&stack).await;
    let writes = stack.graph().mutating_requests();

    // Deleted silently, then found missing by the next full sync.
    stack.authentik.sim.delete_group(group, Mode::Silent);
    let run = stack.request_full_sync("p").await;
    let run = stack.wait_for_run(run, RUN).await;
    assert_eq!(run.state, RunState::Failed);
    let halt = stack.db.store.halt_of("p").await.unwrap().expect("halted");
    assert_eq!(halt.kind, HaltKind::FilterGroupMissing);
    assert_eq!(
        halt.reason,
        "providers[p].filter_group: authentik has no group named \"entra\"; \
         nothing is deleted or suspended for being out of scope until it exists"
    );
    // Changes made meanwhile wait too: nothing is written, least of all a deletion.
    let patch = UserPatch {
        name: Some("Member Zero".into()),
        ..Default::default()
    };
    stack
        .authentik
        .sim
        .update_user(members[0], patch, Mode::Evented);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.graph().mutating_requests(), writes);
    assert_eq!(users_in_entra(&stack), 6);
    assert!(stack.db.store.halt_of("p").await.unwrap().is_some());
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_filter_group_deleted_then_re_created_halts_then_clears_itself_and_a_full_sync_runs() {
    let stack = Stack::start(vec![filtered()]).await;
    let (members, group) = organisation(&stack);
    let services = stack.services().await;
    converged(&stack).await;

    let sim = &stack.authentik.sim;
    sim.delete_group(group, Mode::Evented);
    stack
        .eventually("halted on the group event", SOON, || async {
            stack
                .db
                .store
                .halt_of("p")
                .await
                .unwrap()
                .is_some_and(|h| h.kind == HaltKind::FilterGroupMissing)
        })
        .await;
    let recreated = sim.create_group(entra(&members), Mode::Evented);
    stack
        .eventually(
            "the halt cleared itself and a full sync ran",
            RUN,
            || async {
                let store = &stack.db.store;
                let run = store.latest_run("p").await.unwrap().unwrap();
                store.halt_of("p").await.unwrap().is_none()
                    && run.trigger == "filter_group_restored"
                    && run.state == RunState::Done
            },
        )
        .await;
    assert_eq!(stack.requests("DELETE", "users/{id}"), 0);
    converged(&stack).await;

    // A user added to the re-created group is created.
    let newcomer = sim.create_user(new_user("newcomer"), Mode::Evented);
    sim.add_member(recreated, newcomer, Mode::Evented);
    stack
        .eventually("the newcomer is created", SOON, || async {
            users_in_entra(&stack) == 7
        })
        .await;
    converged(&stack).await;
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_domain_verified_later_is_used_from_the_next_full_sync_on() {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let services = stack.services().await;
    let mut user = new_user("fabien");
    user.email = "fabien@fabrikam.com".into();
    let pk = stack.authentik.sim.create_user(user, Mode::Evented);
    let failed = || async {
        let conn = stack.db.store.conn().await.unwrap();
        conn.query_one(
            "SELECT count(*) FROM object_outcomes WHERE object_id = $1 AND result = 'failed'",
            &[&pk.to_string()],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
    };
    stack
        .eventually("refused: not a verified domain", SOON, || async {
            // The event's task and a silent-change scan may both try it.
            failed().await >= 1
        })
        .await;

    stack.graph().verify_domain("fabrikam.com");
    full_sync(&stack).await;
    let upns: Vec<String> = stack.graph().state()["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userPrincipalName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(upns, ["fabien@fabrikam.com"]);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_builds_a_halted_providers_reconcilers_again_after_resume() {
    let stack = Stack::start(vec![ProviderSpec::new("p"), ProviderSpec::new("q")]).await;
    let sim = &stack.authentik.sim;
    let mut user = new_user("fabien");
    user.email = "fabien@fabrikam.com".into();
    let fabien = sim.create_user(user, Mode::Silent);
    let other = sim.create_user(new_user("quentin"), Mode::Silent);
    let conn = entra_sync_queue::connect(&stack.vhost.url()).await.unwrap();
    let publisher = Publisher::open(&conn, Stack::topology()).await.unwrap();
    let publish = |provider: &str, pk: i64| {
        let task = Task::new(provider, ObjectRef::User(AkUserPk(pk)), TaskReason::Event);
        let publisher = &publisher;
        async move { publisher.publish(Lane::Direct, &task).await.unwrap() }
    };
    let outcome = |provider: &'static str, pk: i64, result: &'static str| {
        let store = stack.db.store.clone();
        async move {
            let conn = store.conn().await.unwrap();
            conn.query_one(
                "SELECT count(*) FROM object_outcomes WHERE provider = $1 AND object_id = $2 AND result = $3",
                &[&provider, &pk.to_string(), &result],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
                > 0
        }
    };
    // One task at a time, in order.
    let worker = stack.worker(1);
    publish("p", fabien).await;
    stack
        .eventually("refused: not a verified domain", SOON, || {
            outcome("p", fabien, "failed")
        })
        .await;

    stack.graph().verify_domain("fabrikam.com");
    stack
        .db
        .store
        .halt("p", "halted by the test")
        .await
        .unwrap();
    publish("p", fabien).await;
    publish("q", other).await;
    stack
        .eventually(
            "the halted provider's task was dropped before q's ran",
            SOON,
            || outcome("q", other, "ok"),
        )
        .await;
    stack.db.store.resume("p").await.unwrap();
    publish("p", fabien).await;
    stack
        .eventually("created with the newly verified domain", SOON, || {
            outcome("p", fabien, "ok")
        })
        .await;
    worker.stop().await;
}
