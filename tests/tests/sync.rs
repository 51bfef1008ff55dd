//! Full and direct sync end to end: what issue 5's "Done when" asks for.

use entra_sync_core::ids::AkUserPk;
use entra_sync_sim::authentik::{Mode, UserPatch, UserType};
use entra_sync_store::providers::HaltKind;
use entra_sync_store::runs::RunState;
use entra_sync_tests::{ProviderSpec, Stack, new_group, new_user};
use serde_json::json;
use std::time::Duration;

const SOON: Duration = Duration::from_secs(5);
const RUN: Duration = Duration::from_secs(60);

/// An organisation: `n` users, three groups with overlapping members, one
/// service account (out of scope) and one inactive user.
fn organisation(stack: &Stack, n: usize) -> Vec<i64> {
    let sim = &stack.authentik.sim;
    let users: Vec<i64> = (0..n)
        .map(|i| sim.create_user(new_user(&format!("user{i:03}")), Mode::Silent))
        .collect();
    let mut svc = new_user("robot");
    svc.user_type = UserType::ServiceAccount;
    sim.create_user(svc, Mode::Silent);
    let mut inactive = new_user("gone");
    inactive.is_active = false;
    sim.create_user(inactive, Mode::Silent);
    for (g, name) in ["staff", "ops", "sales"].iter().enumerate() {
        let group = sim.create_group(new_group(name), Mode::Silent);
        for (i, pk) in users.iter().enumerate() {
            if i % (g + 1) == 0 {
                sim.add_member(group, *pk, Mode::Silent);
            }
        }
    }
    users
}

async fn assert_converged(stack: &Stack, provider: &str, graph: usize) {
    let expected = stack.expected(provider).await;
    let actual = stack.actual(graph, &expected);
    assert_eq!(
        actual, expected,
        "Entra differs from authentik's mapped state"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_full_sync_links_what_exists_creates_the_rest_and_a_second_writes_nothing() {
    let stack = Stack::start(vec![ProviderSpec::new("entra")]).await;
    organisation(&stack, 45);
    // Pre-existing in Entra: a user matched by UPN (other case), one by mail,
    // a group by displayName with some members already in it.
    let by_upn = stack
        .graph()
        .seed_user(
            json!({"displayName": "old", "userPrincipalName": "USER001@contoso.com",
            "mailNickname": "user001", "accountEnabled": true}),
        )
        .unwrap();
    let by_mail = stack
        .graph()
        .seed_user(
            json!({"displayName": "old", "userPrincipalName": "legacy2@contoso.com",
            "mail": "user002@contoso.com", "mailNickname": "legacy2", "accountEnabled": false}),
        )
        .unwrap();
    let staff = stack
        .graph()
        .seed_group(json!({"displayName": "staff", "mailEnabled": false,
            "securityEnabled": true, "mailNickname": "staff"}))
        .unwrap();
    stack.graph().seed_member(&staff, &by_upn).unwrap();
    let services = stack.services().await;
    let run = stack.db.store.latest_run("entra").await.unwrap().unwrap();
    assert_eq!(run.state, RunState::Done, "{run:?}");
    // Users made just before the first start are the first full sync's work,
    // not also direct tasks from the `last_updated` watermark.
    let conn = stack.db.store.conn().await.unwrap();
    let direct: i64 = conn
        .query_one(
            "SELECT count(*) FROM object_outcomes WHERE kind = 'user' AND run_id IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(direct, 0, "users reconciled outside the full sync");
    assert_eq!(run.objects_failed, 0, "{run:?}");
    assert_converged(&stack, "entra", 0).await;
    let state = stack.graph().state();
    let ids: Vec<&str> = state["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&by_upn.as_str()) && ids.contains(&by_mail.as_str()),
        "adopted, not duplicated"
    );
    assert_eq!(
        stack.requests("POST", "users"),
        44,
        "45 in-scope users and the inactive one, two of them pre-existing"
    );

    let writes = stack.graph().mutating_requests();
    let id = stack.request_full_sync("entra").await;
    let second = stack.wait_for_run(id, RUN).await;
    assert_eq!(second.state, RunState::Done);
    assert_eq!(
        stack.graph().mutating_requests(),
        writes,
        "an unchanged directory costs zero writes"
    );
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_changes_of_every_kind_reach_entra_within_5_s() {
    let stack = Stack::start(vec![ProviderSpec::new("entra")]).await;
    let services = stack.services().await;
    let sim = &stack.authentik.sim;
    let state = || stack.graph().state();
    let user = sim.create_user(new_user("alice"), Mode::Evented);
    stack
        .eventually("user created", SOON, || async {
            state()["users"].as_array().unwrap().len() == 1
        })
        .await;
    sim.update_user(
        user,
        UserPatch {
            name: Some("Alice Liddell".into()),
            ..Default::default()
        },
        Mode::Evented,
    );
    stack
        .eventually("user renamed", SOON, || async {
            state()["users"][0]["displayName"] == "Alice Liddell"
        })
        .await;
    sim.update_user(
        user,
        UserPatch {
            is_active: Some(false),
            ..Default::default()
        },
        Mode::Evented,
    );
    stack
        .eventually("user disabled", SOON, || async {
            state()["users"][0]["accountEnabled"] == json!(false)
        })
        .await;
    let group = sim.create_group(new_group("wonderland"), Mode::Evented);
    stack
        .eventually("group created", SOON, || async {
            state()["groups"].as_array().unwrap().len() == 1
        })
        .await;
    sim.add_member(group, user, Mode::Evented);
    let members = || {
        let s = state();
        let gid = s["groups"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase();
        s["memberships"][gid].as_array().map_or(0, |m| m.len())
    };
    stack
        .eventually("member added", SOON, || async { members() == 1 })
        .await;
    sim.remove_member(group, user, Mode::Evented);
    stack
        .eventually("member removed", SOON, || async { members() == 0 })
        .await;
    sim.delete_group(group, Mode::Evented);
    stack
        .eventually("group deleted", SOON, || async {
            state()["groups"].as_array().unwrap().is_empty()
        })
        .await;
    sim.delete_user(user, Mode::Evented);
    stack
        .eventually("user deleted", SOON, || async {
            state()["users"].as_array().unwrap().is_empty()
        })
        .await;
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_mapping_halts_its_provider_and_another_provider_keeps_syncing() {
    let stack = Stack::start(ProviderSpec::broken_and_healthy()).await;
    organisation(&stack, 30);
    let services = stack.services_unsettled();
    stack
        .eventually("broken provider halted", RUN, || async {
            stack.db.store.halt_of("broken").await.unwrap().is_some()
        })
        .await;
    let halt = stack.db.store.halt_of("broken").await.unwrap().unwrap();
    assert!(halt.reason.contains("40-department"), "{}", halt.reason);
    stack
        .eventually("healthy provider's sync done", RUN, || async {
            stack
                .db
                .store
                .latest_run("healthy")
                .await
                .unwrap()
                .is_some_and(|r| r.state == RunState::Done)
        })
        .await;
    assert_converged(&stack, "healthy", 1).await;
    stack
        .eventually("broken provider's run failed", RUN, || async {
            stack
                .db
                .store
                .latest_run("broken")
                .await
                .unwrap()
                .is_some_and(|r| r.state == RunState::Failed)
        })
        .await;
    assert!(
        stack.graphs[0].mutating_requests() <= 5,
        "at most a handful of writes: {}",
        stack.graphs[0].mutating_requests()
    );
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_sends_nothing_and_reports_what_it_would_do() {
    let mut spec = ProviderSpec::new("entra");
    spec.dry_run = true;
    let stack = Stack::start(vec![spec]).await;
    organisation(&stack, 10);
    let services = stack.services().await;
    assert_eq!(stack.graph().mutating_requests(), 0);
    let conn = stack.db.store.conn().await.unwrap();
    let would: i64 = conn
        .query_one(
            "SELECT count(*) FROM object_outcomes WHERE action = 'dry_run'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(would >= 11, "every would-be create is reported: {would}");
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_upn_conflict_is_adopted_and_a_stale_link_is_recreated() {
    let stack = Stack::start(vec![ProviderSpec::new("entra")]).await;
    let services = stack.services().await;
    // Created in Entra by someone else after discovery ran.
    let existing = stack
        .graph()
        .seed_user(
            json!({"displayName": "someone", "userPrincipalName": "bob@contoso.com",
            "mailNickname": "bob", "accountEnabled": true}),
        )
        .unwrap();
    let bob = stack
        .authentik
        .sim
        .create_user(new_user("bob"), Mode::Evented);
    stack
        .eventually("adopted and patched", SOON, || async {
            let s = stack.graph().state();
            s["users"].as_array().unwrap().len() == 1
                && s["users"][0]["displayName"] == "bob (display)"
        })
        .await;
    assert_eq!(stack.graph().state()["users"][0]["id"], json!(existing));
    // Deleted in Entra behind our back; the next change re-creates it.
    stack.delete_user_in_entra(0, &existing).await;
    stack.authentik.sim.update_user(
        bob,
        UserPatch {
            name: Some("Bob B".into()),
            ..Default::default()
        },
        Mode::Evented,
    );
    stack
        .eventually("re-created", SOON, || async {
            let s = stack.graph().state();
            s["users"].as_array().unwrap().len() == 1 && s["users"][0]["displayName"] == "Bob B"
        })
        .await;
    assert_ne!(stack.graph().state()["users"][0]["id"], json!(existing));
    services.stop().await;
}

async fn leaving_scope(action: &str) -> (Stack, entra_sync_tests::Services) {
    let mut spec = ProviderSpec::new("entra");
    spec.filter_group = Some("entra-users".into());
    spec.user_delete_action = action.into();
    let stack = Stack::start(vec![spec]).await;
    let sim = &stack.authentik.sim;
    let filter = sim.create_group(new_group("entra-users"), Mode::Silent);
    let carol = sim.create_user(new_user("carol"), Mode::Silent);
    let dave = sim.create_user(new_user("dave"), Mode::Silent);
    sim.add_member(filter, carol, Mode::Silent);
    sim.add_member(filter, dave, Mode::Silent);
    let team = sim.create_group(new_group("team"), Mode::Silent);
    sim.add_member(team, carol, Mode::Silent);
    sim.add_member(team, dave, Mode::Silent);
    let services = stack.services().await;
    assert_eq!(stack.graph().state()["users"].as_array().unwrap().len(), 2);
    sim.remove_member(filter, carol, Mode::Evented);
    (stack, services)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_leaving_scope_is_suspended_when_so_configured() {
    let (stack, services) = leaving_scope("suspend").await;
    stack
        .eventually("carol disabled", SOON, || async {
            stack.graph().state()["users"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| {
                    u["userPrincipalName"] == "carol@contoso.com"
                        && u["accountEnabled"] == json!(false)
                })
        })
        .await;
    // Out of scope, so out of the Entra groups entra-sync manages; dave stays.
    stack
        .eventually("carol left the Entra group", SOON, || async {
            let expected = stack.expected("entra").await;
            let actual = stack.actual(0, &expected);
            actual.members["team"] == ["dave@contoso.com".to_owned()].into()
        })
        .await;
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_leaving_scope_is_deleted_when_so_configured() {
    let (stack, services) = leaving_scope("delete").await;
    stack
        .eventually("carol deleted", SOON, || async {
            let s = stack.graph().state();
            let users = s["users"].as_array().unwrap();
            users.len() == 1 && users[0]["userPrincipalName"] == "dave@contoso.com"
        })
        .await;
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deletion_threshold_stops_a_mass_delete() {
    let mut spec = ProviderSpec::new("entra");
    spec.deletion_threshold = 5;
    let stack = Stack::start(vec![spec]).await;
    let users = organisation(&stack, 20);
    let services = stack.services().await;
    let before = stack.graph().state()["users"].as_array().unwrap().len();
    for pk in users.iter().take(8) {
        stack.authentik.sim.delete_user(*pk, Mode::Silent);
    }
    let id = stack.request_full_sync("entra").await;
    let run = stack.wait_for_run(id, RUN).await;
    assert_eq!(run.state, RunState::Failed, "{run:?}");
    let error = run.error.unwrap_or_default();
    assert!(
        error.contains(
            "deletion guard: 8 deletions or suspensions within 1h would exceed deletion_threshold 5"
        ),
        "{error}"
    );
    let halt = stack
        .db
        .store
        .halt_of("entra")
        .await
        .unwrap()
        .expect("halted");
    assert_eq!(halt.kind, HaltKind::DeletionGuard, "{}", halt.reason);
    assert_eq!(
        stack.graph().state()["users"].as_array().unwrap().len(),
        before
    );
    assert_eq!(stack.requests("DELETE", "users/{id}"), 0);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_change_is_fixed_by_the_next_full_sync() {
    let stack = Stack::start(vec![ProviderSpec::new("entra")]).await;
    let users = organisation(&stack, 10);
    let services = stack.services().await;
    let sim = &stack.authentik.sim;
    // No events: an LDAP-style import renames a user and moves memberships.
    sim.update_user(
        users[3],
        UserPatch {
            name: Some("Renamed Quietly".into()),
            ..Default::default()
        },
        Mode::Silent,
    );
    let ops = stack
        .authentik_client()
        .group_by_name("ops")
        .await
        .unwrap()
        .unwrap();
    sim.remove_member(ops.pk.0, users[0], Mode::Silent);
    sim.add_member(ops.pk.0, users[1], Mode::Silent);
    let id = stack.request_full_sync("entra").await;
    let run = stack.wait_for_run(id, RUN).await;
    assert_eq!(run.state, RunState::Done, "{run:?}");
    assert_converged(&stack, "entra", 0).await;
    assert_eq!(
        stack
            .db
            .store
            .link_count::<AkUserPk>("entra")
            .await
            .unwrap(),
        11
    );
    services.stop().await;
}
