//! The Graph client against the Graph simulator: every operation and every failure class.

use entra_sync_core::backoff::Backoff;
use entra_sync_core::entra::{NotOwnable, Ownable};
use entra_sync_core::failure::{FailureClass, FailureContext, Operation, Target};
use entra_sync_core::ids::EntraObjectId;
use entra_sync_graph::{
    BatchRequest, GraphClient, GraphConfig, GroupLookup, RequestCost, RequestGate, RetryPolicy,
    Secret, ThrottleSignals, Upserted, UserLookup, Written,
};
use entra_sync_sim::graph::{
    FaultConfig, GraphSim, RuQuota, Seed, SimApp, SimConfig, ThrottleConfig, TokenFormat, shapes,
};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

fn config_for(sim: &GraphSim) -> GraphConfig {
    GraphConfig::new(
        SimConfig::TENANT_ID,
        SimConfig::CLIENT_ID,
        Secret::new(SimConfig::CLIENT_SECRET),
    )
    .with_base_url(&sim.base_url())
}

async fn start(config: SimConfig) -> (GraphSim, GraphClient) {
    start_with_retry(config, RetryPolicy::default()).await
}

/// The simulator, and a client on it that retries by `retry`.
async fn start_with_retry(config: SimConfig, retry: RetryPolicy) -> (GraphSim, GraphClient) {
    let sim = GraphSim::start(config).await.expect("simulator starts");
    let config = GraphConfig {
        retry,
        ..config_for(&sim)
    };
    let client = GraphClient::new(config).expect("client builds");
    (sim, client)
}

/// The default simulator with this throttle.
fn throttled(throttle: ThrottleConfig) -> SimConfig {
    SimConfig {
        throttle,
        ..SimConfig::default()
    }
}

fn no_throttle() -> SimConfig {
    throttled(ThrottleConfig::disabled())
}

/// A throttle that lets `quota` writes through per `window`.
fn write_quota(quota: u32, window: Duration) -> ThrottleConfig {
    ThrottleConfig {
        write_quota: quota,
        write_window: window,
        ..ThrottleConfig::default()
    }
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().expect("a JSON object")
}

fn user_body(alias: &str) -> Map<String, Value> {
    object(json!({
        "accountEnabled": true,
        "displayName": format!("User {alias}"),
        "mailNickname": alias.replace('\'', ""),
        "userPrincipalName": format!("{alias}@contoso.com"),
        "passwordProfile": {"forceChangePasswordNextSignIn": true, "password": "Str0ng!Passw0rd"}
    }))
}

fn group_body(name: &str) -> Map<String, Value> {
    object(
        json!({"displayName": name, "mailEnabled": false, "mailNickname": name, "securityEnabled": true}),
    )
}

async fn create_user(client: &GraphClient, alias: &str) -> EntraObjectId {
    client
        .create_user(&user_body(alias))
        .await
        .expect("user created")
        .value()
        .expect("not a dry run")
        .id
}

async fn create_group(client: &GraphClient, name: &str) -> EntraObjectId {
    let upserted = client
        .upsert_group(&format!("key-{name}"), &group_body(name))
        .await
        .expect("group created")
        .value()
        .expect("not a dry run");
    let Upserted::Created(group) = upserted else {
        panic!("a new key creates")
    };
    group.id
}

fn class_of<T: std::fmt::Debug>(r: Result<T, entra_sync_graph::GraphFailure>) -> FailureClass {
    r.expect_err("should fail").class
}

/// Asserts that the write `what` was withheld as a dry run.
fn assert_dry_run<T>(written: Result<Written<T>, entra_sync_graph::GraphFailure>, what: &str) {
    assert!(written.expect(what).is_dry_run(), "{what}");
}

#[tokio::test]
async fn users_groups_and_organization_round_trip() {
    let (sim, client) = start(no_throttle()).await;
    let domains = client.verified_domains().await.unwrap();
    assert_eq!(domains.len(), 1);
    assert_eq!(domains[0].name, "contoso.com");
    assert!(domains[0].is_default);

    let created = client
        .create_user(&user_body("o'neil"))
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!(
        created.user_principal_name.as_deref(),
        Some("o'neil@contoso.com")
    );
    let id = created.id.clone();
    let read = client.get_user(&id, false).await.unwrap();
    assert_eq!(read.account_enabled, Some(true));
    assert_eq!(read.mail_nickname.as_deref(), Some("oneil"));

    let patch = object(json!({"displayName": "Renamed"}));
    assert!(matches!(
        client.update_user(&id, &patch, false).await.unwrap(),
        Written::Done { .. }
    ));
    assert_eq!(
        client
            .get_user(&id, false)
            .await
            .unwrap()
            .display_name
            .as_deref(),
        Some("Renamed")
    );
    let found = client
        .find_users(UserLookup::UserPrincipalName, "o'neil@contoso.com")
        .await
        .unwrap();
    assert_eq!(found.iter().map(|u| &u.id).collect::<Vec<_>>(), vec![&id]);
    assert_eq!(
        client
            .find_users(UserLookup::DisplayName, "Renamed")
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        client
            .find_users(UserLookup::Mail, "nobody@contoso.com")
            .await
            .unwrap()
            .is_empty()
    );

    let group = create_group(&client, "staff").await;
    let g = client.get_group(&group, false).await.unwrap();
    assert_eq!(
        (g.security_enabled, g.mail_enabled),
        (Some(true), Some(false))
    );
    client
        .update_group(&group, &object(json!({"description": "All staff"})), false)
        .await
        .unwrap();
    assert_eq!(
        client
            .find_groups(GroupLookup::DisplayName, "staff")
            .await
            .unwrap()[0]
            .id,
        group
    );
    assert_eq!(client.list_groups().collect_all().await.unwrap().len(), 1);
    assert_eq!(client.list_users().collect_all().await.unwrap().len(), 1);

    assert!(matches!(
        client.delete_user(&id).await.unwrap(),
        Written::Done { .. }
    ));
    assert!(matches!(
        client.delete_user(&id).await.unwrap(),
        Written::AlreadyDone { .. }
    ));
    assert!(matches!(
        client.delete_group(&group).await.unwrap(),
        Written::Done { .. }
    ));
    let state = sim.state();
    assert_eq!(state["users"].as_array().unwrap().len(), 0);
    assert_eq!(state["groups"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn listing_streams_pages_and_follows_next_links() {
    let (sim, client) = start(no_throttle()).await;
    let users = (0..2_500)
        .map(|i| json!({"userPrincipalName": format!("u{i}@contoso.com"), "displayName": format!("U {i}"), "accountEnabled": true}))
        .collect();
    sim.seed(Seed {
        users,
        ..Seed::default()
    })
    .unwrap();
    let pages: Vec<_> = client.list_users().into_stream().collect().await;
    let sizes: Vec<usize> = pages.into_iter().map(|p| p.unwrap().len()).collect();
    assert_eq!(sizes, vec![999, 999, 502]);
    assert_eq!(sim.counters().with_status("GET", "users", 200), 3);
}

#[tokio::test]
async fn members_are_listed_added_and_removed() {
    let (sim, client) = start(no_throttle()).await;
    let group = create_group(&client, "team").await;
    let a = create_user(&client, "a").await;
    let b = create_user(&client, "b").await;
    let added = client
        .add_members(&group, &[a.clone(), b.clone()], false)
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!(added.added, vec![a.clone(), b.clone()]);
    let listed = client.list_members(&group).collect_all().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0].odata_type.as_deref(),
        Some("#microsoft.graph.user")
    );
    assert!(matches!(
        client.remove_member(&group, &a).await.unwrap(),
        Written::Done { .. }
    ));
    assert!(matches!(
        client.remove_member(&group, &a).await.unwrap(),
        Written::AlreadyDone { .. }
    ));
    assert_eq!(sim.members(group.as_str()), vec![b.to_string()]);
}

#[tokio::test]
async fn member_add_falls_back_to_single_adds_when_one_is_already_present() {
    let (sim, client) = start(no_throttle()).await;
    let group = create_group(&client, "team").await;
    let users = [
        create_user(&client, "a").await,
        create_user(&client, "b").await,
        create_user(&client, "c").await,
    ];
    client
        .add_members(&group, &users[1..2], false)
        .await
        .unwrap();

    let report = client
        .add_members(&group, &users, false)
        .await
        .unwrap()
        .value()
        .unwrap();
    assert!(report.complete(), "{report:?}");
    assert_eq!(report.already_present, vec![users[1].clone()]);
    assert_eq!(report.added, vec![users[0].clone(), users[2].clone()]);
    let mut want: Vec<String> = users.iter().map(ToString::to_string).collect();
    want.sort();
    assert_eq!(sim.members(group.as_str()), want);
    let counters = sim.counters();
    assert_eq!(
        counters.with_status("PATCH", "groups/{id}", 400),
        1,
        "the whole PATCH failed"
    );
    assert_eq!(counters.get("POST", "$batch"), 1);
    assert_eq!(
        counters.with_status("POST", "groups/{id}/members/$ref", 204),
        2
    );
    assert_eq!(
        counters.with_status("POST", "groups/{id}/members/$ref", 400),
        1
    );
}

#[tokio::test]
async fn batch_reports_each_inner_result() {
    let (sim, client) = start(no_throttle()).await;
    let user = create_user(&client, "a").await;
    let group = create_group(&client, "team").await;
    client
        .add_members(&group, std::slice::from_ref(&user), false)
        .await
        .unwrap();
    let missing = EntraObjectId::parse("00000000-0000-0000-0000-0000000000aa").unwrap();
    let req =
        |id: &str, method: reqwest::Method, url: String, body: Option<Value>, op: Operation| {
            BatchRequest {
                id: id.into(),
                method,
                url,
                body,
                context: FailureContext::new(
                    op,
                    if op == Operation::AddMembers {
                        Target::Group
                    } else {
                        Target::User
                    },
                ),
                action: format!("inner {id}"),
            }
        };
    let requests = vec![
        req(
            "get",
            reqwest::Method::GET,
            format!("/users/{user}"),
            None,
            Operation::Read,
        ),
        req(
            "gone",
            reqwest::Method::GET,
            format!("/users/{missing}"),
            None,
            Operation::Read,
        ),
        req(
            "dup",
            reqwest::Method::POST,
            format!("/groups/{group}/members/$ref"),
            Some(
                json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{user}")}),
            ),
            Operation::AddMembers,
        ),
        req(
            "bad",
            reqwest::Method::PATCH,
            format!("/users/{user}"),
            Some(json!({"mailNickname": "bad nick"})),
            Operation::Update,
        ),
    ];
    let items = client.batch(requests).await.unwrap().value().unwrap();
    let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(
        ids,
        vec!["get", "gone", "dup", "bad"],
        "answers matched back by id, in request order"
    );
    assert_eq!(items[0].status, 200);
    assert!(items[0].succeeded());
    assert_eq!(
        items[0].body.as_ref().unwrap()["id"],
        json!(user.to_string())
    );
    assert_eq!(
        items[1].failure.as_ref().unwrap().class,
        FailureClass::StaleLink
    );
    assert_eq!(
        items[2].failure.as_ref().unwrap().class,
        FailureClass::AlreadyDone
    );
    assert!(items[2].succeeded());
    assert_eq!(
        items[3].failure.as_ref().unwrap().class,
        FailureClass::Permanent
    );
    assert_eq!(items[3].signals.resource_units, Some(1));
    assert_eq!(sim.counters().get("POST", "$batch"), 1);
}

#[tokio::test]
async fn inner_batch_429_is_retried_after_its_own_retry_after() {
    let (sim, client) = start(throttled(write_quota(2, Duration::from_secs(2)))).await;
    let seeded = (0..3)
        .map(|i| json!({"userPrincipalName": format!("s{i}@contoso.com"), "displayName": "S"}))
        .collect();
    let (ids, _) = sim
        .seed(Seed {
            users: seeded,
            ..Seed::default()
        })
        .unwrap();
    let requests = ids
        .iter()
        .enumerate()
        .map(|(i, id)| BatchRequest {
            id: format!("r{i}"),
            method: reqwest::Method::PATCH,
            url: format!("/users/{id}"),
            body: Some(json!({"jobTitle": "Engineer"})),
            context: FailureContext::new(Operation::Update, Target::User),
            action: format!("update user {id}"),
        })
        .collect();
    let started = Instant::now();
    let items = client.batch(requests).await.unwrap().value().unwrap();
    assert!(items.iter().all(|i| i.succeeded()), "{items:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited the inner Retry-After"
    );
    let counters = sim.counters();
    assert_eq!(counters.with_status("PATCH", "users/{id}", 429), 1);
    assert_eq!(counters.with_status("PATCH", "users/{id}", 204), 3);
    assert_eq!(
        counters.get("POST", "$batch"),
        2,
        "only the throttled request was sent again"
    );
}

#[tokio::test]
async fn a_429_makes_the_client_wait_at_least_retry_after() {
    let (sim, client) = start(throttled(write_quota(1, Duration::from_secs(1)))).await;
    create_user(&client, "first").await;
    let started = Instant::now();
    create_user(&client, "second").await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "elapsed {:?}",
        started.elapsed()
    );
    assert_eq!(sim.counters().with_status("POST", "users", 429), 1);
    assert_eq!(sim.counters().with_status("POST", "users", 201), 2);
}

#[tokio::test]
async fn a_long_retry_after_comes_back_as_transient_with_its_signals() {
    let retry = RetryPolicy {
        max_inline_wait: Duration::from_secs(5),
        ..RetryPolicy::default()
    };
    let throttle = write_quota(1, Duration::from_secs(30));
    let (_sim, client) = start_with_retry(throttled(throttle), retry).await;
    create_user(&client, "first").await;
    let started = Instant::now();
    let failure = client.create_user(&user_body("second")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "no inline wait");
    assert_eq!(failure.class, FailureClass::Transient);
    assert_eq!(failure.status, Some(429));
    assert_eq!(failure.retry_after, Some(Duration::from_secs(30)));
    assert_eq!(
        failure.signals.information.as_deref(),
        Some("WriteLimitExceeded")
    );
    assert_eq!(failure.signals.scope_limit(), Some("Write"));
    assert!(
        failure
            .to_string()
            .contains("create user 'second@contoso.com'"),
        "{failure}"
    );
}

#[derive(Default)]
struct CountingGate {
    calls: AtomicU32,
    writes: AtomicU32,
    pauses: AtomicU32,
    observed: AtomicU32,
}

impl RequestGate for CountingGate {
    fn before(&self, cost: RequestCost) -> BoxFuture<'_, ()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.writes.fetch_add(cost.writes, Ordering::SeqCst);
        Box::pin(async {})
    }

    fn throttled<'a>(&'a self, pause: Duration, signals: &'a ThrottleSignals) -> BoxFuture<'a, ()> {
        assert!(pause >= Duration::from_secs(1));
        assert!(signals.scope.is_some());
        self.pauses.fetch_add(1, Ordering::SeqCst);
        Box::pin(async {})
    }

    fn observe(&self, _cost: RequestCost, _status: u16, signals: &ThrottleSignals) {
        if signals.resource_units.is_some() {
            self.observed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test]
async fn the_gate_sees_every_request_its_cost_and_every_429() {
    let throttle = write_quota(1, Duration::from_secs(1));
    let sim = GraphSim::start(throttled(throttle)).await.unwrap();
    let gate = Arc::new(CountingGate::default());
    let client = GraphClient::with_gate(config_for(&sim), gate.clone())
        .unwrap()
        .bulk();
    create_user(&client, "a").await;
    create_user(&client, "b").await;
    client.list_users().collect_all().await.unwrap();
    assert_eq!(
        gate.calls.load(Ordering::SeqCst),
        4,
        "2 creates, 1 retry, 1 list"
    );
    assert_eq!(gate.writes.load(Ordering::SeqCst), 3);
    assert_eq!(gate.pauses.load(Ordering::SeqCst), 1);
    assert_eq!(gate.observed.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn bulk_clients_send_low_priority() {
    let (sim, client) = start(no_throttle()).await;
    client.list_users().collect_all().await.unwrap();
    assert_eq!(sim.low_priority_requests(), 0);
    let bulk = client.bulk();
    bulk.list_users().collect_all().await.unwrap();
    bulk.create_user(&user_body("low")).await.unwrap();
    assert_eq!(sim.low_priority_requests(), 2);
    assert_eq!(
        sim.counters().get("POST", "token"),
        1,
        "clones share the token"
    );
}

#[tokio::test]
async fn dry_run_sends_no_mutating_request() {
    let sim = GraphSim::start(no_throttle()).await.unwrap();
    let user = sim
        .seed_user(json!({"userPrincipalName": "x@contoso.com", "displayName": "X"}))
        .unwrap();
    let group = sim
        .seed_group(json!({"displayName": "G", "mailEnabled": false, "securityEnabled": true}))
        .unwrap();
    let client = GraphClient::new(GraphConfig {
        dry_run: true,
        ..config_for(&sim)
    })
    .unwrap();
    let user = EntraObjectId::parse(&user).unwrap();
    let group = EntraObjectId::parse(&group).unwrap();

    let Written::DryRun(record) = client.create_user(&user_body("new")).await.unwrap() else {
        panic!("expected a dry run")
    };
    assert_eq!(record.method, "POST");
    assert_eq!(record.url, format!("{}/v1.0/users", sim.base_url()));
    let mut recorded = user_body("new");
    recorded["passwordProfile"]["password"] = json!("***");
    assert_eq!(
        record.body,
        Some(Value::Object(recorded)),
        "the body as it would have been sent, without the password"
    );
    let renamed = |name: &str| object(json!({"displayName": name}));
    let upsert = client.upsert_group("key-g", &group_body("g")).await;
    assert_dry_run(upsert, "upsert group");
    let update = client.update_user(&user, &renamed("Y"), false).await;
    assert_dry_run(update, "update user");
    let update = client.update_group(&group, &renamed("H"), false).await;
    assert_dry_run(update, "update group");
    assert_dry_run(client.delete_user(&user).await, "delete user");
    assert_dry_run(client.delete_group(&group).await, "delete group");
    let members = std::slice::from_ref(&user);
    assert_dry_run(
        client.add_members(&group, members, false).await,
        "add members",
    );
    assert_dry_run(client.remove_member(&group, &user).await, "remove member");
    let batch = vec![BatchRequest {
        id: "1".into(),
        method: reqwest::Method::DELETE,
        url: format!("/users/{user}"),
        body: None,
        context: FailureContext::new(Operation::Delete, Target::User),
        action: "delete".into(),
    }];
    let Written::DryRun(record) = client.batch(batch).await.unwrap() else {
        panic!("expected a dry run")
    };
    assert!(record.url.ends_with("/v1.0/$batch"));
    // Reads still go out.
    assert_eq!(client.list_users().collect_all().await.unwrap().len(), 1);
    assert_eq!(sim.mutating_requests(), 0);
    assert_eq!(sim.counters().get("GET", "users"), 1);
}

#[tokio::test]
async fn duplicate_upn_is_a_conflict_and_lookup_finds_the_owner() {
    let (_sim, client) = start(no_throttle()).await;
    let first = create_user(&client, "adele").await;
    let failure = client.create_user(&user_body("adele")).await.unwrap_err();
    assert_eq!(failure.class, FailureClass::Conflict);
    assert_eq!(failure.error.details[0].code, "ObjectConflict");
    let found = client
        .find_users(UserLookup::UserPrincipalName, "ADELE@contoso.com")
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, first);
}

#[tokio::test]
async fn patching_a_deleted_user_is_a_stale_link() {
    let (_sim, client) = start(no_throttle()).await;
    let id = create_user(&client, "gone").await;
    client.delete_user(&id).await.unwrap();
    let patch = object(json!({"displayName": "Back"}));
    assert_eq!(
        class_of(client.update_user(&id, &patch, false).await),
        FailureClass::StaleLink
    );
    assert_eq!(
        class_of(client.get_user(&id, false).await),
        FailureClass::StaleLink
    );
}

#[tokio::test]
async fn a_bad_mail_nickname_is_permanent() {
    let (_sim, client) = start(no_throttle()).await;
    let mut body = user_body("nick");
    body.insert("mailNickname".into(), json!("has space"));
    let failure = client.create_user(&body).await.unwrap_err();
    assert_eq!(failure.class, FailureClass::Permanent);
    assert_eq!(failure.status, Some(400));
    assert!(failure.message.contains("mailNickname"), "{failure}");
}

#[tokio::test]
async fn bad_credentials_are_a_configuration_failure_without_the_secret() {
    let sim = GraphSim::start(no_throttle()).await.unwrap();
    let secret = "wrong-secret-0123456789";
    let config = GraphConfig {
        credential: Secret::new(secret).into(),
        ..config_for(&sim)
    };
    assert!(!format!("{config:?}").contains(secret));
    let client = GraphClient::new(config).unwrap();
    let failure = client.verified_domains().await.unwrap_err();
    assert_eq!(failure.class, FailureClass::Configuration);
    assert_eq!(failure.operation, Operation::Token);
    assert!(failure.to_string().contains("AADSTS7000215"), "{failure}");
    for text in [
        failure.to_string(),
        format!("{failure:?}"),
        format!("{client:?}"),
    ] {
        assert!(!text.contains(secret), "secret leaked: {text}");
    }

    let config = GraphConfig {
        tenant: "unknown.example".into(),
        ..config_for(&sim)
    };
    let failure = GraphClient::new(config)
        .unwrap()
        .verified_domains()
        .await
        .unwrap_err();
    assert_eq!(failure.class, FailureClass::Configuration);
    assert!(failure.to_string().contains("AADSTS90002"), "{failure}");
    assert_eq!(sim.counters().get("GET", "organization"), 0);
}

#[tokio::test]
async fn tokens_are_refreshed_before_expiry_and_once_after_a_401() {
    let sim = GraphSim::start(SimConfig {
        token_lifetime: Duration::from_secs(2),
        ..no_throttle()
    })
    .await
    .unwrap();
    let client = GraphClient::new(config_for(&sim)).unwrap();
    client.verified_domains().await.unwrap();
    client.verified_domains().await.unwrap();
    assert_eq!(sim.counters().get("POST", "token"), 1, "cached");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    client.verified_domains().await.unwrap();
    assert_eq!(
        sim.counters().get("POST", "token"),
        2,
        "renewed before expiry"
    );
    assert_eq!(sim.counters().status(401), 0);

    sim.revoke_tokens();
    client.verified_domains().await.unwrap();
    let counters = sim.counters();
    assert_eq!(counters.with_status("GET", "organization", 401), 1);
    assert_eq!(
        counters.get("POST", "token"),
        3,
        "one new token after the 401"
    );
}

#[tokio::test]
async fn replication_delay_is_transient_only_for_recently_created_objects() {
    let config = SimConfig {
        replication_delay: Duration::from_millis(1_500),
        ..no_throttle()
    };
    let (_sim, client) = start_with_retry(config, RetryPolicy::none()).await;
    let user = create_user(&client, "fresh").await;
    let group = create_group(&client, "fresh").await;
    assert_eq!(
        class_of(client.get_user(&user, true).await),
        FailureClass::Transient
    );
    assert_eq!(
        class_of(client.get_user(&user, false).await),
        FailureClass::StaleLink
    );
    let patch = object(json!({"displayName": "Later"}));
    assert_eq!(
        class_of(client.update_user(&user, &patch, true).await),
        FailureClass::Transient
    );
    assert_eq!(
        class_of(
            client
                .add_members(&group, std::slice::from_ref(&user), true)
                .await
        ),
        FailureClass::Transient
    );
}

#[tokio::test]
async fn replication_delay_is_ridden_out_by_inline_retries() {
    let config = SimConfig {
        replication_delay: Duration::from_millis(300),
        ..no_throttle()
    };
    let (_sim, client) = start(config).await;
    let user = create_user(&client, "fresh").await;
    let read = client.get_user(&user, true).await.unwrap();
    assert_eq!(read.id, user);
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_transient_after_bounded_retries() {
    let policy = RetryPolicy {
        backoff: Backoff {
            base: Duration::from_millis(10),
            ..RetryPolicy::default().backoff
        },
        ..RetryPolicy::default()
    };
    let (sim, client) = start_with_retry(no_throttle(), policy).await;
    sim.set_faults(FaultConfig {
        error_rate: 1.0,
        error_statuses: vec![503],
        ..FaultConfig::default()
    });
    let failure = client.list_users().collect_all().await.unwrap_err();
    assert_eq!(
        (failure.class, failure.status),
        (FailureClass::Transient, Some(503))
    );
    assert_eq!(
        sim.counters().with_status("GET", "users", 503),
        3,
        "three attempts"
    );

    sim.set_faults(FaultConfig {
        drop_rate: 1.0,
        ..FaultConfig::default()
    });
    let failure = client.verified_domains().await.unwrap_err();
    assert_eq!(
        (failure.class, failure.status),
        (FailureClass::Transient, None)
    );

    sim.set_faults(FaultConfig::default());
    assert!(client.verified_domains().await.is_ok());
}

fn seeded(id: String) -> EntraObjectId {
    EntraObjectId::parse(&id).expect("the simulator gives GUIDs")
}

#[tokio::test]
async fn member_writes_graph_refuses_fail_that_group_only() {
    let (sim, client) = start(no_throttle()).await;
    let user = create_user(&client, "a").await;
    let refused = [
        shapes::dynamic_group("Dynamic", "(user.department -eq \"Sales\")"),
        shapes::mail_enabled_security_group("Mail security", "contoso.com"),
        shapes::distribution_group("Distribution", "contoso.com"),
        shapes::role_assignable_group("Admins"),
    ];
    for shape in refused {
        let group = seeded(sim.seed_group(shape.clone()).unwrap());
        let failure = client
            .add_members(&group, std::slice::from_ref(&user), false)
            .await
            .unwrap_err();
        assert_eq!(failure.class, FailureClass::Forbidden, "{shape}");
        assert!(
            failure.message.contains("Insufficient privileges"),
            "{failure}"
        );
        assert!(
            failure.message.contains("role-assignable"),
            "the hint: {failure}"
        );
        sim.seed_member(&group.to_string(), &user.to_string())
            .unwrap();
        assert_eq!(
            class_of(client.remove_member(&group, &user).await),
            FailureClass::Forbidden,
            "{shape}"
        );
    }
    let synced = seeded(sim.seed_group(shapes::on_premises_group("Synced")).unwrap());
    let failure = client
        .add_members(&synced, std::slice::from_ref(&user), false)
        .await
        .unwrap_err();
    assert_eq!(failure.class, FailureClass::Permanent);
    assert!(
        failure.message.contains("on-premises mastered"),
        "{failure}"
    );

    let unified = seeded(
        sim.seed_group(shapes::microsoft_365_group("Team", "contoso.com"))
            .unwrap(),
    );
    let plain = seeded(sim.seed_group(shapes::security_group("Plain")).unwrap());
    for group in [unified, plain] {
        let report = client
            .add_members(&group, std::slice::from_ref(&user), false)
            .await
            .unwrap()
            .value()
            .unwrap();
        assert_eq!(
            report.added,
            std::slice::from_ref(&user),
            "Graph manages these"
        );
    }
}

#[tokio::test]
async fn role_assignable_members_need_role_management() {
    let config = SimConfig {
        apps: vec![SimApp {
            roles: [
                "Directory.ReadWrite.All",
                "RoleManagement.ReadWrite.Directory",
            ]
            .map(String::from)
            .to_vec(),
            ..SimApp::new(SimConfig::CLIENT_ID, SimConfig::CLIENT_SECRET)
        }],
        ..no_throttle()
    };
    let (sim, client) = start(config).await;
    let user = create_user(&client, "a").await;
    let admins = seeded(
        sim.seed_group(shapes::role_assignable_group("Admins"))
            .unwrap(),
    );
    let report = client
        .add_members(&admins, std::slice::from_ref(&user), false)
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!(report.added, [user]);
}

#[tokio::test]
async fn a_refused_write_fails_that_object_only() {
    let (sim, client) = start(no_throttle()).await;
    let admin = create_user(&client, "admin").await;
    let other = create_user(&client, "other").await;
    sim.refuse_writes(&admin.to_string());
    let patch = object(json!({"jobTitle": "Boss"}));
    let failure = client.update_user(&admin, &patch, false).await.unwrap_err();
    assert_eq!(
        (failure.class, failure.status),
        (FailureClass::Forbidden, Some(403))
    );
    assert_eq!(failure.error.code, "Authorization_RequestDenied");
    assert!(
        failure.message.contains("privileged admin role"),
        "Graph's message with a hint: {failure}"
    );
    assert_eq!(
        class_of(client.delete_user(&admin).await),
        FailureClass::Forbidden
    );
    assert!(client.update_user(&other, &patch, false).await.is_ok());
    assert_eq!(client.list_users().collect_all().await.unwrap().len(), 2);

    let group = create_group(&client, "locked").await;
    sim.refuse_writes(&group.to_string());
    let failure = client
        .update_group(&group, &object(json!({"description": "x"})), false)
        .await
        .unwrap_err();
    assert_eq!(failure.class, FailureClass::Forbidden);
    assert!(failure.message.contains("Group.ReadWrite.All"), "{failure}");
}

#[tokio::test]
async fn writes_to_objects_mastered_on_premises_are_permanent() {
    let (sim, client) = start(no_throttle()).await;
    let synced = seeded(
        sim.seed_user(shapes::on_premises_user("legacy@contoso.com"))
            .unwrap(),
    );
    let failure = client
        .update_user(&synced, &object(json!({"jobTitle": "x"})), false)
        .await
        .unwrap_err();
    assert_eq!(
        (failure.class, failure.status),
        (FailureClass::Permanent, Some(400))
    );
    assert!(
        failure.message.contains("on-premises mastered"),
        "{failure}"
    );
    assert_eq!(
        class_of(client.delete_user(&synced).await),
        FailureClass::Permanent
    );
}

#[tokio::test]
async fn a_refused_read_or_create_halts_as_configuration() {
    let config = SimConfig {
        apps: vec![SimApp {
            roles: vec!["GroupMember.ReadWrite.All".into()],
            ..SimApp::new(SimConfig::CLIENT_ID, SimConfig::CLIENT_SECRET)
        }],
        ..no_throttle()
    };
    let (_sim, client) = start(config).await;
    let failure = client.list_users().collect_all().await.unwrap_err();
    assert_eq!(
        (failure.class, failure.status),
        (FailureClass::Configuration, Some(403))
    );
    assert_eq!(
        class_of(client.upsert_group("key-g", &group_body("g")).await),
        FailureClass::Configuration
    );
    assert!(client.list_groups().collect_all().await.is_ok());
}

#[tokio::test]
async fn listings_tell_which_objects_can_be_owned() {
    let (sim, client) = start(no_throttle()).await;
    let kinds = [
        (shapes::security_group("Security"), Ok(())),
        (
            shapes::microsoft_365_group("M365", "contoso.com"),
            Err(NotOwnable::Microsoft365Group),
        ),
        (
            shapes::dynamic_group("Dynamic", "(user.accountEnabled -eq true)"),
            Err(NotOwnable::DynamicGroup),
        ),
        (
            shapes::mail_enabled_security_group("MailSec", "contoso.com"),
            Err(NotOwnable::MailEnabledSecurityGroup),
        ),
        (
            shapes::distribution_group("Dist", "contoso.com"),
            Err(NotOwnable::DistributionGroup),
        ),
        (
            shapes::role_assignable_group("Admins"),
            Err(NotOwnable::RoleAssignable),
        ),
        (
            shapes::on_premises_group("Synced"),
            Err(NotOwnable::OnPremisesSynced),
        ),
    ];
    let mut want = std::collections::HashMap::new();
    for (shape, ownership) in kinds {
        want.insert(seeded(sim.seed_group(shape).unwrap()), ownership);
    }
    let listed = client.list_groups().collect_all().await.unwrap();
    assert_eq!(listed.len(), want.len());
    for group in &listed {
        assert_eq!(group.ownership(), want[&group.id], "{group:?}");
    }
    let found = client
        .find_groups(GroupLookup::DisplayName, "M365")
        .await
        .unwrap();
    assert_eq!(found[0].ownership(), Err(NotOwnable::Microsoft365Group));

    seeded(
        sim.seed_user(shapes::on_premises_user("legacy@contoso.com"))
            .unwrap(),
    );
    let users = client.list_users().collect_all().await.unwrap();
    assert_eq!(users[0].ownership(), Err(NotOwnable::OnPremisesSynced));
}

fn app_with(format: TokenFormat, roles: &[&str]) -> SimConfig {
    SimConfig {
        apps: vec![SimApp {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            token_format: format,
            ..SimApp::new(SimConfig::CLIENT_ID, SimConfig::CLIENT_SECRET)
        }],
        ..no_throttle()
    }
}

#[tokio::test]
async fn granted_roles_come_from_the_token_when_it_tells() {
    let (_sim, client) = start(no_throttle()).await;
    let roles = client.granted_roles().await.unwrap().unwrap();
    let want: BTreeSet<String> = SimApp::DEFAULT_ROLES.map(String::from).into();
    assert_eq!(roles, want);

    for format in [TokenFormat::JwtWithoutRoles, TokenFormat::Opaque] {
        let (_sim, client) = start(app_with(format, &["Directory.ReadWrite.All"])).await;
        assert_eq!(client.granted_roles().await.unwrap(), None, "{format:?}");
        assert!(
            client.list_users().collect_all().await.is_ok(),
            "{format:?}"
        );
    }
    let (_sim, client) = start(app_with(TokenFormat::Jwt, &[])).await;
    assert_eq!(
        client.granted_roles().await.unwrap(),
        None,
        "no grants, no claim"
    );
}

#[tokio::test]
async fn a_renewed_token_carries_changed_grants() {
    let (sim, client) = start(no_throttle()).await;
    assert!(client.granted_roles().await.unwrap().is_some());
    sim.set_app_roles(SimConfig::CLIENT_ID, &["Directory.ReadWrite.All"]);
    let cached = client.granted_roles().await.unwrap().unwrap();
    assert!(
        cached.contains("User.ReadWrite.All"),
        "the cached token is unchanged"
    );
    assert_eq!(sim.counters().get("POST", "token"), 1);

    client.renew_token().await.unwrap();
    assert_eq!(sim.counters().get("POST", "token"), 2);
    let renewed = client.granted_roles().await.unwrap().unwrap();
    assert_eq!(
        renewed.into_iter().collect::<Vec<_>>(),
        ["Directory.ReadWrite.All"]
    );
}

#[tokio::test]
async fn tiny_ru_budget_throttles_reads_too() {
    let throttle = ThrottleConfig {
        ru_quota: RuQuota::Fixed(2),
        read_window: Duration::from_secs(2),
        ..ThrottleConfig::default()
    };
    let (sim, client) = start(throttled(throttle)).await;
    let started = Instant::now();
    for _ in 0..3 {
        client.list_users().collect_all().await.unwrap();
    }
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(sim.counters().with_status("GET", "users", 429) >= 1);
}

#[tokio::test]
async fn the_group_upsert_creates_once_then_updates_and_a_deleted_group_is_restored_by_key() {
    let (_sim, client) = start(no_throttle()).await;
    let Written::Done {
        value: Upserted::Created(created),
        ..
    } = client.upsert_group("k", &group_body("g")).await.unwrap()
    else {
        panic!("created")
    };
    assert_eq!(created.unique_name.as_deref(), Some("k"));
    let Written::Done {
        value: Upserted::Updated,
        ..
    } = client.upsert_group("k", &group_body("g2")).await.unwrap()
    else {
        panic!("updated")
    };
    let by_key = client.get_group_by_unique_name("k", false).await.unwrap();
    assert_eq!(by_key.id, created.id);
    assert_eq!(by_key.display_name.as_deref(), Some("g2"));

    client.delete_group(&created.id).await.unwrap();
    let conflict = client
        .upsert_group("k", &group_body("g"))
        .await
        .unwrap_err();
    assert_eq!(conflict.class, FailureClass::Conflict);
    let deleted = client.find_deleted_groups("k").await.unwrap();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].id, created.id);
    assert!(
        client
            .find_deleted_groups("other")
            .await
            .unwrap()
            .is_empty()
    );
    client
        .restore_deleted_item(Target::Group, &created.id)
        .await
        .unwrap();
    assert_eq!(
        client
            .get_group_by_unique_name("k", false)
            .await
            .unwrap()
            .id,
        created.id
    );
    let missing = client.get_group_by_unique_name("nope", false).await;
    assert_eq!(class_of(missing), FailureClass::StaleLink);
}
