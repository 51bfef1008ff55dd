//! Reconciling users against the Graph and authentik simulators and the real PostgreSQL.

use entra_sync_core::ids::AkUserPk;
use entra_sync_core::mapping::{AppliesTo, CompiledMapping, Mapper};
use entra_sync_core::reconcile::DeleteAction;
use entra_sync_provider::{ScopeSettings, SharedScope};
use entra_sync_sim::authentik::{Mode, UserPatch};
use entra_sync_sim::graph::{CommitFault, LostAnswer};
use entra_sync_worker::ReconcileError;
use entra_sync_worker::objects::ObjectAction;
use entra_sync_worker::users::UserReconciler;
use serde_json::json;

mod common;

use common::Env;

/// Building user reconcilers on the shared environment.
trait UserEnv {
    /// Provider `p`'s user reconciler: it deletes what is gone, everyone is in
    /// scope, the default mappings apply and writes are sent. A test changes
    /// what it needs with `UserReconciler { .., ..env.default_reconciler() }`.
    fn default_reconciler(&self) -> UserReconciler;
}

impl UserEnv for Env {
    fn default_reconciler(&self) -> UserReconciler {
        let scope = ScopeSettings::default();
        UserReconciler {
            provider: self.provider(),
            graph: self.graph_client(false),
            store: self.db.store.clone(),
            mapper: Mapper::default(),
            scope: SharedScope::new("p", scope, &self.authentik_client(), &self.db.store),
            on_delete: DeleteAction::Delete,
            guard: self.guard(false),
        }
    }
}

/// Renames authentik user `pk`, with an event.
fn rename(env: &Env, pk: AkUserPk, name: &str) {
    env.authentik.sim.update_user(
        pk.0,
        UserPatch {
            name: Some(name.into()),
            ..Default::default()
        },
        Mode::Evented,
    );
}

#[tokio::test]
async fn a_new_user_is_created_once_and_an_unchanged_one_costs_no_write() {
    let env = Env::new().await;
    let pk = env.add_user("adele", "adele@contoso.com");
    let r = env.default_reconciler();
    assert_eq!(r.reconcile(pk, None).await.unwrap(), ObjectAction::Created);
    let users = env.entra("users");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["userPrincipalName"], "adele@contoso.com");
    assert_eq!(users[0]["displayName"], "adele name");
    let writes = env.graph.mutating_requests();
    assert_eq!(
        r.reconcile(pk, None).await.unwrap(),
        ObjectAction::Unchanged
    );
    assert_eq!(
        env.graph.mutating_requests(),
        writes,
        "an unchanged user makes no write"
    );
    let link = env.db.store.link("p", pk).await.unwrap().unwrap();
    assert!(
        !link.attributes.contains_key("passwordProfile"),
        "the password is never stored"
    );
}

#[tokio::test]
async fn a_rename_patches_only_the_display_name() {
    let env = Env::new().await;
    let pk = env.add_user("adele", "adele@contoso.com");
    let r = env.default_reconciler();
    r.reconcile(pk, None).await.unwrap();
    rename(&env, pk, "Adele Vance");
    assert_eq!(
        r.reconcile(pk, None).await.unwrap(),
        ObjectAction::Updated(vec!["displayName".into()])
    );
    assert_eq!(env.entra("users")[0]["displayName"], "Adele Vance");
}

#[tokio::test]
async fn a_taken_upn_is_adopted_not_duplicated() {
    let env = Env::new().await;
    env.graph
        .seed_user(json!({"userPrincipalName": "adele@contoso.com", "displayName": "Old", "accountEnabled": true, "mailNickname": "adele"}))
        .unwrap();
    let pk = env.add_user("adele", "adele@contoso.com");
    let r = env.default_reconciler();
    assert_eq!(r.reconcile(pk, None).await.unwrap(), ObjectAction::Adopted);
    let users = env.entra("users");
    assert_eq!(users.len(), 1, "no second Entra user");
    assert_eq!(
        users[0]["displayName"], "adele name",
        "the adopted user is brought to the desired state"
    );
    assert_eq!(
        r.reconcile(pk, None).await.unwrap(),
        ObjectAction::Unchanged
    );
}

#[tokio::test]
async fn a_user_whose_upn_is_held_by_another_linked_user_fails_without_a_write() {
    let env = Env::new().await;
    let first = env.add_user("adele", "adele@contoso.com");
    let second = env.add_user("adele2", "adele@contoso.com");
    let r = env.default_reconciler();
    assert_eq!(
        r.reconcile(first, None).await.unwrap(),
        ObjectAction::Created
    );
    let writes = env.graph.mutating_requests();
    let Err(ReconcileError::Permanent(why)) = r.reconcile(second, None).await else {
        panic!("a UPN held by a linked user is a permanent conflict");
    };
    assert!(
        why.contains("conflict") && why.contains(&format!("authentik user {first}")),
        "the failure names the user holding it: {why}"
    );
    assert_eq!(
        env.graph.mutating_requests(),
        writes + 1,
        "only the refused create is sent: the first user is not patched"
    );
    let users = env.entra("users");
    assert_eq!(users.len(), 1);
    assert_eq!(
        users[0]["displayName"], "adele name",
        "the first user's Entra user is left alone"
    );
    assert!(env.db.store.link("p", second).await.unwrap().is_none());
    assert_eq!(
        r.reconcile(first, None).await.unwrap(),
        ObjectAction::Unchanged,
        "the first user stays converged"
    );
}

#[tokio::test]
async fn a_stale_link_is_recreated() {
    let env = Env::new().await;
    let pk = env.add_user("adele", "adele@contoso.com");
    let r = env.default_reconciler();
    r.reconcile(pk, None).await.unwrap();
    let old = env.db.store.link("p", pk).await.unwrap().unwrap().entra_id;
    env.graph_client(false).delete_user(&old).await.unwrap();
    rename(&env, pk, "Renamed");
    assert_eq!(
        r.reconcile(pk, None).await.unwrap(),
        ObjectAction::Recreated
    );
    let new = env.db.store.link("p", pk).await.unwrap().unwrap().entra_id;
    assert_ne!(old, new);
    assert_eq!(env.entra("users").len(), 1);
}

#[tokio::test]
async fn a_deleted_user_is_suspended_or_deleted_per_config() {
    let env = Env::new().await;
    let suspended = env.add_user("sus", "sus@contoso.com");
    let deleted = env.add_user("del", "del@contoso.com");
    let suspend = UserReconciler {
        on_delete: DeleteAction::Suspend,
        ..env.default_reconciler()
    };
    let delete = env.default_reconciler();
    suspend.reconcile(suspended, None).await.unwrap();
    delete.reconcile(deleted, None).await.unwrap();
    env.authentik.sim.delete_user(suspended.0, Mode::Evented);
    env.authentik.sim.delete_user(deleted.0, Mode::Evented);
    assert_eq!(
        suspend.reconcile(suspended, None).await.unwrap(),
        ObjectAction::Suspended
    );
    assert_eq!(
        delete.reconcile(deleted, None).await.unwrap(),
        ObjectAction::Deleted
    );
    let users = env.entra("users");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["accountEnabled"], false);
    assert!(env.db.store.link("p", deleted).await.unwrap().is_none());
    let writes = env.graph.mutating_requests();
    assert_eq!(
        suspend.reconcile(suspended, None).await.unwrap(),
        ObjectAction::Unchanged,
        "suspended once"
    );
    assert_eq!(env.graph.mutating_requests(), writes);
}

#[tokio::test]
async fn a_user_leaving_the_filter_group_is_deprovisioned_and_never_an_unlinked_one() {
    let env = Env::new().await;
    let group = env.add_group("entra");
    let member = env.add_user("in", "in@contoso.com");
    let outsider = env.add_user("out", "out@contoso.com");
    env.authentik
        .sim
        .add_member(group.0, member.0, Mode::Evented);
    let r = UserReconciler {
        scope: env.scope(Some("entra")),
        ..env.default_reconciler()
    };
    assert_eq!(
        r.reconcile(member, None).await.unwrap(),
        ObjectAction::Created
    );
    assert_eq!(
        r.reconcile(outsider, None).await.unwrap(),
        ObjectAction::Unchanged,
        "out of scope and not linked: untouched"
    );
    env.authentik
        .sim
        .remove_member(group.0, member.0, Mode::Evented);
    assert_eq!(
        r.reconcile(member, None).await.unwrap(),
        ObjectAction::Deleted
    );
    assert!(env.entra("users").is_empty());
}

#[tokio::test]
async fn a_broken_mapping_is_a_configuration_failure_naming_it() {
    let env = Env::new().await;
    let pk = env.add_user("adele", "adele@contoso.com");
    let broken = CompiledMapping::compile(
        "20-department",
        AppliesTo::User,
        "return {\"department\": user.nme}",
    )
    .unwrap();
    let r = UserReconciler {
        mapper: Mapper::new(vec![broken]),
        ..env.default_reconciler()
    };
    let ReconcileError::Configuration(reason) = r.reconcile(pk, None).await.unwrap_err() else {
        panic!("configuration")
    };
    assert!(
        reason.contains("20-department") && reason.contains("line 1"),
        "{reason}"
    );
    assert_eq!(env.graph.mutating_requests(), 0);
}

#[tokio::test]
async fn bad_data_is_a_permanent_failure_of_that_user_only() {
    let env = Env::new().await;
    let bad = env.add_user("bad", "bad@unverified.example");
    let good = env.add_user("good", "good@contoso.com");
    let r = env.default_reconciler();
    let ReconcileError::Permanent(reason) = r.reconcile(bad, None).await.unwrap_err() else {
        panic!("permanent")
    };
    assert!(
        reason.contains("userPrincipalName") && reason.contains("not a verified domain"),
        "{reason}"
    );
    assert_eq!(
        r.reconcile(good, None).await.unwrap(),
        ObjectAction::Created
    );
}

#[tokio::test]
async fn dry_run_reports_the_write_and_sends_nothing() {
    let env = Env::new().await;
    let pk = env.add_user("adele", "adele@contoso.com");
    let r = UserReconciler {
        graph: env.graph_client(true),
        guard: env.guard(true),
        ..env.default_reconciler()
    };
    let ObjectAction::DryRun(request) = r.reconcile(pk, None).await.unwrap() else {
        panic!("dry run")
    };
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.body.unwrap()["userPrincipalName"],
        "adele@contoso.com"
    );
    assert_eq!(env.graph.mutating_requests(), 0);
    assert!(env.db.store.link("p", pk).await.unwrap().is_none());
}

#[tokio::test]
async fn a_user_create_answered_504_after_commit_adopts_the_user_it_made() {
    let env = Env::new().await;
    let pk = env.add_user("adele", "adele@contoso.com");
    env.graph
        .fail_after_commit(CommitFault::on("POST", "users", 1, LostAnswer::Status(504)));
    let r = env.default_reconciler();
    // The create is sent again, meets its own UPN, and adopts that user.
    assert_eq!(r.reconcile(pk, None).await.unwrap(), ObjectAction::Adopted);
    let counters = env.graph.counters();
    assert_eq!(counters.with_status("POST", "users", 504), 1);
    assert_eq!(counters.with_status("POST", "users", 400), 1);
    let users = env.entra("users");
    assert_eq!(users.len(), 1, "no second user");
    let link = env.db.store.link("p", pk).await.unwrap().unwrap();
    assert_eq!(link.entra_id.as_str(), users[0]["id"].as_str().unwrap());
    assert_eq!(users[0]["displayName"], "adele name");
    assert_eq!(
        r.reconcile(pk, None).await.unwrap(),
        ObjectAction::Unchanged
    );
}
