//! The deletion guard as the reconcilers meet it: every delete and suspension
//! is claimed first; one past the threshold is not sent and halts the provider.

use entra_sync_core::ids::AkUserPk;
use entra_sync_core::mapping::Mapper;
use entra_sync_core::reconcile::DeleteAction;
use entra_sync_provider::DeletionGuard;
use entra_sync_sim::authentik::Mode;
use entra_sync_store::providers::HaltKind;
use entra_sync_worker::ReconcileError;
use entra_sync_worker::groups::GroupReconciler;
use entra_sync_worker::objects::ObjectAction;
use entra_sync_worker::users::UserReconciler;
use std::time::Duration;

mod common;

use common::Env;

const WINDOW: Duration = Duration::from_secs(3600);

fn users(
    env: &Env,
    on_delete: DeleteAction,
    guard: DeletionGuard,
    dry_run: bool,
) -> UserReconciler {
    UserReconciler {
        provider: env.provider(),
        graph: env.graph_client(dry_run),
        store: env.db.store.clone(),
        mapper: Mapper::default(),
        scope: env.scope(None),
        on_delete,
        guard,
    }
}

/// `n` users created in Entra, then deleted in authentik.
async fn gone_users(env: &Env, n: usize) -> Vec<AkUserPk> {
    let create = users(env, DeleteAction::DoNothing, env.guard(false), false);
    let mut pks = Vec::new();
    for i in 0..n {
        let pk = env.add_user(&format!("g{i}"), &format!("g{i}@contoso.com"));
        assert_eq!(
            create.reconcile(pk, None).await.unwrap(),
            ObjectAction::Created
        );
        env.authentik.sim.delete_user(pk.0, Mode::Evented);
        pks.push(pk);
    }
    pks
}

/// With a threshold of 1: the first user's deprovisioning goes through as
/// `done`, the second one's is held back.
async fn first_passes_then_held_back(r: &UserReconciler, pks: [AkUserPk; 2], done: ObjectAction) {
    assert_eq!(r.reconcile(pks[0], None).await.unwrap(), done);
    assert!(matches!(
        r.reconcile(pks[1], None).await.unwrap_err(),
        ReconcileError::HeldBack(_)
    ));
}

/// Deletions and suspensions the guard counted within the window.
async fn claims(env: &Env) -> u64 {
    env.db
        .store
        .deprovisionings_within("p", WINDOW)
        .await
        .unwrap()
}

fn deletes(env: &Env) -> u64 {
    env.graph.counters().get("DELETE", "users/{id}")
}

#[tokio::test]
async fn a_delete_past_the_threshold_is_not_sent_and_halts_the_provider() {
    let env = Env::new().await;
    let gone = gone_users(&env, 3).await;
    let r = users(&env, DeleteAction::Delete, env.guard_with(2, false), false);
    for pk in &gone[..2] {
        assert_eq!(r.reconcile(*pk, None).await.unwrap(), ObjectAction::Deleted);
    }
    let ReconcileError::HeldBack(held) = r.reconcile(gone[2], None).await.unwrap_err() else {
        panic!("the third delete is held back")
    };
    assert_eq!(held.would_be, 3);
    assert_eq!(deletes(&env), 2, "the held-back delete was not sent");
    assert!(env.db.store.link("p", gone[2]).await.unwrap().is_some());
    let halt = env.db.store.halt_of("p").await.unwrap().expect("halted");
    assert_eq!(halt.kind, HaltKind::DeletionGuard);
    assert_eq!(halt.reason, held.to_string());
    assert_eq!(
        halt.reason,
        "deletion guard: 3 deletions or suspensions within 1h would exceed deletion_threshold 2; \
         nothing more was deleted. Check authentik, then run entra-sync resume --provider p --allow-deletions"
    );
}

#[tokio::test]
async fn a_suspension_counts_toward_the_threshold() {
    let env = Env::new().await;
    let gone = gone_users(&env, 2).await;
    let r = users(&env, DeleteAction::Suspend, env.guard_with(1, false), false);
    first_passes_then_held_back(&r, [gone[0], gone[1]], ObjectAction::Suspended).await;
    assert_eq!(
        env.graph.counters().get("PATCH", "users/{id}"),
        1,
        "the held-back suspension was not sent"
    );
    assert_eq!(claims(&env).await, 1);
}

#[tokio::test]
async fn a_group_delete_is_claimed_too() {
    let env = Env::new().await;
    env.db
        .store
        .claim_deprovisioning(
            &entra_sync_store::guard::Deprovisioning {
                provider: "p",
                kind: entra_sync_core::task::ObjectKind::User,
                object_id: "1",
                action: entra_sync_provider::DeprovisionAction::Delete,
                run_id: None,
            },
            entra_sync_provider::GuardLimit {
                threshold: 1,
                window: WINDOW,
            },
        )
        .await
        .unwrap();
    let r = GroupReconciler {
        provider: env.provider(),
        graph: env.graph_client(false),
        authentik: env.authentik_client(),
        store: env.db.store.clone(),
        mapper: Mapper::default(),
        on_delete: DeleteAction::Delete,
        guard: env.guard_with(1, false),
    };
    let pk = env.add_group("team");
    assert_eq!(r.reconcile(pk, None).await.unwrap(), ObjectAction::Created);
    env.authentik.sim.delete_group(pk.0, Mode::Evented);
    assert!(matches!(
        r.reconcile(pk, None).await.unwrap_err(),
        ReconcileError::HeldBack(_)
    ));
    assert_eq!(env.graph.counters().get("DELETE", "groups/{id}"), 0);
    assert_eq!(env.entra("groups").len(), 1);
}

#[tokio::test]
async fn dry_run_and_do_nothing_claim_nothing() {
    let env = Env::new().await;
    let gone = gone_users(&env, 2).await;
    let dry = users(&env, DeleteAction::Delete, env.guard_with(1, true), true);
    for pk in &gone {
        assert!(matches!(
            dry.reconcile(*pk, None).await.unwrap(),
            ObjectAction::DryRun(_)
        ));
    }
    let unlink = users(
        &env,
        DeleteAction::DoNothing,
        env.guard_with(1, false),
        false,
    );
    for pk in &gone {
        assert_eq!(
            unlink.reconcile(*pk, None).await.unwrap(),
            ObjectAction::Unlinked
        );
    }
    assert_eq!(claims(&env).await, 0);
    assert!(env.db.store.halt_of("p").await.unwrap().is_none());
    assert_eq!(deletes(&env), 0);
}

#[tokio::test]
async fn a_user_leaving_the_scope_is_claimed_like_a_deletion() {
    let env = Env::new().await;
    let staff = env.add_group("staff");
    let r = UserReconciler {
        scope: env.scope(Some("staff")),
        ..users(&env, DeleteAction::Delete, env.guard_with(1, false), false)
    };
    let mut members = Vec::new();
    for name in ["in1", "in2"] {
        let pk = env.add_user(name, &format!("{name}@contoso.com"));
        env.authentik.sim.add_member(staff.0, pk.0, Mode::Evented);
        assert_eq!(r.reconcile(pk, None).await.unwrap(), ObjectAction::Created);
        env.authentik
            .sim
            .remove_member(staff.0, pk.0, Mode::Evented);
        members.push(pk);
    }
    first_passes_then_held_back(&r, [members[0], members[1]], ObjectAction::Deleted).await;
    assert_eq!(deletes(&env), 1);
}
