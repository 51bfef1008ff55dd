//! Permissions and ownership end to end (issue 9): a write Graph refuses
//! fails that object only, many in a row halt, a missing permission halts
//! before any write, and only objects we can own are adopted.

use entra_sync_core::ids::{AkGroupPk, AkUserPk, EntraObjectId};
use entra_sync_core::task::{ObjectRef, Task, TaskReason};
use entra_sync_queue::{Lane, Publisher};
use entra_sync_sim::authentik::{Mode, UserPatch};
use entra_sync_sim::graph::{SimApp, SimConfig, TokenFormat, shapes};
use entra_sync_store::runs::RunState;
use entra_sync_tests::{ProviderSpec, Stack, new_group, new_user};
use std::time::Duration;

const SOON: Duration = Duration::from_secs(5);
const RUN: Duration = Duration::from_secs(60);

/// A Graph simulator whose app is granted `roles`, with tokens shaped by `format`.
fn granted(roles: &[&str], format: TokenFormat) -> SimConfig {
    SimConfig {
        apps: vec![SimApp {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            token_format: format,
            ..SimApp::new(SimConfig::CLIENT_ID, SimConfig::CLIENT_SECRET)
        }],
        ..SimConfig::default()
    }
}

async fn entra_id(stack: &Stack, pk: i64) -> EntraObjectId {
    stack
        .db
        .store
        .link("p", AkUserPk(pk))
        .await
        .unwrap()
        .expect("user linked")
        .entra_id
}

/// The errors recorded for the failed tasks of object `id` of `kind`.
async fn failures(stack: &Stack, kind: &str, id: &str) -> Vec<String> {
    let conn = stack.db.store.conn().await.unwrap();
    conn.query(
        "SELECT detail->>'error' FROM object_outcomes
         WHERE kind = $1 AND object_id = $2 AND result = 'failed' ORDER BY id",
        &[&kind, &id],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn display_name(stack: &Stack, upn: &str) -> Option<String> {
    stack.graph().state()["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["userPrincipalName"] == upn)
        .map(|u| u["displayName"].as_str().unwrap_or_default().to_owned())
}

fn renamed(name: &str) -> UserPatch {
    UserPatch {
        name: Some(name.into()),
        ..Default::default()
    }
}

async fn publisher(stack: &Stack) -> Publisher {
    let conn = entra_sync_queue::connect(&stack.vhost.url()).await.unwrap();
    let publisher = Publisher::open(&conn, Stack::topology()).await.unwrap();
    std::mem::forget(conn); // the publisher's channel lives on the connection
    publisher
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_graph_refuses_fails_that_user_only_and_the_provider_runs_on() {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let sim = &stack.authentik.sim;
    let admin = sim.create_user(new_user("admin"), Mode::Silent);
    let leaver = sim.create_user(new_user("leaver"), Mode::Silent);
    let other = sim.create_user(new_user("other"), Mode::Silent);
    let services = stack.services().await;
    // Graph refuses writes to users holding a privileged admin role.
    stack
        .graph()
        .refuse_writes(entra_id(&stack, admin).await.as_str());
    stack
        .graph()
        .refuse_writes(entra_id(&stack, leaver).await.as_str());

    sim.update_user(admin, renamed("Admin Renamed"), Mode::Evented);
    sim.delete_user(leaver, Mode::Evented);
    stack
        .eventually(
            "the refused PATCH and DELETE recorded as failed",
            Duration::from_secs(10),
            || async {
                !failures(&stack, "user", &admin.to_string())
                    .await
                    .is_empty()
                    && !failures(&stack, "user", &leaver.to_string())
                        .await
                        .is_empty()
            },
        )
        .await;
    let refused = &failures(&stack, "user", &admin.to_string()).await[0];
    assert!(
        refused.contains("Insufficient privileges") && refused.contains("privileged admin role"),
        "Graph's message and a hint: {refused}"
    );
    sim.update_user(other, renamed("Other Renamed"), Mode::Evented);
    stack
        .eventually("another user's change arrives", SOON, || async {
            display_name(&stack, "other@contoso.com").as_deref() == Some("Other Renamed")
        })
        .await;
    assert!(stack.db.store.halt_of("p").await.unwrap().is_none());
    assert_eq!(
        display_name(&stack, "admin@contoso.com").as_deref(),
        Some("admin (display)"),
        "the refused user is unchanged"
    );
    assert!(
        display_name(&stack, "leaver@contoso.com").is_some(),
        "the refused delete deleted nothing"
    );

    let run = stack.request_full_sync("p").await;
    let finished = stack.wait_for_run(run, RUN).await;
    assert_eq!(finished.state, RunState::Done, "{finished:?}");
    assert_eq!(
        finished.objects_failed, 2,
        "the two refused users fail: {finished:?}"
    );
    assert!(stack.db.store.halt_of("p").await.unwrap().is_none());
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_on_many_objects_in_a_row_mean_a_lost_permission_and_halt() {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let sim = &stack.authentik.sim;
    let users: Vec<i64> = (0..8)
        .map(|i| sim.create_user(new_user(&format!("user{i}")), Mode::Silent))
        .collect();
    let services = stack.services().await;
    for pk in &users {
        stack
            .graph()
            .refuse_writes(entra_id(&stack, *pk).await.as_str());
    }
    for (i, pk) in users.iter().enumerate() {
        sim.update_user(*pk, renamed(&format!("Renamed {i}")), Mode::Evented);
    }
    stack
        .eventually("provider halted", Duration::from_secs(20), || async {
            stack.db.store.halt_of("p").await.unwrap().is_some()
        })
        .await;
    let halt = stack.db.store.halt_of("p").await.unwrap().unwrap();
    assert!(
        halt.reason
            .contains("different objects with 403 within 10 min and none succeeded")
            && halt.reason.contains("lost a permission"),
        "{}",
        halt.reason
    );
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_lacking_group_write_halts_the_full_sync_before_any_write() {
    let graph = granted(
        &["User.ReadWrite.All", "GroupMember.ReadWrite.All"],
        TokenFormat::Jwt,
    );
    let stack = Stack::start_with(vec![ProviderSpec::new("p")], graph).await;
    let sim = &stack.authentik.sim;
    let user = sim.create_user(new_user("adele"), Mode::Silent);
    let group = sim.create_group(new_group("staff"), Mode::Silent);
    sim.add_member(group, user, Mode::Silent);
    let services = stack.services_unsettled();
    stack
        .eventually("provider halted", Duration::from_secs(30), || async {
            stack.db.store.halt_of("p").await.unwrap().is_some()
        })
        .await;
    let halt = stack.db.store.halt_of("p").await.unwrap().unwrap();
    assert!(
        halt.reason.contains(
            "the app's token lacks Group.ReadWrite.All (needed to create and update groups)"
        ),
        "{}",
        halt.reason
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(stack.graph().mutating_requests(), 0, "nothing was written");
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_checks_the_token_before_its_first_write() {
    let graph = granted(&["User.ReadWrite.All"], TokenFormat::Jwt);
    let stack = Stack::start_with(vec![ProviderSpec::new("p")], graph).await;
    let pk = stack
        .authentik
        .sim
        .create_user(new_user("adele"), Mode::Silent);
    let worker = stack.worker(2);
    let task = Task::new("p", ObjectRef::User(AkUserPk(pk)), TaskReason::Event);
    publisher(&stack)
        .await
        .publish(Lane::Direct, &task)
        .await
        .unwrap();
    stack
        .eventually("provider halted", Duration::from_secs(10), || async {
            stack.db.store.halt_of("p").await.unwrap().is_some()
        })
        .await;
    let halt = stack.db.store.halt_of("p").await.unwrap().unwrap();
    assert!(
        halt.reason.contains("Group.ReadWrite.All")
            && halt.reason.contains("GroupMember.ReadWrite.All"),
        "{}",
        halt.reason
    );
    assert_eq!(stack.graph().mutating_requests(), 0, "nothing was written");
    worker.stop().await;
}

/// A full sync of one user and one group with its member: the provider is not halted.
async fn syncs_without_halting(graph: SimConfig) {
    let stack = Stack::start_with(vec![ProviderSpec::new("p")], graph).await;
    let sim = &stack.authentik.sim;
    let user = sim.create_user(new_user("adele"), Mode::Silent);
    let group = sim.create_group(new_group("staff"), Mode::Silent);
    sim.add_member(group, user, Mode::Silent);
    let services = stack.services().await;
    let run = stack.db.store.latest_run("p").await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Done, "{run:?}");
    assert!(stack.db.store.halt_of("p").await.unwrap().is_none());
    let expected = stack.expected("p").await;
    assert_eq!(stack.actual(0, &expected), expected);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_with_only_directory_read_write_does_not_halt() {
    syncs_without_halting(granted(&["Directory.ReadWrite.All"], TokenFormat::Jwt)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_a_roles_claim_does_not_halt() {
    let roles = SimApp::DEFAULT_ROLES;
    syncs_without_halting(granted(&roles, TokenFormat::JwtWithoutRoles)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_microsoft_365_group_of_the_same_name_is_neither_adopted_nor_touched() {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let m365 = stack
        .graph()
        .seed_group(shapes::microsoft_365_group("staff", "contoso.com"))
        .unwrap();
    let before = stack.graph().state()["groups"].clone();
    let sim = &stack.authentik.sim;
    let user = sim.create_user(new_user("adele"), Mode::Silent);
    let group = sim.create_group(new_group("staff"), Mode::Silent);
    sim.add_member(group, user, Mode::Silent);
    let services = stack.services().await;

    let conflict = failures(&stack, "group", &group.to_string()).await;
    assert!(
        conflict.iter().any(|e| e.contains("conflict")
            && e.contains(&m365)
            && e.contains("Microsoft 365 group")),
        "the authentik group fails as a conflict, with the reason: {conflict:?}"
    );
    assert!(
        stack
            .db
            .store
            .link("p", AkGroupPk(group))
            .await
            .unwrap()
            .is_none()
    );
    // Deleting the authentik group deletes nothing in Entra either.
    sim.delete_group(group, Mode::Evented);
    let run = stack.request_full_sync("p").await;
    assert_eq!(stack.wait_for_run(run, RUN).await.state, RunState::Done);
    assert_eq!(
        stack.graph().state()["groups"],
        before,
        "no duplicate was made, and the Microsoft 365 group is as it was"
    );
    assert!(stack.graph().members(&m365).is_empty());
    for (method, path) in [
        ("POST", "groups"),
        ("PATCH", "groups(uniqueName)"),
        ("PATCH", "groups/{id}"),
        ("DELETE", "groups/{id}"),
        ("POST", "groups/{id}/members/$ref"),
        ("DELETE", "groups/{id}/members/{id}/$ref"),
    ] {
        assert_eq!(stack.requests(method, path), 0, "{method} {path}");
    }
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_mastered_on_premises_is_not_adopted() {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let onprem = stack
        .graph()
        .seed_user(shapes::on_premises_user("adele@contoso.com"))
        .unwrap();
    let pk = stack
        .authentik
        .sim
        .create_user(new_user("adele"), Mode::Silent);
    let services = stack.services().await;
    let conflict = failures(&stack, "user", &pk.to_string()).await;
    assert!(
        conflict
            .iter()
            .any(|e| e.contains("conflict") && e.contains(&onprem) && e.contains("on-premises")),
        "{conflict:?}"
    );
    assert!(
        stack
            .db
            .store
            .link("p", AkUserPk(pk))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(stack.requests("PATCH", "users/{id}"), 0);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_403_on_listing_users_halts_the_provider() {
    // The token doesn't tell, so only Graph's answer to discovery's list can.
    let graph = granted(&["Group.ReadWrite.All"], TokenFormat::Opaque);
    let stack = Stack::start_with(vec![ProviderSpec::new("p")], graph).await;
    stack
        .authentik
        .sim
        .create_user(new_user("adele"), Mode::Silent);
    let services = stack.services_unsettled();
    stack
        .eventually("provider halted", Duration::from_secs(30), || async {
            stack.db.store.halt_of("p").await.unwrap().is_some()
        })
        .await;
    let halt = stack.db.store.halt_of("p").await.unwrap().unwrap();
    assert!(
        halt.reason.contains("Authorization_RequestDenied"),
        "{}",
        halt.reason
    );
    assert_eq!(stack.graph().mutating_requests(), 0);
    services.stop().await;
}
