//! Full-sync runs against both simulators, the real PostgreSQL and RabbitMQ,
//! with a stand-in worker that finishes run objects as real workers do.

mod common;

use common::Env;
use entra_sync_core::ids::{AkGroupPk, AkUserPk, EntraObjectId};
use entra_sync_core::reconcile::DeleteAction;
use entra_sync_core::task::{ObjectKind, ObjectRef, TaskReason};
use entra_sync_producer::full_sync::full_sync;
use entra_sync_provider::{
    DeprovisionAction, GuardLimit, HeldBack, Provider, RunTrigger, ScopeSettings,
};
use entra_sync_queue::Lane;
use entra_sync_store::guard::{Deprovisioning, GuardDecision};
use entra_sync_store::links::{Link, LinkOrigin, LinkState};
use entra_sync_store::providers::HaltKind;
use entra_sync_store::runs::RunState;
use serde_json::json;
use std::time::Duration;

fn entra(n: u128) -> EntraObjectId {
    EntraObjectId::parse(&uuid::Uuid::from_u128(n).to_string()).unwrap()
}

/// Links authentik user `pk` of provider `p` to `entra_id`, as a worker that created it does.
async fn link_created_user(env: &Env, pk: i64, entra_id: EntraObjectId) {
    let link = Link {
        ak_id: AkUserPk(pk),
        entra_id,
        attributes: Default::default(),
        origin: LinkOrigin::Created,
        state: LinkState::Active,
    };
    env.store().save_link("p", &link).await.unwrap().unwrap();
}

async fn start(env: &Env, provider: &str) -> uuid::Uuid {
    env.store().register_provider(provider, "h").await.unwrap();
    env.store()
        .start_run(provider, RunTrigger::OnDemand)
        .await
        .unwrap()
        .id()
}

#[tokio::test]
async fn discovery_links_existing_objects_by_upn_mail_and_display_name_never_two() {
    let env = Env::new().await;
    let [adele_e, bob_e, carol_e] = [
        json!({"userPrincipalName": "Adele@Contoso.com", "displayName": "Adele", "accountEnabled": true, "mailNickname": "adele"}),
        json!({"userPrincipalName": "x1@contoso.onmicrosoft.com", "mail": "Bob@CONTOSO.com", "displayName": "Bob", "accountEnabled": true, "mailNickname": "x1"}),
        json!({"userPrincipalName": "carol@contoso.com", "displayName": "Carol", "accountEnabled": true, "mailNickname": "carol"}),
    ]
    .map(|user| env.graph.seed_user(user).unwrap());
    let sales_e = env
        .graph
        .seed_group(json!({"displayName": "Sales", "uniqueName": "grp-sales", "mailNickname": "sales", "mailEnabled": false, "securityEnabled": true}))
        .unwrap();
    env.graph
        .seed_group(json!({"displayName": "grp-ops", "uniqueName": "Ops", "mailNickname": "ops", "mailEnabled": false, "securityEnabled": true}))
        .unwrap();
    env.graph.seed_member(&sales_e, &adele_e).unwrap();
    env.graph.seed_member(&sales_e, &carol_e).unwrap();

    let adele = env.add_user("adele", "adele@contoso.com");
    let bob = env.add_user("bob", "bob@contoso.com");
    let carol1 = env.add_user("carol1", "carol@contoso.com");
    let carol2 = env.add_user("carol2", "CAROL@contoso.com");
    let sales = env.add_group("Sales");
    let ops = env.add_group("Ops");

    let run = start(&env, "p").await;
    let worker = env.worker(Duration::ZERO).await;
    let finished = full_sync(&env.ctx, &env.provider("p"), run).await.unwrap();

    let store = env.store();
    let link = |pk: i64| async move { store.link("p", AkUserPk(pk)).await.unwrap() };
    let adele_link = link(adele).await.expect("adele linked by UPN");
    assert_eq!(adele_link.entra_id.as_str(), adele_e);
    assert_eq!(adele_link.origin, LinkOrigin::Discovered);
    assert_eq!(
        adele_link.attributes.get("userPrincipalName"),
        Some(&json!("Adele@Contoso.com")),
        "the Entra object's listed attributes are stored, so only real differences get PATCHed"
    );
    assert!(!adele_link.attributes.contains_key("id"));
    assert_eq!(
        link(bob)
            .await
            .expect("bob linked by mail")
            .entra_id
            .as_str(),
        bob_e
    );
    assert_eq!(
        link(carol1)
            .await
            .expect("the first claimant is linked")
            .entra_id
            .as_str(),
        carol_e
    );
    assert_eq!(
        link(carol2).await,
        None,
        "one Entra user is never linked twice"
    );
    let sales_link = store
        .link("p", AkGroupPk(sales))
        .await
        .unwrap()
        .expect("Sales linked by displayName");
    assert_eq!(sales_link.entra_id.as_str(), sales_e);
    assert_eq!(
        store.link("p", AkGroupPk(ops)).await.unwrap(),
        None,
        "uniqueName is not the group match key"
    );
    let mut members = store.written_members("p", AkGroupPk(sales)).await.unwrap();
    members.sort();
    assert_eq!(
        members,
        vec![AkUserPk(adele), AkUserPk(carol1)],
        "existing members that are linked users count as written"
    );
    assert_eq!(
        env.graph.mutating_requests(),
        0,
        "discovery never writes to Graph"
    );

    assert_eq!(finished.state, RunState::Done);
    assert_eq!(finished.phase, "finished");
    // Only what differs from Entra gets a task: the three linked users (their
    // names differ), carol2 (unlinked), Ops (unlinked; Sales is as wanted),
    // and Sales' members (Entra holds two that authentik doesn't).
    assert_eq!(finished.objects_total, 4 + 1 + 1);
    assert_eq!(finished.objects_done, 6);
    assert_eq!(finished.objects_failed, 0);
    let seen = worker.seen();
    assert_eq!(seen.len(), 6);
    assert!(
        seen.iter()
            .all(|t| t.reason == TaskReason::FullSync && t.run_id == Some(run))
    );
    assert_eq!(env.ctx.metrics.tasks_published(Lane::Bulk), 6);
}

#[tokio::test]
async fn phases_run_in_order_users_then_groups_then_memberships() {
    let env = Env::new().await;
    // Everything exists in Entra, differing from authentik, so each object has a task.
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(env.add_user(&format!("u{i}"), &format!("u{i}@contoso.com")));
        env.graph
            .seed_user(json!({"userPrincipalName": format!("u{i}@contoso.com"),
                "displayName": "old", "accountEnabled": true, "mailNickname": format!("u{i}")}))
            .unwrap();
    }
    let g1 = env.add_group("g1");
    let g2 = env.add_group("g2");
    for (group, name) in [(g1, "g1"), (g2, "g2")] {
        env.graph
            .seed_group(json!({"displayName": name, "mailNickname": "old",
                "mailEnabled": false, "securityEnabled": true}))
            .unwrap();
        env.authentik
            .sim
            .add_member(group, users[0], entra_sync_sim::authentik::Mode::Evented);
    }
    let run = start(&env, "p").await;
    let worker = env.worker(Duration::from_millis(60)).await;
    let finished = full_sync(&env.ctx, &env.provider("p"), run).await.unwrap();
    assert_eq!(finished.state, RunState::Done);
    assert!(
        worker.violations.lock().unwrap().is_empty(),
        "{:?}",
        worker.violations.lock().unwrap()
    );
    let kinds: Vec<ObjectKind> = worker.seen().iter().map(|t| t.object.kind()).collect();
    let mut expected = vec![ObjectKind::User; 5];
    expected.extend([ObjectKind::Group; 2]);
    expected.extend([ObjectKind::Membership; 2]);
    assert_eq!(kinds, expected);
    let groups = worker.seen_ids(ObjectKind::Membership);
    assert!(groups.contains(&g1.to_string()) && groups.contains(&g2.to_string()));
}

#[tokio::test]
async fn out_of_scope_and_deleted_linked_users_are_planned_so_the_worker_can_deprovision_them() {
    let env = Env::new().await;
    let member = env.add_user("in", "in@contoso.com");
    let outside = env.add_user("out", "out@contoso.com");
    let staff = env.add_group("staff");
    env.authentik
        .sim
        .add_member(staff, member, entra_sync_sim::authentik::Mode::Evented);
    let store = env.store();
    store.register_provider("p", "h").await.unwrap();
    for (pk, n) in [(outside, 1), (999, 2)] {
        link_created_user(&env, pk, entra(n)).await;
    }
    let run = store
        .start_run("p", RunTrigger::OnDemand)
        .await
        .unwrap()
        .id();
    let worker = env.worker(Duration::ZERO).await;
    let mut provider = env.provider("p");
    provider.scope = ScopeSettings {
        filter_group: Some("staff".into()),
        exclude_service_accounts: true,
    };
    let finished = full_sync(&env.ctx, &provider, run).await.unwrap();
    assert_eq!(finished.state, RunState::Done);
    let mut users = worker.seen_ids(ObjectKind::User);
    users.sort();
    let mut expected = vec![member.to_string(), outside.to_string(), "999".to_string()];
    expected.sort();
    assert_eq!(users, expected, "in-scope users and every linked user");
}

/// The reason the deletion guard gives for holding back a full sync of `provider`.
fn held_back(provider: &Provider, would_be: u64, by_full_sync: u64) -> String {
    let reason = HeldBack {
        provider: provider.name.clone(),
        would_be,
        limit: provider.deletions.limit(),
        by_full_sync: Some(by_full_sync),
    };
    format!("provider halted: {reason}")
}

#[tokio::test]
async fn the_deletion_guard_stops_a_mass_delete_before_any_write_and_halts() {
    let env = Env::new().await;
    env.add_user("kept", "kept@contoso.com");
    let store = env.store();
    store.register_provider("p", "h").await.unwrap();
    // Three linked users are gone from authentik; one of them is already suspended.
    for (pk, n, state) in [
        (901, 1, LinkState::Active),
        (902, 2, LinkState::Active),
        (903, 3, LinkState::Suspended),
    ] {
        let link = Link {
            ak_id: AkUserPk(pk),
            entra_id: entra(n),
            attributes: Default::default(),
            origin: LinkOrigin::Created,
            state,
        };
        store.save_link("p", &link).await.unwrap().unwrap();
    }
    let gone_group = Link {
        ak_id: AkGroupPk(uuid::Uuid::from_u128(77)),
        entra_id: entra(77),
        attributes: Default::default(),
        origin: LinkOrigin::Created,
        state: LinkState::Active,
    };
    store.save_link("p", &gone_group).await.unwrap().unwrap();
    let run = |allowing_deletions: bool| async move {
        let started = if allowing_deletions {
            store
                .start_run_allowing_deletions("p", RunTrigger::ResumeAllowingDeletions)
                .await
        } else {
            store.start_run("p", RunTrigger::OnDemand).await
        };
        started.unwrap().id()
    };

    // delete: 3 users + 1 group = 4 > 3.
    let mut provider = env.provider("p");
    provider.deletions.threshold = 3;
    let finished = full_sync(&env.ctx, &provider, run(false).await)
        .await
        .unwrap();
    assert_eq!(finished.state, RunState::Failed);
    assert_eq!(finished.error, Some(held_back(&provider, 4, 4)));
    let halt = store.halt_of("p").await.unwrap().expect("halted");
    assert_eq!(halt.kind, HaltKind::DeletionGuard);
    assert!(
        halt.reason
            .contains("resume --provider p --allow-deletions"),
        "{}",
        halt.reason
    );
    assert_eq!(finished.objects_total, 0);
    assert!(
        env.drain(Lane::Bulk, Duration::from_millis(300))
            .await
            .is_empty()
    );
    assert_eq!(env.ctx.metrics.tasks_published(Lane::Bulk), 0);

    // suspend, groups left alone: the already suspended user does not count, so 2.
    store.resume("p").await.unwrap();
    provider.deletions.users = DeleteAction::Suspend;
    provider.deletions.groups = DeleteAction::DoNothing;
    provider.deletions.threshold = 1;
    let finished = full_sync(&env.ctx, &provider, run(false).await)
        .await
        .unwrap();
    assert_eq!(finished.error, Some(held_back(&provider, 2, 2)));

    // Within the threshold alone, but not with one already made within the window.
    store.resume("p").await.unwrap();
    provider.deletions.threshold = 2;
    let earlier = Deprovisioning {
        provider: "p",
        kind: ObjectKind::User,
        object_id: "900",
        action: DeprovisionAction::Delete,
        run_id: None,
    };
    let limit = GuardLimit {
        threshold: 2,
        window: provider.deletions.window,
    };
    assert_eq!(
        store.claim_deprovisioning(&earlier, limit).await.unwrap(),
        GuardDecision::Allowed
    );
    let finished = full_sync(&env.ctx, &provider, run(false).await)
        .await
        .unwrap();
    assert_eq!(finished.error, Some(held_back(&provider, 3, 2)));

    // `resume --allow-deletions`: the run is waived and goes through.
    store.resume("p").await.unwrap();
    let worker = env.worker(Duration::ZERO).await;
    let finished = full_sync(&env.ctx, &provider, run(true).await)
        .await
        .unwrap();
    assert_eq!(finished.state, RunState::Done, "{:?}", finished.error);
    assert_eq!(worker.seen().len(), finished.objects_total as usize);
    assert!(store.halt_of("p").await.unwrap().is_none());
}

#[tokio::test]
async fn a_halt_while_waiting_fails_the_run() {
    let env = Env::new().await;
    env.add_user("adele", "adele@contoso.com");
    let run = start(&env, "p").await;
    let ctx = env.ctx.clone();
    let provider = env.provider("p");
    // No worker: the run waits in the users phase.
    let running = tokio::spawn(async move { full_sync(&ctx, &provider, run).await });
    let store = env.store();
    tokio::time::timeout(Duration::from_secs(10), async {
        while store.run(run).await.unwrap().unwrap().phase != "users" {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the run reaches the users phase");
    store
        .halt("p", "mapping \"upn\" failed: boom")
        .await
        .unwrap();
    let finished = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the run ends")
        .unwrap()
        .unwrap();
    assert_eq!(finished.state, RunState::Failed);
    assert_eq!(
        finished.error.as_deref(),
        Some("provider halted: mapping \"upn\" failed: boom")
    );
    assert!(finished.finished_at.is_some());
}

#[tokio::test]
async fn a_missing_filter_group_halts_the_provider_naming_the_setting() {
    let env = Env::new().await;
    let run = start(&env, "p").await;
    let mut provider = env.provider("p");
    provider.scope.filter_group = Some("does-not-exist".into());
    let finished = full_sync(&env.ctx, &provider, run).await.unwrap();
    assert_eq!(finished.state, RunState::Failed);
    let halt = env.store().halt_of("p").await.unwrap().expect("halted");
    assert!(halt.reason.contains("filter_group"), "{}", halt.reason);
    assert!(halt.reason.contains("does-not-exist"), "{}", halt.reason);
    assert_eq!(
        finished.error.unwrap(),
        format!("provider halted: {}", halt.reason)
    );
    assert_eq!(env.ctx.metrics.tasks_published(Lane::Bulk), 0);
}

#[tokio::test]
async fn an_unreachable_authentik_fails_the_run_with_that_error() {
    let env = Env::new().await;
    env.add_user("adele", "adele@contoso.com");
    let run = start(&env, "p").await;
    env.authentik.sim.fail_next_requests(10, 503);
    let finished = full_sync(&env.ctx, &env.provider("p"), run).await.unwrap();
    assert_eq!(finished.state, RunState::Failed);
    let error = finished.error.unwrap();
    assert!(error.starts_with("authentik unreachable: "), "{error}");
    assert!(
        env.store().halt_of("p").await.unwrap().is_none(),
        "not a configuration error"
    );
}

#[tokio::test]
async fn executing_a_run_again_publishes_only_what_is_still_pending() {
    let env = Env::new().await;
    let a = env.add_user("a", "a@contoso.com");
    let b = env.add_user("b", "b@contoso.com");
    let run = start(&env, "p").await;
    // A first leader planned both users, published them and died; one was finished.
    let store = env.store();
    store
        .plan_run_objects(run, ObjectKind::User, &[a.to_string(), b.to_string()])
        .await
        .unwrap();
    store
        .finish_run_object(run, ObjectKind::User, &a.to_string(), false)
        .await
        .unwrap();
    let worker = env.worker(Duration::ZERO).await;
    let finished = full_sync(&env.ctx, &env.provider("p"), run).await.unwrap();
    assert_eq!(finished.state, RunState::Done);
    assert_eq!(finished.objects_total, 2);
    assert_eq!(finished.objects_done, 2);
    let users = worker.seen_ids(ObjectKind::User);
    assert_eq!(users, vec![b.to_string()]);
}

#[tokio::test]
async fn rejected_graph_credentials_halt_the_provider_during_discovery() {
    let env = Env::new().await;
    env.add_user("adele", "adele@contoso.com");
    let run = start(&env, "p").await;
    let mut provider = env.provider("p");
    let config = entra_sync_graph::GraphConfig::new(
        entra_sync_sim::graph::SimConfig::TENANT_ID,
        entra_sync_sim::graph::SimConfig::CLIENT_ID,
        entra_sync_graph::Secret::new("not-the-secret"),
    )
    .with_base_url(&env.graph.base_url());
    provider.graph = entra_sync_graph::GraphClient::new(config).unwrap();
    let finished = full_sync(&env.ctx, &provider, run).await.unwrap();
    assert_eq!(finished.state, RunState::Failed);
    let halt = env.store().halt_of("p").await.unwrap().expect("halted");
    assert!(
        halt.reason.starts_with("Microsoft Graph: "),
        "{}",
        halt.reason
    );
    assert!(
        !halt.reason.contains("not-the-secret"),
        "no secret in the reason"
    );
    assert_eq!(
        finished.error.unwrap(),
        format!("provider halted: {}", halt.reason)
    );
    assert_eq!(env.ctx.metrics.tasks_published(Lane::Bulk), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_link_a_worker_makes_while_discovery_runs_is_never_overwritten() {
    let env = Env::new().await;
    let adele = env.add_user("adele", "adele@contoso.com");
    env.graph
        .seed_user(json!({"userPrincipalName": "adele@contoso.com", "displayName": "Adele", "accountEnabled": true, "mailNickname": "adele"}))
        .unwrap();
    let made_by_worker = entra(42);
    let store = env.store().clone();
    let run = start(&env, "p").await;
    let _worker = env.worker(Duration::ZERO).await;
    let object = ObjectRef::User(AkUserPk(adele)).lock_name();

    // A worker holds adele's lock while discovery runs, and links her meanwhile.
    let held = store
        .lock_object("p", &object, Duration::from_secs(5))
        .await
        .unwrap()
        .expect("the lock is free");
    let provider = env.provider("p");
    let ctx = env.ctx.clone();
    let sync = tokio::spawn(async move { full_sync(&ctx, &provider, run).await });
    let started = std::time::Instant::now();
    while env.db.object_lock_waiters("p", &object).await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "discovery never waited for the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    link_created_user(&env, adele, made_by_worker.clone()).await;
    held.release().await.unwrap();

    let finished = sync.await.unwrap().unwrap();
    assert_eq!(finished.state, RunState::Done, "{finished:?}");
    let link = store.link("p", AkUserPk(adele)).await.unwrap().unwrap();
    assert_eq!(link.entra_id, made_by_worker, "the worker's link stays");
    assert_eq!(link.origin, LinkOrigin::Created);
}
