//! Drift made in the Entra portal, repaired by one full sync against what
//! Entra holds; and full syncs that cost nothing when nothing changed
//! (issue 10's "Reconcile against what Entra holds", issue 11's unchanged full sync).

use entra_sync_sim::authentik::{GroupPatch, Mode};
use entra_sync_store::runs::RunState;
use entra_sync_tests::{ProviderSpec, Stack, new_group, new_user};
use serde_json::json;
use std::time::Duration;

const RUN: Duration = Duration::from_secs(60);

/// Users u0…u4 and groups `staff` (u0…u3) and `ops` (u0, u1), made
/// silently; the users' pks and `ops`' pk.
fn organisation(stack: &Stack) -> (Vec<i64>, uuid::Uuid) {
    let sim = &stack.authentik.sim;
    let users: Vec<i64> = (0..5)
        .map(|i| sim.create_user(new_user(&format!("u{i}")), Mode::Silent))
        .collect();
    let staff = sim.create_group(new_group("staff"), Mode::Silent);
    for pk in &users[..4] {
        sim.add_member(staff, *pk, Mode::Silent);
    }
    let ops = sim.create_group(new_group("ops"), Mode::Silent);
    for pk in &users[..2] {
        sim.add_member(ops, *pk, Mode::Silent);
    }
    (users, ops)
}

/// The Entra id of the user with this UPN, or of the group with this name.
fn entra_id(stack: &Stack, kind: &str, key: &str) -> String {
    let property = if kind == "users" {
        "userPrincipalName"
    } else {
        "displayName"
    };
    stack.graph().state()[kind]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| {
            o[property]
                .as_str()
                .is_some_and(|v| v.eq_ignore_ascii_case(key))
        })
        .and_then(|o| o["id"].as_str())
        .unwrap_or_else(|| panic!("no Entra {kind} {key}"))
        .to_owned()
}

async fn assert_converged(stack: &Stack) {
    let expected = stack.expected("entra").await;
    assert_eq!(
        stack.actual(0, &expected),
        expected,
        "Entra differs from authentik's mapped state"
    );
}

/// Runs a full sync to its end; returns it and the objects it published.
async fn full_sync(stack: &Stack) -> (entra_sync_store::runs::Run, Vec<(String, String)>) {
    let id = stack.request_full_sync("entra").await;
    let run = stack.wait_for_run(id, RUN).await;
    assert_eq!(run.state, RunState::Done, "{run:?}");
    let conn = stack.db.store.conn().await.unwrap();
    let published = conn
        .query(
            "SELECT kind, object_id FROM sync_run_objects WHERE run_id = $1 ORDER BY kind, object_id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    (run, published)
}

#[tokio::test(flavor = "multi_thread")]
async fn five_portal_drifts_are_repaired_by_one_full_sync_and_the_next_writes_nothing() {
    let stack = Stack::start(vec![ProviderSpec::new("entra")]).await;
    organisation(&stack);
    let services = stack.services().await;
    assert_converged(&stack).await;
    stack.db.age_links().await;
    let graph = stack.graph();
    let deleted_user = entra_id(&stack, "users", "u1@contoso.com");
    let renamed = entra_id(&stack, "users", "u2@contoso.com");
    let disabled = entra_id(&stack, "users", "u3@contoso.com");
    let member = entra_id(&stack, "users", "u0@contoso.com");
    let staff = entra_id(&stack, "groups", "staff");
    let deleted_group = entra_id(&stack, "groups", "ops");
    graph.portal_delete(&deleted_user).unwrap();
    graph
        .portal_update(&renamed, json!({"displayName": "Hacked"}))
        .unwrap();
    graph
        .portal_update(&disabled, json!({"accountEnabled": false}))
        .unwrap();
    graph.portal_remove_member(&staff, &member).unwrap();
    graph.portal_delete(&deleted_group).unwrap();
    let creates = (
        stack.requests("POST", "users"),
        stack.requests("POST", "groups"),
    );

    let (run, published) = full_sync(&stack).await;
    assert_eq!(run.objects_failed, 0, "{run:?}");
    assert_converged(&stack).await;
    assert!(!published.is_empty());
    assert_eq!(
        entra_id(&stack, "users", "u1@contoso.com"),
        deleted_user,
        "restored from the deleted items with its id"
    );
    assert_eq!(entra_id(&stack, "groups", "ops"), deleted_group);
    assert!(graph.deleted_items().is_empty());
    assert_eq!(
        (
            stack.requests("POST", "users"),
            stack.requests("POST", "groups")
        ),
        creates,
        "restored, never created a second time"
    );

    let writes = graph.mutating_requests();
    let (_, published) = full_sync(&stack).await;
    assert_eq!(
        graph.mutating_requests(),
        writes,
        "the next full sync writes nothing"
    );
    assert_eq!(published, Vec::new(), "and publishes no task");
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_portal_deleted_user_gone_from_the_deleted_items_is_created_again_once() {
    let stack = Stack::start(vec![ProviderSpec::new("entra")]).await;
    organisation(&stack);
    let services = stack.services().await;
    stack.db.age_links().await;
    let graph = stack.graph();
    let gone = entra_id(&stack, "users", "u1@contoso.com");
    graph.portal_delete(&gone).unwrap();
    graph.portal_purge(&gone).unwrap();
    let creates = stack.requests("POST", "users");

    full_sync(&stack).await;
    assert_converged(&stack).await;
    assert_ne!(entra_id(&stack, "users", "u1@contoso.com"), gone);
    assert_eq!(stack.requests("POST", "users"), creates + 1, "created once");
    let writes = graph.mutating_requests();
    full_sync(&stack).await;
    assert_eq!(graph.mutating_requests(), writes);
    services.stop().await;
}

/// A cloud-only user added to the managed group `staff` in the portal.
fn cloud_only_member(stack: &Stack) -> (String, String) {
    let graph = stack.graph();
    let cloud = graph
        .seed_user(
            json!({"userPrincipalName": "cloud@contoso.com", "displayName": "cloud",
            "accountEnabled": true, "mailNickname": "cloud"}),
        )
        .unwrap();
    let staff = entra_id(stack, "groups", "staff");
    graph.seed_member(&staff, &cloud).unwrap();
    (staff, cloud)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cloud_only_member_is_left_alone_by_default() {
    let stack = Stack::start(vec![ProviderSpec::new("entra")]).await;
    organisation(&stack);
    let services = stack.services().await;
    let (staff, cloud) = cloud_only_member(&stack);
    let member = entra_id(&stack, "users", "u0@contoso.com");
    stack.graph().portal_remove_member(&staff, &member).unwrap();

    full_sync(&stack).await;
    let members = stack.graph().members(&staff);
    assert!(members.contains(&member), "the linked user is put back");
    assert!(members.contains(&cloud), "the cloud-only member stays");
    let writes = stack.graph().mutating_requests();
    let (_, published) = full_sync(&stack).await;
    assert_eq!(stack.graph().mutating_requests(), writes);
    assert_eq!(published, Vec::new());
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn remove_unmanaged_members_removes_a_cloud_only_member() {
    let mut spec = ProviderSpec::new("entra");
    spec.remove_unmanaged_members = true;
    let stack = Stack::start(vec![spec]).await;
    organisation(&stack);
    let services = stack.services().await;
    let (staff, cloud) = cloud_only_member(&stack);

    let (_, published) = full_sync(&stack).await;
    assert_eq!(
        published.len(),
        1,
        "only staff's memberships: {published:?}"
    );
    let members = stack.graph().members(&staff);
    assert!(!members.contains(&cloud), "removed");
    assert_eq!(members.len(), 4, "the linked members stay");
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_sync_publishes_tasks_only_for_what_changed_in_authentik_or_in_the_portal() {
    let stack = Stack::start(vec![ProviderSpec::new("entra")]).await;
    let (users, ops) = organisation(&stack);
    let services = stack.services().await;
    let (_, published) = full_sync(&stack).await;
    assert_eq!(
        published,
        Vec::new(),
        "an unchanged directory publishes no task"
    );

    // Changed in authentik without an event (only a full sync sees a group's) …
    stack.authentik.sim.update_group(
        ops,
        GroupPatch {
            name: Some("operations".into()),
            ..Default::default()
        },
        Mode::Silent,
    );
    // … and a user in the portal.
    let renamed = entra_id(&stack, "users", "u4@contoso.com");
    stack
        .graph()
        .portal_update(&renamed, json!({"displayName": "Renamed in the portal"}))
        .unwrap();
    let (_, published) = full_sync(&stack).await;
    assert_eq!(
        published,
        vec![
            ("group".to_owned(), ops.to_string()),
            ("user".to_owned(), users[4].to_string()),
        ]
    );
    assert_converged(&stack).await;
    let state = stack.graph().state();
    let user = state["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["userPrincipalName"] == "u4@contoso.com")
        .cloned()
        .unwrap();
    assert_eq!(user["displayName"], json!("u4 (display)"));
    services.stop().await;
}
