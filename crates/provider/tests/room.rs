//! The provider room against the real PostgreSQL and the Graph and authentik
//! simulators: starting runs, recording existing members, resolving scope.

use entra_sync_authentik::{ApiToken, AuthentikClient, ClientConfig};
use entra_sync_core::ids::{AkGroupPk, AkUserPk, EntraObjectId};
use entra_sync_core::scope::OutOfScope;
use entra_sync_provider::{
    PermissionError, Provider, RecordMembersError, RunRequest, RunTrigger, ScopeError,
    ScopeSettings, ScopedUser, record_existing_members, request_full_sync,
};
use entra_sync_sim::authentik::{Mode, NewGroup};
use entra_sync_sim::graph::{GraphSim, SimApp, SimConfig, TokenFormat};
use entra_sync_store::links::{Link, LinkOrigin, LinkState};
use entra_sync_store::providers::HaltKind;
use entra_sync_store::runs::RunState;
use entra_sync_store::testing::TestDatabase;
use serde_json::json;

mod common;

use common::{graph_client, provider};

fn link<K>(ak_id: K, entra_id: &str) -> Link<K> {
    Link {
        ak_id,
        entra_id: EntraObjectId::parse(entra_id).unwrap(),
        attributes: Default::default(),
        origin: LinkOrigin::Created,
        state: LinkState::Active,
    }
}

#[tokio::test]
async fn a_full_sync_starts_once_at_a_time_and_never_for_a_halted_provider() {
    let db = TestDatabase::migrated().await;
    let store = &db.store;
    // No graph request is made: any address will do.
    let provider = provider(graph_client("http://127.0.0.1:9"));

    // The provider's row is made on the way: `entra-sync sync` may come first.
    let first = request_full_sync(store, &provider, RunTrigger::OnDemand)
        .await
        .unwrap();
    let RunRequest::Started(run) = first else {
        panic!("{first:?}")
    };
    assert_eq!(
        store.run(run).await.unwrap().unwrap().trigger,
        "on_demand",
        "the trigger is stored as text"
    );
    assert_eq!(
        request_full_sync(store, &provider, RunTrigger::Schedule)
            .await
            .unwrap(),
        RunRequest::AlreadyRunning(run)
    );

    store.halt("p", "bad credentials").await.unwrap();
    assert_eq!(
        store.run(run).await.unwrap().unwrap().state,
        RunState::Failed,
        "halting ends the running run"
    );
    let halted = request_full_sync(store, &provider, RunTrigger::EventsGap)
        .await
        .unwrap();
    assert!(
        matches!(&halted, RunRequest::Halted(h) if h.reason == "bad credentials"),
        "{halted:?}"
    );
    assert_eq!(halted.run(), None);
    assert_eq!(store.latest_run("p").await.unwrap().unwrap().id, run);

    store.resume("p").await.unwrap();
    let resumed = request_full_sync(store, &provider, RunTrigger::Resume)
        .await
        .unwrap();
    assert!(matches!(resumed, RunRequest::Started(id) if id != run));
}

#[tokio::test]
async fn existing_members_that_are_linked_users_are_recorded_while_the_group_is_linked() {
    let db = TestDatabase::migrated().await;
    let store = &db.store;
    store.register_provider("p", "h").await.unwrap();
    let sim = GraphSim::start(SimConfig::default()).await.unwrap();
    let user = |n: &str| {
        sim.seed_user(json!({"userPrincipalName": format!("{n}@contoso.com"), "displayName": n, "accountEnabled": true, "mailNickname": n}))
            .unwrap()
    };
    let (linked, stranger) = (user("linked"), user("stranger"));
    let entra_group = sim
        .seed_group(json!({"displayName": "Sales", "mailNickname": "sales", "mailEnabled": false, "securityEnabled": true}))
        .unwrap();
    sim.seed_member(&entra_group, &linked).unwrap();
    sim.seed_member(&entra_group, &stranger).unwrap();
    store
        .save_link("p", &link(AkUserPk(7), &linked))
        .await
        .unwrap()
        .unwrap();
    let group = AkGroupPk(uuid::Uuid::from_u128(1));
    store
        .save_link("p", &link(group, &entra_group))
        .await
        .unwrap()
        .unwrap();
    let graph = graph_client(&sim.base_url());
    let entra_group = EntraObjectId::parse(&entra_group).unwrap();

    let recorded = record_existing_members(store, &graph, "p", group, &entra_group)
        .await
        .unwrap();
    assert_eq!(recorded, vec![AkUserPk(7)], "only linked users");
    assert_eq!(
        store.written_members("p", group).await.unwrap(),
        vec![AkUserPk(7)]
    );
    assert_eq!(sim.mutating_requests(), 0, "nothing is written to Graph");

    // A worker re-created the group meanwhile: its new link inherits nothing.
    store.delete_link("p", group).await.unwrap();
    let other = sim
        .seed_group(json!({"displayName": "Sales", "mailNickname": "sales2", "mailEnabled": false, "securityEnabled": true}))
        .unwrap();
    store
        .save_link("p", &link(group, &other))
        .await
        .unwrap()
        .unwrap();
    let relinked = record_existing_members(store, &graph, "p", group, &entra_group).await;
    assert!(
        matches!(relinked, Err(RecordMembersError::Relinked { .. })),
        "{relinked:?}"
    );
    assert!(store.written_members("p", group).await.unwrap().is_empty());
}

/// Provider `p` filtered by the authentik group named "staff", with its row.
async fn filtered(db: &TestDatabase) -> Provider {
    db.store.register_provider("p", "h").await.unwrap();
    let mut provider = provider(graph_client("http://127.0.0.1:9"));
    provider.scope = ScopeSettings {
        filter_group: Some("staff".into()),
        exclude_service_accounts: true,
    };
    provider
}

/// A fresh authentik simulator and a client of it.
async fn authentik() -> (entra_sync_sim::authentik::RunningSim, AuthentikClient) {
    let sim = entra_sync_sim::authentik::start(entra_sync_sim::authentik::SimConfig::new("t"))
        .await
        .unwrap();
    let client = authentik_client(&sim);
    (sim, client)
}

fn authentik_client(sim: &entra_sync_sim::authentik::RunningSim) -> AuthentikClient {
    let url = url::Url::parse(&sim.base_url()).unwrap();
    AuthentikClient::new(ClientConfig::new(url, ApiToken::new("t"))).unwrap()
}

fn staff(users: Vec<i64>) -> NewGroup {
    NewGroup {
        name: "staff".into(),
        users,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_missing_filter_group_halts_the_provider_until_it_exists_again_then_a_full_sync_starts() {
    let db = TestDatabase::migrated().await;
    let store = &db.store;
    let provider = filtered(&db).await;
    let (sim, authentik) = authentik().await;
    let scope = provider.shared_scope(&authentik, store);

    let missing = scope.refresh().await.unwrap_err();
    assert!(missing.is_configuration());
    assert!(matches!(missing, ScopeError::NoFilterGroup { .. }));
    let reason = "providers[p].filter_group: authentik has no group named \"staff\"; \
                  nothing is deleted or suspended for being out of scope until it exists";
    assert_eq!(missing.to_string(), reason);
    let halt = store.halt_of("p").await.unwrap().expect("halted");
    assert_eq!(
        (halt.kind, halt.reason.as_str()),
        (HaltKind::FilterGroupMissing, reason)
    );
    assert_eq!(
        provider
            .lift_filter_group_halt(&authentik, store)
            .await
            .unwrap(),
        None,
        "still missing: still halted"
    );
    assert!(store.halt_of("p").await.unwrap().is_some());

    let pk = sim.sim.create_group(staff(vec![]), Mode::Silent);
    let lifted = provider
        .lift_filter_group_halt(&authentik, store)
        .await
        .unwrap();
    let Some(RunRequest::Started(run)) = lifted else {
        panic!("{lifted:?}")
    };
    assert_eq!(
        store.run(run).await.unwrap().unwrap().trigger,
        "filter_group_restored"
    );
    assert_eq!(store.halt_of("p").await.unwrap(), None);
    assert_eq!(
        store.filter_group("p", "staff").await.unwrap().unwrap().pk,
        Some(AkGroupPk(pk)),
        "the new resolution is shared"
    );
}

#[tokio::test]
async fn a_halt_of_another_kind_is_never_lifted_by_the_filter_group() {
    let db = TestDatabase::migrated().await;
    let store = &db.store;
    let provider = filtered(&db).await;
    let (sim, authentik) = authentik().await;
    sim.sim.create_group(staff(vec![]), Mode::Silent);
    store.halt("p", "bad credentials").await.unwrap();
    assert_eq!(
        provider
            .lift_filter_group_halt(&authentik, store)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.halt_of("p").await.unwrap().unwrap().reason,
        "bad credentials"
    );
}

#[tokio::test]
async fn users_are_judged_on_the_shared_resolution_and_a_live_one_before_they_leave_the_scope() {
    let db = TestDatabase::migrated().await;
    let store = &db.store;
    let provider = filtered(&db).await;
    let (sim, authentik) = authentik().await;
    let user = |name: &str| {
        let new = entra_sync_sim::authentik::NewUser {
            username: name.into(),
            ..Default::default()
        };
        sim.sim.create_user(new, Mode::Silent)
    };
    let (member, outsider) = (user("member"), user("outsider"));
    let old = sim.sim.create_group(staff(vec![member]), Mode::Silent);
    let scope = provider.shared_scope(&authentik, store);
    assert_eq!(
        scope.refresh().await.unwrap().filter_group,
        Some(AkGroupPk(old))
    );

    // Re-created silently (a blueprint, a restore): a new pk, the same members.
    sim.sim.delete_group(old, Mode::Silent);
    let new = sim.sim.create_group(staff(vec![member]), Mode::Silent);
    assert_eq!(
        scope.current().await.unwrap().filter_group,
        Some(AkGroupPk(old)),
        "the shared resolution is used until something shows it may be stale"
    );
    assert!(
        matches!(scope.user(AkUserPk(member)).await.unwrap(), ScopedUser::InScope(u) if u.pk == AkUserPk(member)),
        "a member of the re-created group stays in scope"
    );
    assert_eq!(
        scope.current().await.unwrap().filter_group,
        Some(AkGroupPk(new)),
        "the live resolution is shared"
    );
    assert_eq!(
        scope.user(AkUserPk(outsider)).await.unwrap(),
        ScopedUser::OutOfScope(OutOfScope::NotInFilterGroup)
    );
    assert_eq!(scope.user(AkUserPk(9999)).await.unwrap(), ScopedUser::Gone);

    // Deleted for good: nobody leaves the scope, the provider halts.
    sim.sim.delete_group(new, Mode::Silent);
    let error = scope.user(AkUserPk(member)).await.unwrap_err();
    assert!(matches!(error, ScopeError::NoFilterGroup { .. }), "{error}");
    assert_eq!(
        store.halt_of("p").await.unwrap().unwrap().kind,
        HaltKind::FilterGroupMissing
    );
}

/// A Graph simulator whose app is granted `roles`, with tokens shaped by `format`.
async fn graph_granting(roles: &[&str], format: TokenFormat) -> GraphSim {
    GraphSim::start(SimConfig {
        apps: vec![SimApp {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            token_format: format,
            ..SimApp::new(SimConfig::CLIENT_ID, SimConfig::CLIENT_SECRET)
        }],
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_missing_permission_is_named_and_one_granted_since_is_seen_on_a_new_token() {
    let sim = graph_granting(&["User.ReadWrite.All"], TokenFormat::Jwt).await;
    let provider = provider(graph_client(&sim.base_url()));
    let error = provider.check_permissions().await.unwrap_err();
    let PermissionError::Missing { missing, .. } = &error else {
        panic!("{error}")
    };
    assert_eq!(missing.len(), 2, "{error}");
    assert!(
        error
            .to_string()
            .starts_with("providers[p]: the app's token lacks Group.ReadWrite.All"),
        "{error}"
    );
    // Granted meanwhile: the token cached so far predates it.
    sim.set_app_roles(SimConfig::CLIENT_ID, &["Directory.ReadWrite.All"]);
    provider.check_permissions().await.unwrap();
}

#[tokio::test]
async fn a_token_that_does_not_tell_its_permissions_passes_with_one_warning() {
    use std::sync::{Arc, Mutex};
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs = Arc::new(Mutex::new(Vec::new()));
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || Captured(writer.clone()))
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let sim = graph_granting(&SimApp::DEFAULT_ROLES, TokenFormat::JwtWithoutRoles).await;
    let provider = provider(graph_client(&sim.base_url()));
    for _ in 0..3 {
        provider.check_permissions().await.unwrap();
    }
    provider.clone().check_permissions().await.unwrap();
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text.matches("does not list its permissions").count(),
        1,
        "{text}"
    );
}
