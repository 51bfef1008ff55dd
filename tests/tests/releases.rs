//! authentik's checklist end to end against the authentik simulator in each
//! release mode: discovery, create, update and delete of users and groups,
//! membership add and remove. Entra must end up exact in every release. On
//! releases before 2025.8 (no `last_updated`), a silent user change is synced
//! by the silent scan.

use entra_sync_sim::authentik::{GroupPatch, Mode, Release, UserPatch};
use entra_sync_tests::{ProviderSpec, Stack, new_group, new_user};
use serde_json::json;
use std::time::Duration;

const SOON: Duration = Duration::from_secs(15);

async fn exact(stack: &Stack) -> bool {
    let expected = stack.expected("entra").await;
    stack.actual(0, &expected) == expected
}

async fn assert_exact(stack: &Stack, what: &str) {
    stack
        .eventually(what, SOON, || async { exact(stack).await })
        .await;
    let expected = stack.expected("entra").await;
    assert_eq!(stack.actual(0, &expected), expected, "{what}");
}

async fn checklist(release: Release) {
    let stack = Stack::start_release(vec![ProviderSpec::new("entra")], release).await;
    // Discovery: an Entra user whose mail is the authentik e-mail.
    let discovered = stack
        .graph()
        .seed_user(json!({
            "displayName": "Old Name", "userPrincipalName": "legacy.disc@contoso.com",
            "mail": "disc@contoso.com", "mailNickname": "disc", "accountEnabled": true
        }))
        .unwrap();
    let sim = &stack.authentik.sim;
    sim.create_user(new_user("disc"), Mode::Silent);
    let services = stack.services().await;
    assert_eq!(
        stack.requests("POST", "users"),
        0,
        "{release}: discovered, not created"
    );
    assert_eq!(stack.graph().state()["users"][0]["id"], json!(discovered));
    assert_exact(&stack, "discovery").await;

    // Create users and groups; add members.
    let alice = sim.create_user(new_user("alice"), Mode::Evented);
    let bob = sim.create_user(new_user("bob"), Mode::Evented);
    let staff = sim.create_group(new_group("staff"), Mode::Evented);
    let doomed = sim.create_group(new_group("doomed"), Mode::Evented);
    sim.add_member(staff, alice, Mode::Evented);
    sim.add_member(staff, bob, Mode::Evented);
    sim.add_member(doomed, bob, Mode::Evented);
    assert_exact(&stack, "created").await;

    // Update; remove a member; delete a user and a group.
    sim.update_user(
        alice,
        UserPatch {
            name: Some("Alice Renamed".into()),
            ..Default::default()
        },
        Mode::Evented,
    );
    sim.update_group(
        staff,
        GroupPatch {
            name: Some("staff-renamed".into()),
            ..Default::default()
        },
        Mode::Evented,
    );
    sim.remove_member(staff, bob, Mode::Evented);
    sim.delete_group(doomed, Mode::Evented);
    sim.delete_user(bob, Mode::Evented);
    assert_exact(&stack, "updated and deleted").await;
    let state = stack.graph().state();
    assert_eq!(state["users"].as_array().unwrap().len(), 2, "{release}");
    assert_eq!(state["groups"].as_array().unwrap().len(), 1, "{release}");

    // A silent change (an LDAP import): the watermark, or before 2025.8 the
    // silent scan, finds it.
    sim.update_user(
        alice,
        UserPatch {
            name: Some("Alice Imported".into()),
            ..Default::default()
        },
        Mode::Silent,
    );
    stack
        .eventually("silent change synced", SOON, || async {
            stack.graph().state()["users"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["displayName"] == "Alice Imported")
        })
        .await;
    assert_exact(&stack, "silent change").await;
    let known = stack.db.store.authentik_server().await.unwrap().unwrap();
    assert_eq!(known.behaves_as, release.to_string());
    assert_eq!(known.version.unwrap(), release.version_current());
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn checklist_on_2024_2() {
    checklist(Release::V2024_2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn checklist_on_2024_12() {
    checklist(Release::V2024_12).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn checklist_on_2025_4() {
    checklist(Release::V2025_4).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn checklist_on_2025_10() {
    checklist(Release::V2025_10).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn checklist_on_2026_8() {
    checklist(Release::V2026_8).await;
}
