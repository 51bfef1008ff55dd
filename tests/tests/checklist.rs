//! authentik's own provider tests (`authentik-provider.md` §11), end to end:
//! changes are made in the authentik simulator the way its API makes them
//! (with events), and reach the Graph simulator through the producer, RabbitMQ,
//! the workers and PostgreSQL. Where authentik's behaviour is a known defect
//! (§17), the test checks the fixed behaviour and says so.

use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_sim::authentik::{GroupPatch, Mode, UserPatch};
use entra_sync_tests::{ProviderSpec, Stack, new_group, new_user};
use serde_json::json;
use std::time::Duration;

const SOON: Duration = Duration::from_secs(5);

/// Lets in-flight work finish, so "exactly n requests" is not checked too early.
async fn quiet() {
    tokio::time::sleep(Duration::from_millis(700)).await;
}

async fn user_links(stack: &Stack) -> i64 {
    stack
        .db
        .store
        .link_count::<AkUserPk>("entra")
        .await
        .unwrap()
}

async fn group_links(stack: &Stack) -> i64 {
    stack
        .db
        .store
        .link_count::<AkGroupPk>("entra")
        .await
        .unwrap()
}

async fn started(spec: ProviderSpec) -> (Stack, entra_sync_tests::Services) {
    let stack = Stack::start(vec![spec]).await;
    let services = stack.services().await;
    (stack, services)
}

#[tokio::test(flavor = "multi_thread")]
async fn user_create_makes_one_post_and_a_link() {
    let (stack, services) = started(ProviderSpec::new("entra")).await;
    stack
        .authentik
        .sim
        .create_user(new_user("jdoe"), Mode::Evented);
    stack
        .eventually("user linked", SOON, || async {
            user_links(&stack).await == 1
        })
        .await;
    quiet().await;
    assert_eq!(stack.requests("POST", "users"), 1);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn user_create_in_dry_run_makes_no_link_and_no_write() {
    let mut spec = ProviderSpec::new("entra");
    spec.dry_run = true;
    let (stack, services) = started(spec).await;
    let pk = stack
        .authentik
        .sim
        .create_user(new_user("jdoe"), Mode::Evented);
    stack
        .eventually("the would-be request is recorded", SOON, || async {
            let conn = stack.db.store.conn().await.unwrap();
            // The event and the watermark may both send the user: any attempt counts.
            let rows = conn
                .query(
                    "SELECT detail FROM object_outcomes WHERE action = 'dry_run' AND object_id = $1",
                    &[&pk.to_string()],
                )
                .await
                .unwrap();
            rows.iter().any(|r| {
                let detail: serde_json::Value = r.get(0);
                detail["method"] == "POST" && detail["body"]["userPrincipalName"] == "jdoe@contoso.com"
            })
        })
        .await;
    assert_eq!(user_links(&stack).await, 0);
    assert_eq!(stack.graph().mutating_requests(), 0);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_a_mapping_skips_is_not_created() {
    // authentik clears the provider's user mappings; here a mapping skips every user.
    let mut spec = ProviderSpec::new("entra");
    spec.mappings
        .push(("10-skip".into(), "user".into(), "skip_object()".into()));
    let (stack, services) = started(spec).await;
    let pk = stack
        .authentik
        .sim
        .create_user(new_user("jdoe"), Mode::Evented);
    stack
        .eventually("the skip is recorded", SOON, || async {
            let conn = stack.db.store.conn().await.unwrap();
            conn.query_opt(
                "SELECT 1 FROM object_outcomes WHERE action = 'skipped' AND object_id = $1 LIMIT 1",
                &[&pk.to_string()],
            )
            .await
            .unwrap()
            .is_some()
        })
        .await;
    assert_eq!(stack.requests("POST", "users"), 0);
    assert_eq!(user_links(&stack).await, 0);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn user_create_then_rename_makes_one_post_and_one_patch() {
    let (stack, services) = started(ProviderSpec::new("entra")).await;
    let pk = stack
        .authentik
        .sim
        .create_user(new_user("jdoe"), Mode::Evented);
    stack
        .eventually("user linked", SOON, || async {
            user_links(&stack).await == 1
        })
        .await;
    quiet().await;
    stack.authentik.sim.update_user(
        pk,
        UserPatch {
            name: Some("new name".into()),
            ..Default::default()
        },
        Mode::Evented,
    );
    stack
        .eventually("renamed in Entra", SOON, || async {
            stack.graph().state()["users"][0]["displayName"] == "new name"
        })
        .await;
    quiet().await;
    assert_eq!(stack.requests("POST", "users"), 1);
    assert_eq!(stack.requests("PATCH", "users/{id}"), 1);
    services.stop().await;
}

async fn create_then_delete(action: &str) -> (Stack, entra_sync_tests::Services) {
    let mut spec = ProviderSpec::new("entra");
    spec.user_delete_action = action.into();
    let (stack, services) = started(spec).await;
    let pk = stack
        .authentik
        .sim
        .create_user(new_user("jdoe"), Mode::Evented);
    stack
        .eventually("user linked", SOON, || async {
            user_links(&stack).await == 1
        })
        .await;
    quiet().await;
    stack.authentik.sim.delete_user(pk, Mode::Evented);
    (stack, services)
}

#[tokio::test(flavor = "multi_thread")]
async fn user_delete_makes_one_delete() {
    let (stack, services) = create_then_delete("delete").await;
    stack
        .eventually("deleted in Entra", SOON, || async {
            stack.graph().state()["users"]
                .as_array()
                .unwrap()
                .is_empty()
        })
        .await;
    quiet().await;
    assert_eq!(stack.requests("DELETE", "users/{id}"), 1);
    assert_eq!(user_links(&stack).await, 0);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn user_delete_with_suspend_disables_and_keeps_the_link() {
    let (stack, services) = create_then_delete("suspend").await;
    stack
        .eventually("disabled in Entra", SOON, || async {
            stack.graph().state()["users"][0]["accountEnabled"] == json!(false)
        })
        .await;
    quiet().await;
    assert_eq!(stack.requests("PATCH", "users/{id}"), 1);
    assert_eq!(stack.requests("DELETE", "users/{id}"), 0);
    // authentik drops the link here (defect D18); we keep it, marked suspended.
    assert_eq!(user_links(&stack).await, 1);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn user_delete_with_do_nothing_only_drops_the_link() {
    let (stack, services) = create_then_delete("do_nothing").await;
    stack
        .eventually("link dropped", SOON, || async {
            user_links(&stack).await == 0
        })
        .await;
    quiet().await;
    assert_eq!(stack.requests("PATCH", "users/{id}"), 0);
    assert_eq!(stack.requests("DELETE", "users/{id}"), 0);
    assert_eq!(stack.graph().state()["users"].as_array().unwrap().len(), 1);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn full_sync_discovers_an_existing_user_by_mail_and_lists_users_once() {
    let stack = Stack::start(vec![ProviderSpec::new("entra")]).await;
    // The Entra user's mail is the authentik e-mail; its UPN differs.
    let entra_id = stack
        .graph()
        .seed_user(json!({
            "displayName": "J Doe", "userPrincipalName": "j.doe.legacy@contoso.com",
            "mail": "jdoe@contoso.com", "mailNickname": "jdoe", "accountEnabled": true
        }))
        .unwrap();
    stack
        .authentik
        .sim
        .create_user(new_user("jdoe"), Mode::Silent);
    let services = stack.services().await;
    let users = stack.graph().state()["users"].clone();
    assert_eq!(
        users.as_array().unwrap().len(),
        1,
        "no second user: {users}"
    );
    assert_eq!(users[0]["id"], json!(entra_id));
    assert_eq!(stack.requests("POST", "users"), 0);
    assert_eq!(
        stack.requests("GET", "users"),
        1,
        "discovery lists users once"
    );
    assert_eq!(user_links(&stack).await, 1);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn group_create_makes_one_upsert_and_a_link() {
    let (stack, services) = started(ProviderSpec::new("entra")).await;
    stack
        .authentik
        .sim
        .create_group(new_group("staff"), Mode::Evented);
    stack
        .eventually("group linked", SOON, || async {
            group_links(&stack).await == 1
        })
        .await;
    quiet().await;
    assert_eq!(stack.requests("PATCH", "groups(uniqueName)"), 1);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_a_mapping_skips_is_not_created() {
    let mut spec = ProviderSpec::new("entra");
    spec.mappings
        .push(("10-skip".into(), "group".into(), "skip_object()".into()));
    let (stack, services) = started(spec).await;
    let pk = stack
        .authentik
        .sim
        .create_group(new_group("staff"), Mode::Evented);
    stack
        .eventually("the skip is recorded", SOON, || async {
            let conn = stack.db.store.conn().await.unwrap();
            conn.query_opt(
                "SELECT 1 FROM object_outcomes WHERE action = 'skipped' AND object_id = $1 LIMIT 1",
                &[&pk.hyphenated().to_string()],
            )
            .await
            .unwrap()
            .is_some()
        })
        .await;
    assert_eq!(stack.requests("PATCH", "groups(uniqueName)"), 0);
    assert_eq!(group_links(&stack).await, 0);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn group_create_then_rename_makes_one_create_and_one_patch() {
    let (stack, services) = started(ProviderSpec::new("entra")).await;
    let pk = stack
        .authentik
        .sim
        .create_group(new_group("staff"), Mode::Evented);
    stack
        .eventually("group linked", SOON, || async {
            group_links(&stack).await == 1
        })
        .await;
    quiet().await;
    stack.authentik.sim.update_group(
        pk,
        GroupPatch {
            name: Some("crew".into()),
            ..Default::default()
        },
        Mode::Evented,
    );
    stack
        .eventually("renamed in Entra", SOON, || async {
            stack.graph().state()["groups"][0]["displayName"] == "crew"
        })
        .await;
    quiet().await;
    assert_eq!(stack.requests("PATCH", "groups(uniqueName)"), 1);
    assert_eq!(stack.requests("PATCH", "groups/{id}"), 1);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn group_delete_makes_one_delete() {
    let (stack, services) = started(ProviderSpec::new("entra")).await;
    let pk = stack
        .authentik
        .sim
        .create_group(new_group("staff"), Mode::Evented);
    stack
        .eventually("group linked", SOON, || async {
            group_links(&stack).await == 1
        })
        .await;
    stack.authentik.sim.delete_group(pk, Mode::Evented);
    stack
        .eventually("deleted in Entra", SOON, || async {
            stack.graph().state()["groups"]
                .as_array()
                .unwrap()
                .is_empty()
        })
        .await;
    quiet().await;
    assert_eq!(stack.requests("DELETE", "groups/{id}"), 1);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn group_delete_with_do_nothing_only_drops_the_link() {
    let mut spec = ProviderSpec::new("entra");
    spec.group_delete_action = "do_nothing".into();
    let (stack, services) = started(spec).await;
    let pk = stack
        .authentik
        .sim
        .create_group(new_group("staff"), Mode::Evented);
    stack
        .eventually("group linked", SOON, || async {
            group_links(&stack).await == 1
        })
        .await;
    stack.authentik.sim.delete_group(pk, Mode::Evented);
    stack
        .eventually("link dropped", SOON, || async {
            group_links(&stack).await == 0
        })
        .await;
    quiet().await;
    assert_eq!(stack.requests("DELETE", "groups/{id}"), 0);
    assert_eq!(stack.graph().state()["groups"].as_array().unwrap().len(), 1);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn adding_then_removing_a_member_writes_each_once() {
    let (stack, services) = started(ProviderSpec::new("entra")).await;
    let user = stack
        .authentik
        .sim
        .create_user(new_user("jdoe"), Mode::Evented);
    let group = stack
        .authentik
        .sim
        .create_group(new_group("staff"), Mode::Evented);
    stack
        .eventually("both linked", SOON, || async {
            user_links(&stack).await == 1 && group_links(&stack).await == 1
        })
        .await;
    quiet().await;
    let writes_before = stack.graph().mutating_requests();
    stack.authentik.sim.add_member(group, user, Mode::Evented);
    let member_of = |stack: &Stack| {
        let state = stack.graph().state();
        let gid = state["groups"][0]["id"].as_str().unwrap().to_lowercase();
        state["memberships"][gid].as_array().map_or(0, |m| m.len())
    };
    stack
        .eventually("member added in Entra", SOON, || async {
            member_of(&stack) == 1
        })
        .await;
    quiet().await;
    // One write for the add (authentik: one POST members/$ref per member; we
    // PATCH members@odata.bind, 20 per request).
    assert_eq!(stack.graph().mutating_requests() - writes_before, 1);
    stack
        .authentik
        .sim
        .remove_member(group, user, Mode::Evented);
    stack
        .eventually("member removed in Entra", SOON, || async {
            member_of(&stack) == 0
        })
        .await;
    quiet().await;
    assert_eq!(stack.requests("DELETE", "groups/{id}/members/{id}/$ref"), 1);
    assert_eq!(stack.graph().mutating_requests() - writes_before, 2);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn full_sync_links_an_existing_group_by_display_name_not_unique_name() {
    let stack = Stack::start(vec![ProviderSpec::new("entra")]).await;
    // authentik matches uniqueName (defect D2); the fields differ here on purpose.
    let entra_id = stack
        .graph()
        .seed_group(json!({
            "displayName": "staff", "uniqueName": "something-else", "mailEnabled": false,
            "securityEnabled": true, "mailNickname": "staff"
        }))
        .unwrap();
    stack
        .authentik
        .sim
        .create_user(new_user("jdoe"), Mode::Silent);
    stack
        .authentik
        .sim
        .create_group(new_group("staff"), Mode::Silent);
    let services = stack.services().await;
    let groups = stack.graph().state()["groups"].clone();
    assert_eq!(
        groups.as_array().unwrap().len(),
        1,
        "no second group: {groups}"
    );
    assert_eq!(groups[0]["id"], json!(entra_id));
    assert_eq!(stack.requests("PATCH", "groups(uniqueName)"), 0);
    assert_eq!(stack.requests("GET", "users"), 1);
    assert_eq!(stack.requests("GET", "groups"), 1);
    services.stop().await;
}
