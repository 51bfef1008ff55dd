//! Convergence (issue 10): creates whose answer is lost are never repeated
//! blind, and membership changes made from a group's side reach the users.

use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_sim::authentik::Mode;
use entra_sync_sim::graph::{CommitFault, LostAnswer};
use entra_sync_store::links::{Link, LinkKey, LinkOrigin};
use entra_sync_tests::{AUTHENTIK_TOKEN, ProviderSpec, Stack, new_group, new_user};
use serde_json::json;
use std::time::Duration;

const SOON: Duration = Duration::from_secs(10);

/// Waits until Entra holds exactly authentik's mapped state (`actual`
/// fails on two Entra groups of one name).
async fn converged(stack: &Stack) {
    stack
        .eventually("Entra holds authentik's state", SOON, || async {
            let expected = stack.expected("p").await;
            stack.actual(0, &expected) == expected
        })
        .await;
}

/// Waits until authentik object `key` is linked, and returns its link: a
/// create whose answer was lost may be retried after a delay, while Entra
/// already holds the object.
async fn linked<K: LinkKey>(stack: &Stack, key: K) -> Link<K> {
    stack
        .eventually("linked", SOON, || async {
            stack.db.store.link("p", key).await.unwrap().is_some()
        })
        .await;
    stack.db.store.link("p", key).await.unwrap().unwrap()
}

fn entra(stack: &Stack, kind: &str) -> Vec<serde_json::Value> {
    stack.graph().state()[kind].as_array().unwrap().clone()
}

/// A group created while its create's answer is lost, as `answer`.
async fn group_create_lost(answer: LostAnswer) {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let services = stack.services().await;
    stack
        .graph()
        .fail_after_commit(CommitFault::on("PATCH", "groups(uniqueName)", 1, answer));
    let sim = &stack.authentik.sim;
    let member = sim.create_user(new_user("alice"), Mode::Evented);
    let group = sim.create_group(new_group("staff"), Mode::Evented);
    sim.add_member(group, member, Mode::Evented);
    let link = linked(&stack, AkGroupPk(group)).await;
    converged(&stack).await;

    let groups = entra(&stack, "groups");
    assert_eq!(groups.len(), 1, "no second group: {groups:?}");
    assert_eq!(
        groups[0]["uniqueName"],
        json!(AkGroupPk(group).entra_unique_name())
    );
    let status = match answer {
        LostAnswer::Status(s) => s,
        LostAnswer::Drop => 0,
    };
    let lost = stack
        .graph()
        .counters()
        .with_status("PATCH", "groups(uniqueName)", status);
    assert_eq!(lost, 1, "the create's answer was lost once");
    assert_eq!(stack.requests("POST", "groups"), 0, "never a blind POST");
    assert_eq!(link.entra_id.as_str(), groups[0]["id"].as_str().unwrap());
    assert_eq!(link.origin, LinkOrigin::Created);
    services.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_create_answered_504_after_commit_makes_one_group() {
    group_create_lost(LostAnswer::Status(504)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_create_whose_connection_drops_after_commit_makes_one_group() {
    group_create_lost(LostAnswer::Drop).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_create_answered_504_after_commit_adopts_the_user_it_made() {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let services = stack.services().await;
    stack
        .graph()
        .fail_after_commit(CommitFault::on("POST", "users", 1, LostAnswer::Status(504)));
    let pk = stack
        .authentik
        .sim
        .create_user(new_user("bob"), Mode::Evented);
    let link = linked(&stack, AkUserPk(pk)).await;
    converged(&stack).await;

    let users = entra(&stack, "users");
    assert_eq!(users.len(), 1, "no second user: {users:?}");
    let graph = stack.graph().counters();
    assert_eq!(graph.with_status("POST", "users", 504), 1, "{graph:?}");
    // The create was sent again and met its own UPN: the user was adopted.
    assert_eq!(graph.with_status("POST", "users", 400), 1, "{graph:?}");
    assert_eq!(link.entra_id.as_str(), users[0]["id"].as_str().unwrap());
    assert_eq!(link.origin, LinkOrigin::Adopted);
    services.stop().await;
}

/// `POST /api/v3/core/groups/{group}/{action}/` with `{"pk": user}`, as
/// authentik's admin UI sends it.
async fn group_side(stack: &Stack, group: uuid::Uuid, action: &str, user: i64) {
    let status = reqwest::Client::new()
        .post(format!(
            "{}api/v3/core/groups/{group}/{action}/",
            stack.authentik.base_url()
        ))
        .bearer_auth(AUTHENTIK_TOKEN)
        .json(&json!({ "pk": user }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 204, "{action}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_added_to_and_removed_from_the_filter_group_from_its_side_is_created_then_deprovisioned()
 {
    let mut spec = ProviderSpec::new("p");
    spec.filter_group = Some("entra".into());
    let stack = Stack::start(vec![spec]).await;
    let sim = &stack.authentik.sim;
    let insider = sim.create_user(new_user("insider"), Mode::Silent);
    let newcomer = sim.create_user(new_user("newcomer"), Mode::Silent);
    let filter = sim.create_group(new_group("entra"), Mode::Silent);
    sim.add_member(filter, insider, Mode::Silent);
    let services = stack.services().await;
    converged(&stack).await;
    assert_eq!(entra(&stack, "users").len(), 1);
    let events_before = sim.events().len();

    group_side(&stack, filter, "add_user", newcomer).await;
    let upns = |stack: &Stack| -> Vec<String> {
        entra(stack, "users")
            .iter()
            .map(|u| u["userPrincipalName"].as_str().unwrap().to_owned())
            .collect()
    };
    stack
        .eventually("the newcomer is created", SOON, || async {
            upns(&stack).contains(&"newcomer@contoso.com".to_owned())
        })
        .await;
    converged(&stack).await;

    group_side(&stack, filter, "remove_user", newcomer).await;
    stack
        .eventually("the newcomer is deprovisioned", SOON, || async {
            !upns(&stack).contains(&"newcomer@contoso.com".to_owned())
        })
        .await;
    converged(&stack).await;
    assert_eq!(upns(&stack), vec!["insider@contoso.com".to_owned()]);

    // authentik recorded both changes on the group only.
    let events: Vec<_> = sim.events()[events_before..]
        .iter()
        .map(|e| (e.action, e.model_name))
        .collect();
    assert_eq!(
        events,
        vec![("model_updated", "group"), ("model_updated", "group")]
    );
    services.stop().await;
}
