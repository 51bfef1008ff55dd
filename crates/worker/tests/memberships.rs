//! Reconciling group memberships against the Graph and authentik simulators and the real PostgreSQL.

use entra_sync_core::ids::{AkGroupPk, AkUserPk, EntraObjectId};
use entra_sync_core::mapping::Mapper;
use entra_sync_core::reconcile::DeleteAction;
use entra_sync_sim::authentik::Mode;
use entra_sync_worker::ReconcileError;
use entra_sync_worker::groups::GroupReconciler;
use entra_sync_worker::memberships::{MembershipAction, MembershipReconciler};
use entra_sync_worker::objects::ObjectAction;
use entra_sync_worker::users::UserReconciler;
use serde_json::json;

mod common;

use common::Env;

/// Building the three reconcilers on the shared environment.
trait MembershipEnv {
    fn users(&self) -> UserReconciler;
    fn groups(&self) -> GroupReconciler;
    fn memberships(&self, dry_run: bool) -> MembershipReconciler;
}

impl MembershipEnv for Env {
    fn users(&self) -> UserReconciler {
        UserReconciler {
            provider: self.provider(),
            graph: self.graph_client(false),
            store: self.db.store.clone(),
            mapper: Mapper::default(),
            scope: self.scope(None),
            on_delete: DeleteAction::Delete,
            guard: self.guard(false),
        }
    }

    fn groups(&self) -> GroupReconciler {
        GroupReconciler {
            provider: self.provider(),
            graph: self.graph_client(false),
            authentik: self.authentik_client(),
            store: self.db.store.clone(),
            mapper: Mapper::default(),
            on_delete: DeleteAction::Delete,
            guard: self.guard(false),
        }
    }

    fn memberships(&self, dry_run: bool) -> MembershipReconciler {
        MembershipReconciler {
            provider: "p".into(),
            graph: self.graph_client(dry_run),
            authentik: self.authentik_client(),
            store: self.db.store.clone(),
            remove_unmanaged: false,
        }
    }
}

/// `n` users, linked (created in Entra) when `linked`.
async fn users(env: &Env, prefix: &str, n: usize, linked: bool) -> Vec<AkUserPk> {
    let r = env.users();
    let mut pks = Vec::new();
    for i in 0..n {
        let pk = env.add_user(&format!("{prefix}{i}"), &format!("{prefix}{i}@contoso.com"));
        if linked {
            assert_eq!(r.reconcile(pk, None).await.unwrap(), ObjectAction::Created);
        }
        pks.push(pk);
    }
    pks
}

/// A linked group with these authentik members.
async fn group_with(env: &Env, name: &str, members: &[AkUserPk]) -> AkGroupPk {
    let pk = env.add_group(name);
    for m in members {
        env.authentik.sim.add_member(pk.0, m.0, Mode::Evented);
    }
    assert_eq!(
        env.groups().reconcile(pk, None).await.unwrap(),
        ObjectAction::Created
    );
    pk
}

async fn entra_id_of_user(env: &Env, pk: AkUserPk) -> String {
    let link = env.db.store.link("p", pk).await.unwrap().unwrap();
    link.entra_id.as_str().to_owned()
}

async fn entra_members(env: &Env, group: AkGroupPk) -> Vec<String> {
    let link = env.db.store.link("p", group).await.unwrap().unwrap();
    env.graph.members(link.entra_id.as_str())
}

fn sorted(mut v: Vec<AkUserPk>) -> Vec<AkUserPk> {
    v.sort();
    v
}

#[tokio::test]
async fn members_are_added_twenty_per_request_and_a_second_pass_writes_nothing() {
    let env = Env::new().await;
    let members = users(&env, "u", 45, true).await;
    let group = group_with(&env, "All", &members).await;
    let before = env.graph.mutating_requests();
    let r = env.memberships(false);
    let MembershipAction::Synced {
        added,
        removed,
        waiting,
    } = r.reconcile(group).await.unwrap()
    else {
        panic!("synced")
    };
    assert_eq!(sorted(added), sorted(members.clone()));
    assert!(removed.is_empty() && waiting.is_empty());
    assert_eq!(
        env.graph.mutating_requests() - before,
        3,
        "45 members in 3 requests (20/20/5)"
    );
    assert_eq!(env.graph.counters().get("PATCH", "groups/{id}"), 3);
    assert_eq!(entra_members(&env, group).await.len(), 45);
    assert_eq!(
        sorted(env.db.store.written_members("p", group).await.unwrap()),
        sorted(members)
    );

    let after = env.graph.mutating_requests();
    assert_eq!(
        r.reconcile(group).await.unwrap(),
        MembershipAction::Synced {
            added: vec![],
            removed: vec![],
            waiting: vec![]
        }
    );
    assert_eq!(
        env.graph.mutating_requests(),
        after,
        "nothing changed, nothing written"
    );
}

#[tokio::test]
async fn a_member_removed_in_authentik_is_removed_with_one_request() {
    let env = Env::new().await;
    let members = users(&env, "u", 3, true).await;
    let group = group_with(&env, "Team", &members).await;
    let r = env.memberships(false);
    r.reconcile(group).await.unwrap();
    env.authentik
        .sim
        .remove_member(group.0, members[1].0, Mode::Evented);
    let before = env.graph.mutating_requests();
    assert_eq!(
        r.reconcile(group).await.unwrap(),
        MembershipAction::Synced {
            added: vec![],
            removed: vec![members[1]],
            waiting: vec![]
        }
    );
    assert_eq!(env.graph.mutating_requests() - before, 1);
    assert_eq!(
        env.graph
            .counters()
            .get("DELETE", "groups/{id}/members/{id}/$ref"),
        1
    );
    let left = entra_members(&env, group).await;
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&entra_id_of_user(&env, members[1]).await));
    assert_eq!(
        sorted(env.db.store.written_members("p", group).await.unwrap()),
        sorted(vec![members[0], members[2]])
    );
}

#[tokio::test]
async fn an_unlinked_member_waits_and_costs_no_request() {
    let env = Env::new().await;
    let linked = users(&env, "in", 2, true).await;
    let unlinked = users(&env, "later", 1, false).await;
    let all: Vec<AkUserPk> = linked.iter().chain(&unlinked).copied().collect();
    let group = group_with(&env, "Team", &all).await;
    let r = env.memberships(false);
    let before = env.graph.mutating_requests();
    let MembershipAction::Synced { added, waiting, .. } = r.reconcile(group).await.unwrap() else {
        panic!("synced")
    };
    assert_eq!(sorted(added), sorted(linked));
    assert_eq!(waiting, unlinked, "never silently dropped");
    assert_eq!(env.graph.mutating_requests() - before, 1);
    assert_eq!(entra_members(&env, group).await.len(), 2);

    // Once the user is linked, the membership task adds just that member.
    env.users().reconcile(unlinked[0], None).await.unwrap();
    let MembershipAction::Synced { added, waiting, .. } = r.reconcile(group).await.unwrap() else {
        panic!("synced")
    };
    assert_eq!(added, unlinked);
    assert!(waiting.is_empty());
    assert_eq!(entra_members(&env, group).await.len(), 3);
}

#[tokio::test]
async fn an_adopted_groups_existing_members_are_not_added_again() {
    let env = Env::new().await;
    let members = users(&env, "u", 3, true).await;
    let stranger = env
        .graph
        .seed_user(json!({"userPrincipalName": "stranger@contoso.com", "displayName": "S", "accountEnabled": true, "mailNickname": "stranger"}))
        .unwrap();
    let entra_group = env
        .graph
        .seed_group(json!({"displayName": "Team", "mailEnabled": false, "securityEnabled": true, "mailNickname": "team"}))
        .unwrap();
    for m in &members[..2] {
        env.graph
            .seed_member(&entra_group, &entra_id_of_user(&env, *m).await)
            .unwrap();
    }
    env.graph.seed_member(&entra_group, &stranger).unwrap();
    let group = env.add_group("Team");
    for m in &members {
        env.authentik.sim.add_member(group.0, m.0, Mode::Evented);
    }
    assert_eq!(
        env.groups().reconcile(group, None).await.unwrap(),
        ObjectAction::Adopted
    );
    assert_eq!(
        sorted(env.db.store.written_members("p", group).await.unwrap()),
        sorted(members[..2].to_vec()),
        "the Entra members that are linked users are recorded as written"
    );

    let before = env.graph.mutating_requests();
    assert_eq!(
        env.memberships(false).reconcile(group).await.unwrap(),
        MembershipAction::Synced {
            added: vec![members[2]],
            removed: vec![],
            waiting: vec![]
        }
    );
    assert_eq!(
        env.graph.mutating_requests() - before,
        1,
        "one add, only for the missing member"
    );
    let now = entra_members(&env, group).await;
    assert_eq!(now.len(), 4);
    assert!(
        now.contains(&stranger),
        "an Entra member we did not link is left alone"
    );
}

#[tokio::test]
async fn a_group_gone_or_not_linked_has_nothing_to_do() {
    let env = Env::new().await;
    let members = users(&env, "u", 1, true).await;
    let unlinked = env.add_group("Not yet");
    env.authentik
        .sim
        .add_member(unlinked.0, members[0].0, Mode::Evented);
    let gone = group_with(&env, "Gone", &members).await;
    env.authentik.sim.delete_group(gone.0, Mode::Evented);
    let r = env.memberships(false);
    let before = env.graph.mutating_requests();
    assert_eq!(
        r.reconcile(unlinked).await.unwrap(),
        MembershipAction::GroupNotLinked
    );
    assert_eq!(
        r.reconcile(gone).await.unwrap(),
        MembershipAction::GroupNotLinked
    );
    assert_eq!(env.graph.mutating_requests(), before);
}

#[tokio::test]
async fn a_member_deleted_in_entra_fails_permanently_after_the_others_are_written() {
    let env = Env::new().await;
    let members = users(&env, "u", 3, true).await;
    let group = group_with(&env, "Team", &members).await;
    let gone = EntraObjectId::parse(&entra_id_of_user(&env, members[1]).await).unwrap();
    env.graph_client(false).delete_user(&gone).await.unwrap();
    env.db.age_links().await;
    let ReconcileError::Permanent(reason) =
        env.memberships(false).reconcile(group).await.unwrap_err()
    else {
        panic!("permanent")
    };
    assert!(
        reason.contains(&members[1].to_string()) && reason.contains("1 member"),
        "{reason}"
    );
    assert_eq!(entra_members(&env, group).await.len(), 2);
    assert_eq!(
        sorted(env.db.store.written_members("p", group).await.unwrap()),
        sorted(vec![members[0], members[2]]),
        "the others are written and recorded"
    );
}

#[tokio::test]
async fn a_group_deleted_in_entra_drops_its_stale_link() {
    let env = Env::new().await;
    let members = users(&env, "u", 2, true).await;
    let group = group_with(&env, "Team", &members).await;
    let entra_group = env
        .db
        .store
        .link("p", group)
        .await
        .unwrap()
        .unwrap()
        .entra_id;
    env.graph_client(false)
        .delete_group(&entra_group)
        .await
        .unwrap();
    env.db.age_links().await;
    let ReconcileError::Permanent(reason) =
        env.memberships(false).reconcile(group).await.unwrap_err()
    else {
        panic!("permanent")
    };
    assert!(reason.contains(entra_group.as_str()), "{reason}");
    assert!(env.db.store.link("p", group).await.unwrap().is_none());
    assert_eq!(
        env.groups().reconcile(group, None).await.unwrap(),
        ObjectAction::Created,
        "the group's next sync creates it again"
    );
}

#[tokio::test]
async fn dry_run_reports_the_requests_and_sends_and_records_nothing() {
    let env = Env::new().await;
    let members = users(&env, "u", 25, true).await;
    let group = group_with(&env, "All", &members).await;
    let before = env.graph.mutating_requests();
    let MembershipAction::DryRun(requests) = env.memberships(true).reconcile(group).await.unwrap()
    else {
        panic!("dry run")
    };
    assert_eq!(requests.len(), 2, "20 + 5 members");
    assert!(requests.iter().all(|r| r.method == "PATCH"));
    assert_eq!(
        requests[0].body.as_ref().unwrap()["members@odata.bind"]
            .as_array()
            .unwrap()
            .len(),
        20
    );
    assert_eq!(env.graph.mutating_requests(), before);
    assert!(entra_members(&env, group).await.is_empty());
    assert!(
        env.db
            .store
            .written_members("p", group)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn not_found_soon_after_linking_is_retried_later_not_failed() {
    let env = Env::new().await;
    let members = users(&env, "u", 2, true).await;
    let group = group_with(&env, "Team", &members).await;
    let gone = EntraObjectId::parse(&entra_id_of_user(&env, members[1]).await).unwrap();
    env.graph_client(false).delete_user(&gone).await.unwrap();
    let err = env.memberships(false).reconcile(group).await.unwrap_err();
    assert!(
        matches!(err, ReconcileError::Transient { .. }),
        "a just-linked member may not have replicated yet: {err}"
    );
    assert!(env.db.store.link("p", group).await.unwrap().is_some());
}

#[tokio::test]
async fn a_suspended_member_is_removed_and_waits() {
    let env = Env::new().await;
    let filter = env.add_group("entra users");
    let members = users(&env, "u", 2, false).await;
    let scoped = UserReconciler {
        scope: env.scope(Some("entra users")),
        on_delete: DeleteAction::Suspend,
        ..env.users()
    };
    for m in &members {
        env.authentik.sim.add_member(filter.0, m.0, Mode::Evented);
        assert_eq!(
            scoped.reconcile(*m, None).await.unwrap(),
            ObjectAction::Created
        );
    }
    let group = group_with(&env, "Team", &members).await;
    let r = env.memberships(false);
    r.reconcile(group).await.unwrap();
    env.authentik
        .sim
        .remove_member(filter.0, members[0].0, Mode::Evented);
    assert_eq!(
        scoped.reconcile(members[0], None).await.unwrap(),
        ObjectAction::Suspended
    );
    assert_eq!(
        r.reconcile(group).await.unwrap(),
        MembershipAction::Synced {
            added: vec![],
            removed: vec![members[0]],
            waiting: vec![members[0]],
        },
        "out of scope: out of the Entra group, and back in once re-enabled"
    );
    assert_eq!(entra_members(&env, group).await.len(), 1);
}
