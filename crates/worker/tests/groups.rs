//! Reconciling groups against the Graph and authentik simulators and the real PostgreSQL.

use entra_sync_core::ids::{AkGroupPk, EntraObjectId};
use entra_sync_core::mapping::{AppliesTo, CompiledMapping, Mapper};
use entra_sync_core::reconcile::DeleteAction;
use entra_sync_graph::{GraphClient, GraphConfig, RetryPolicy};
use entra_sync_sim::authentik::{GroupPatch, Mode};
use entra_sync_sim::graph::{CommitFault, LostAnswer};
use entra_sync_store::links::{GroupLink, Link, LinkOrigin, LinkState};
use entra_sync_worker::ReconcileError;
use entra_sync_worker::groups::GroupReconciler;
use entra_sync_worker::objects::ObjectAction;
use serde_json::json;

mod common;

use common::Env;

/// Building group reconcilers on the shared environment.
trait GroupEnv {
    fn reconciler(&self, on_delete: DeleteAction, mapper: Mapper, dry_run: bool)
    -> GroupReconciler;

    fn default_reconciler(&self) -> GroupReconciler {
        self.reconciler(DeleteAction::Delete, Mapper::default(), false)
    }
}

impl GroupEnv for Env {
    fn reconciler(
        &self,
        on_delete: DeleteAction,
        mapper: Mapper,
        dry_run: bool,
    ) -> GroupReconciler {
        GroupReconciler {
            provider: self.provider(),
            graph: self.graph_client(dry_run),
            authentik: self.authentik_client(),
            store: self.db.store.clone(),
            mapper,
            on_delete,
            guard: self.guard(dry_run),
        }
    }
}

async fn link(env: &Env, pk: AkGroupPk) -> Option<GroupLink> {
    env.db.store.link("p", pk).await.unwrap()
}

fn rename(env: &Env, pk: AkGroupPk, name: &str) {
    env.authentik.sim.update_group(
        pk.0,
        GroupPatch {
            name: Some(name.into()),
            ..Default::default()
        },
        Mode::Evented,
    );
}

#[tokio::test]
async fn a_new_group_is_created_with_one_upsert_and_an_unchanged_one_costs_no_write() {
    let env = Env::new().await;
    let pk = env.add_group("Sales Team");
    let r = env.default_reconciler();
    assert_eq!(r.reconcile(pk, None).await.unwrap(), ObjectAction::Created);
    assert_eq!(env.graph.counters().get("PATCH", "groups(uniqueName)"), 1);
    assert_eq!(env.graph.mutating_requests(), 1);
    let groups = env.entra("groups");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["displayName"], "Sales Team");
    assert_eq!(groups[0]["mailNickname"], "sales-team");
    assert_eq!(groups[0]["securityEnabled"], true);
    let link = link(&env, pk).await.unwrap();
    assert_eq!(link.entra_id.as_str(), groups[0]["id"].as_str().unwrap());
    assert_eq!(link.origin, LinkOrigin::Created);
    assert_eq!(link.attributes["displayName"], "Sales Team");

    assert_eq!(
        r.reconcile(pk, None).await.unwrap(),
        ObjectAction::Unchanged
    );
    assert_eq!(
        env.graph.mutating_requests(),
        1,
        "an unchanged group makes no write"
    );
}

#[tokio::test]
async fn a_rename_patches_only_the_changed_properties() {
    let env = Env::new().await;
    let pk = env.add_group("Sales");
    let r = env.default_reconciler();
    r.reconcile(pk, None).await.unwrap();
    rename(&env, pk, "Sales EMEA");
    assert_eq!(
        r.reconcile(pk, None).await.unwrap(),
        ObjectAction::Updated(vec!["displayName".into(), "mailNickname".into()])
    );
    assert_eq!(env.graph.counters().get("PATCH", "groups/{id}"), 1);
    assert_eq!(env.graph.mutating_requests(), 2);
    let groups = env.entra("groups");
    assert_eq!(groups[0]["displayName"], "Sales EMEA");
    assert_eq!(groups[0]["mailNickname"], "sales-emea");
    assert_eq!(
        link(&env, pk).await.unwrap().attributes["mailNickname"],
        "sales-emea",
        "the written attributes are remembered"
    );
    assert_eq!(
        r.reconcile(pk, None).await.unwrap(),
        ObjectAction::Unchanged
    );
    assert_eq!(env.graph.mutating_requests(), 2);
}

#[tokio::test]
async fn a_deleted_group_is_deleted_once_and_only_if_linked() {
    let env = Env::new().await;
    let linked = env.add_group("Linked");
    let never = env.add_group("Never synced");
    let r = env.default_reconciler();
    r.reconcile(linked, None).await.unwrap();
    env.authentik.sim.delete_group(linked.0, Mode::Evented);
    env.authentik.sim.delete_group(never.0, Mode::Evented);
    assert_eq!(
        r.reconcile(linked, None).await.unwrap(),
        ObjectAction::Deleted
    );
    assert_eq!(env.graph.counters().get("DELETE", "groups/{id}"), 1);
    assert!(env.entra("groups").is_empty());
    assert!(link(&env, linked).await.is_none());
    assert_eq!(
        r.reconcile(linked, None).await.unwrap(),
        ObjectAction::Unchanged
    );
    assert_eq!(
        r.reconcile(never, None).await.unwrap(),
        ObjectAction::Unchanged
    );
    assert_eq!(
        env.graph.mutating_requests(),
        2,
        "one POST and one DELETE, nothing for the unlinked group"
    );
}

#[tokio::test]
async fn do_nothing_and_suspend_drop_the_link_and_leave_entra_alone() {
    let env = Env::new().await;
    for action in [DeleteAction::DoNothing, DeleteAction::Suspend] {
        let pk = env.add_group(&format!("{action:?}"));
        let r = env.reconciler(action, Mapper::default(), false);
        r.reconcile(pk, None).await.unwrap();
        let writes = env.graph.mutating_requests();
        env.authentik.sim.delete_group(pk.0, Mode::Evented);
        assert_eq!(r.reconcile(pk, None).await.unwrap(), ObjectAction::Unlinked);
        assert!(link(&env, pk).await.is_none());
        assert_eq!(env.graph.mutating_requests(), writes, "{action:?}");
    }
    assert_eq!(env.graph.counters().get("DELETE", "groups/{id}"), 0);
    assert_eq!(env.entra("groups").len(), 2);
}

#[tokio::test]
async fn a_group_a_mapping_skips_is_not_touched() {
    let env = Env::new().await;
    let pk = env.add_group("Internal only");
    let skip = CompiledMapping::compile(
        "10-skip-internal",
        AppliesTo::Group,
        "if group.name == \"Internal only\":\n    skip_object()\nreturn None",
    )
    .unwrap();
    let r = env.reconciler(DeleteAction::Delete, Mapper::new(vec![skip]), false);
    assert_eq!(
        r.reconcile(pk, None).await.unwrap(),
        ObjectAction::Skipped("10-skip-internal".into())
    );
    assert_eq!(env.graph.mutating_requests(), 0);
    assert!(link(&env, pk).await.is_none());
}

#[tokio::test]
async fn a_same_named_group_is_adopted_not_duplicated() {
    let env = Env::new().await;
    let existing = env
        .graph
        .seed_group(json!({"displayName": "Sales", "mailEnabled": false, "securityEnabled": true, "mailNickname": "old-nick"}))
        .unwrap();
    let pk = env.add_group("Sales");
    let r = env.default_reconciler();
    assert_eq!(r.reconcile(pk, None).await.unwrap(), ObjectAction::Adopted);
    let groups = env.entra("groups");
    assert_eq!(groups.len(), 1, "no second Entra group");
    assert_eq!(
        groups[0]["mailNickname"], "sales",
        "the adopted group is brought to the desired state"
    );
    assert_eq!(
        groups[0]["uniqueName"],
        serde_json::Value::Null,
        "an adopted group keeps its own uniqueName (none)"
    );
    assert_eq!(env.graph.counters().get("PATCH", "groups/{id}"), 1);
    assert_eq!(env.graph.counters().get("PATCH", "groups(uniqueName)"), 0);
    let link = link(&env, pk).await.unwrap();
    assert_eq!(link.entra_id.as_str(), existing);
    assert_eq!(link.origin, LinkOrigin::Adopted);
    assert_eq!(
        r.reconcile(pk, None).await.unwrap(),
        ObjectAction::Unchanged
    );
    assert_eq!(env.graph.mutating_requests(), 1);
}

#[tokio::test]
async fn a_same_named_group_linked_to_another_group_is_not_adopted() {
    let env = Env::new().await;
    let existing = env
        .graph
        .seed_group(json!({"displayName": "Sales", "mailEnabled": false, "securityEnabled": true, "mailNickname": "sales"}))
        .unwrap();
    let other = env.add_group("Sales (other)");
    env.db
        .store
        .save_link(
            "p",
            &Link {
                ak_id: other,
                entra_id: EntraObjectId::parse(&existing).unwrap(),
                attributes: Default::default(),
                origin: LinkOrigin::Discovered,
                state: LinkState::Active,
            },
        )
        .await
        .unwrap()
        .unwrap();
    let pk = env.add_group("Sales");
    assert_eq!(
        env.default_reconciler().reconcile(pk, None).await.unwrap(),
        ObjectAction::Created
    );
    assert_eq!(env.entra("groups").len(), 2);
    assert_ne!(link(&env, pk).await.unwrap().entra_id.as_str(), existing);
}

#[tokio::test]
async fn several_unlinked_same_named_groups_are_a_permanent_failure_not_a_guess() {
    let env = Env::new().await;
    for _ in 0..2 {
        env.graph
            .seed_group(json!({"displayName": "Sales", "mailEnabled": false, "securityEnabled": true, "mailNickname": "sales"}))
            .unwrap();
    }
    let pk = env.add_group("Sales");
    let ReconcileError::Permanent(reason) = env
        .default_reconciler()
        .reconcile(pk, None)
        .await
        .unwrap_err()
    else {
        panic!("permanent")
    };
    assert!(
        reason.contains(&pk.to_string())
            && reason.contains("2 unlinked")
            && reason.contains("Sales"),
        "{reason}"
    );
    assert_eq!(env.graph.mutating_requests(), 0);
    assert!(link(&env, pk).await.is_none());
}

#[tokio::test]
async fn a_group_deleted_in_entra_is_restored_from_deleted_items_with_its_id() {
    let env = Env::new().await;
    let pk = env.add_group("Sales");
    let r = env.default_reconciler();
    r.reconcile(pk, None).await.unwrap();
    let old = link(&env, pk).await.unwrap().entra_id;
    env.graph_client(false).delete_group(&old).await.unwrap();
    rename(&env, pk, "Sales EMEA");
    let ReconcileError::Transient { .. } = r.reconcile(pk, None).await.unwrap_err() else {
        panic!("soon after the create, not found may be replication delay: retry, never duplicate")
    };
    assert_eq!(link(&env, pk).await.unwrap().entra_id, old);
    env.db.age_links().await;
    // The deleted group still holds the group's uniqueName: the upsert
    // conflicts, and the group is restored rather than made twice.
    assert_eq!(
        r.reconcile(pk, None).await.unwrap(),
        ObjectAction::Recreated
    );
    let new = link(&env, pk).await.unwrap();
    assert_eq!(old, new.entra_id, "restored, with its id");
    assert_eq!(new.origin, LinkOrigin::Created);
    assert_eq!(new.attributes["displayName"], "Sales EMEA");
    let counters = env.graph.counters();
    assert_eq!(
        counters.get("POST", "directory/deletedItems/{id}/restore"),
        1
    );
    assert_eq!(counters.with_status("PATCH", "groups(uniqueName)", 400), 1);
    let state = env.graph.state();
    assert!(state["deletedItems"].as_array().unwrap().is_empty());
    let groups = env.entra("groups");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["displayName"], "Sales EMEA");
    assert_eq!(groups[0]["uniqueName"], json!(pk.entra_unique_name()));
    assert_eq!(
        r.reconcile(pk, None).await.unwrap(),
        ObjectAction::Unchanged
    );
}

#[tokio::test]
async fn a_create_answered_504_after_commit_makes_one_group() {
    let env = Env::new().await;
    let pk = env.add_group("Sales");
    env.graph.fail_after_commit(CommitFault::on(
        "PATCH",
        "groups(uniqueName)",
        1,
        LostAnswer::Status(504),
    ));
    let r = env.default_reconciler();
    // The client sends the upsert again, which finds the group it made.
    assert_eq!(r.reconcile(pk, None).await.unwrap(), ObjectAction::Created);
    let counters = env.graph.counters();
    assert_eq!(counters.with_status("PATCH", "groups(uniqueName)", 504), 1);
    assert_eq!(counters.with_status("PATCH", "groups(uniqueName)", 204), 1);
    let groups = env.entra("groups");
    assert_eq!(groups.len(), 1, "no second group");
    let link = link(&env, pk).await.unwrap();
    assert_eq!(link.entra_id.as_str(), groups[0]["id"].as_str().unwrap());
    assert_eq!(link.attributes["displayName"], "Sales");
    assert_eq!(
        r.reconcile(pk, None).await.unwrap(),
        ObjectAction::Unchanged
    );
}

#[tokio::test]
async fn a_create_whose_connection_dropped_is_retried_by_key_not_blind() {
    let env = Env::new().await;
    let pk = env.add_group("Sales");
    env.graph.fail_after_commit(CommitFault::on(
        "PATCH",
        "groups(uniqueName)",
        1,
        LostAnswer::Drop,
    ));
    // Without inline retries the task fails and comes back as a new attempt.
    let config = GraphConfig {
        retry: RetryPolicy::none(),
        ..env.graph_config(false)
    };
    let r = GroupReconciler {
        graph: GraphClient::new(config).unwrap(),
        ..env.default_reconciler()
    };
    let ReconcileError::Transient { .. } = r.reconcile(pk, None).await.unwrap_err() else {
        panic!("an unknown outcome is transient")
    };
    assert_eq!(env.entra("groups").len(), 1, "committed before the drop");
    assert!(link(&env, pk).await.is_none());
    // The next attempt finds the group by name, sees our key and upserts it.
    assert_eq!(r.reconcile(pk, None).await.unwrap(), ObjectAction::Created);
    assert_eq!(env.entra("groups").len(), 1, "no second group");
    assert_eq!(env.graph.counters().get("POST", "groups"), 0);
}

#[tokio::test]
async fn a_broken_mapping_is_a_configuration_failure_naming_it() {
    let env = Env::new().await;
    let pk = env.add_group("Sales");
    let broken = CompiledMapping::compile(
        "20-description",
        AppliesTo::Group,
        "return {\"description\": group.nme}",
    )
    .unwrap();
    let r = env.reconciler(DeleteAction::Delete, Mapper::new(vec![broken]), false);
    let ReconcileError::Configuration(reason) = r.reconcile(pk, None).await.unwrap_err() else {
        panic!("configuration")
    };
    assert!(reason.contains("20-description"), "{reason}");
    assert_eq!(env.graph.mutating_requests(), 0);
}

#[tokio::test]
async fn an_invalid_body_is_a_permanent_failure_of_that_group() {
    let env = Env::new().await;
    let pk = env.add_group("Sales");
    let bad = CompiledMapping::compile(
        "30-nickname",
        AppliesTo::Group,
        "return {\"mailNickname\": \"has space\"}",
    )
    .unwrap();
    let r = env.reconciler(DeleteAction::Delete, Mapper::new(vec![bad]), false);
    let ReconcileError::Permanent(reason) = r.reconcile(pk, None).await.unwrap_err() else {
        panic!("permanent")
    };
    assert!(
        reason.contains(&pk.to_string()) && reason.contains("mailNickname"),
        "{reason}"
    );
    assert_eq!(env.graph.mutating_requests(), 0);
}

#[tokio::test]
async fn dry_run_reports_the_write_and_sends_nothing() {
    let env = Env::new().await;
    let pk = env.add_group("Sales");
    let r = env.reconciler(DeleteAction::Delete, Mapper::default(), true);
    let ObjectAction::DryRun(request) = r.reconcile(pk, None).await.unwrap() else {
        panic!("dry run")
    };
    assert_eq!(request.method, "PATCH");
    assert!(
        request
            .url
            .contains(&format!("groups(uniqueName='{}')", pk.entra_unique_name())),
        "{}",
        request.url
    );
    assert_eq!(request.body.unwrap()["displayName"], "Sales");
    assert_eq!(env.graph.mutating_requests(), 0);
    assert!(link(&env, pk).await.is_none());
}
