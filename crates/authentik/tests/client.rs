//! The client against the authentik simulator.

use entra_sync_authentik::{
    ApiToken, AuthentikClient, AuthentikError, ClientConfig, GroupQuery, RetryPolicy, UserQuery,
};
use entra_sync_core::authentik::AkUserType;
use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_sim::authentik::{self, Mode, NewGroup, NewUser, OrgSpec, SimConfig, UserPatch};
use futures_util::TryStreamExt;
use std::collections::HashSet;
use std::time::Duration;

const TOKEN: &str = "tok-3f9a";

fn client(base: &str, token: &str) -> AuthentikClient {
    let mut config = ClientConfig::new(base.parse().unwrap(), ApiToken::new(token));
    config.retry = RetryPolicy {
        max_attempts: 4,
        backoff: entra_sync_core::backoff::Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_millis(50),
        },
    };
    AuthentikClient::new(config).unwrap()
}

/// The body authentik's API (the simulator) answers to `GET path`.
async fn get_raw(sim: &authentik::RunningSim, path: &str) -> String {
    reqwest::Client::new()
        .get(format!("{}{path}", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn pages_through_ten_thousand_users_without_gaps_or_repeats() {
    let sim = authentik::start(SimConfig::new(TOKEN)).await.unwrap();
    let org = sim.sim.generate(&OrgSpec::new(3, 10_000, 50));
    let c = client(&sim.base_url(), TOKEN);
    let before = sim.sim.stats().api_requests;
    let mut pages = 0;
    let mut seen = HashSet::new();
    let mut stream = std::pin::pin!(c.users(&UserQuery::default()));
    while let Some(page) = stream.try_next().await.unwrap() {
        assert!(page.len() <= 100);
        pages += 1;
        for u in page {
            assert!(seen.insert(u.pk), "user {} twice", u.pk);
        }
    }
    assert_eq!(seen.len(), org.users);
    assert_eq!(pages, org.users.div_ceil(100));
    assert_eq!(sim.sim.stats().api_requests - before, pages as u64);
    // Memberships come through as pks even without groups_obj.
    let filter = c.group(AkGroupPk(org.filter_group)).await.unwrap().unwrap();
    assert!(filter.users.len() > 8_000);
    let member = c.user(filter.users[0]).await.unwrap().unwrap();
    assert!(member.groups.contains(&AkGroupPk(org.filter_group)));
}

#[tokio::test]
async fn filters_lookups_and_deleted_objects() {
    let sim = authentik::start(SimConfig::new(TOKEN)).await.unwrap();
    let org = sim.sim.generate(&OrgSpec::new(9, 300, 30));
    let c = client(&sim.base_url(), TOKEN);
    let services: Vec<_> = c
        .users(&UserQuery {
            types: vec![AkUserType::ServiceAccount],
            ..Default::default()
        })
        .try_concat()
        .await
        .unwrap();
    assert_eq!(
        services.iter().map(|u| u.pk.0).collect::<Vec<_>>(),
        org.service_accounts
    );
    let inactive: Vec<_> = c
        .users(&UserQuery {
            is_active: Some(false),
            ..Default::default()
        })
        .try_concat()
        .await
        .unwrap();
    assert_eq!(inactive.len(), org.inactive.len());
    let groups: Vec<_> = c.groups(&GroupQuery::default()).try_concat().await.unwrap();
    assert_eq!(groups.len(), org.groups);
    let hostile = org.hostile_groups[0];
    let name = sim.sim.group(hostile).unwrap().name;
    let found = c.group_by_name(&name).await.unwrap().unwrap();
    assert_eq!(found.pk, AkGroupPk(hostile));
    assert_eq!(c.group_by_name("no such group").await.unwrap(), None);

    let pk = org.hostile_users[2];
    assert!(c.user(AkUserPk(pk)).await.unwrap().is_some());
    sim.sim.delete_user(pk, Mode::Evented);
    assert_eq!(c.user(AkUserPk(pk)).await.unwrap(), None);
    sim.sim.delete_group(hostile, Mode::Evented);
    assert_eq!(c.group(AkGroupPk(hostile)).await.unwrap(), None);
}

#[tokio::test]
async fn the_watermark_lists_users_changed_after_an_instant_oldest_first() {
    let sim = authentik::start(SimConfig::new(TOKEN)).await.unwrap();
    sim.sim.generate(&OrgSpec::new(5, 500, 10));
    let c = client(&sim.base_url(), TOKEN);
    let mark = sim.sim.user(1).unwrap().last_updated;
    assert!(
        c.users_updated_after(mark, 1)
            .await
            .unwrap()
            .results
            .is_empty()
    );
    sim.sim.update_user(
        40,
        UserPatch {
            name: Some("Silent".into()),
            ..Default::default()
        },
        Mode::Silent,
    );
    sim.sim.update_user(
        7,
        UserPatch {
            is_active: Some(false),
            ..Default::default()
        },
        Mode::Silent,
    );
    let changed = c.users_updated_after(mark, 1).await.unwrap();
    assert_eq!(
        changed.results.iter().map(|u| u.pk.0).collect::<Vec<_>>(),
        vec![40, 7]
    );
    assert_eq!(changed.results[0].name, "Silent");
    assert!(!changed.results[1].is_active);
}

#[tokio::test]
async fn a_rejected_token_is_a_configuration_error_that_names_the_request() {
    let sim = authentik::start(SimConfig::new(TOKEN)).await.unwrap();
    let c = client(&sim.base_url(), "wrong-token-value");
    let before = sim.sim.stats().api_requests;
    let err = c.user(AkUserPk(1)).await.unwrap_err();
    assert!(err.is_configuration(), "{err:?}");
    assert!(matches!(
        err,
        AuthentikError::Configuration { status: 401, .. }
    ));
    let msg = err.to_string();
    assert!(msg.contains("authentik rejected the API token"), "{msg}");
    assert!(msg.contains("/api/v3/core/users/1/"), "{msg}");
    assert!(
        !msg.contains("wrong-token-value") && !format!("{err:?}").contains("wrong-token-value")
    );
    assert!(!format!("{c:?}").contains("wrong-token-value"));
    // Not retried.
    assert_eq!(sim.sim.stats().api_requests - before, 1);
}

#[tokio::test]
async fn transient_failures_are_retried_then_reported() {
    let sim = authentik::start(SimConfig::new(TOKEN)).await.unwrap();
    sim.sim.create_user(
        NewUser {
            username: "a".into(),
            ..Default::default()
        },
        Mode::Silent,
    );
    let c = client(&sim.base_url(), TOKEN);
    sim.sim.fail_next_requests(2, 503);
    assert_eq!(c.user(AkUserPk(1)).await.unwrap().unwrap().username, "a");
    sim.sim.fail_next_requests(1, 429);
    assert!(c.user(AkUserPk(1)).await.unwrap().is_some());
    sim.sim.fail_next_requests(10, 502);
    let err = c.user(AkUserPk(1)).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(matches!(err, AuthentikError::Transient { attempts: 4, .. }));
    sim.sim.fail_next_requests(0, 503);
    // A closed port is a network failure: transient too.
    let dead = client("http://127.0.0.1:1/", TOKEN);
    assert!(dead.user(AkUserPk(1)).await.unwrap_err().is_transient());
}

#[tokio::test]
async fn group_members_and_user_groups_agree() {
    let sim = authentik::start(SimConfig::new(TOKEN)).await.unwrap();
    let c = client(&sim.base_url(), TOKEN);
    let parent = sim.sim.create_group(
        NewGroup {
            name: "Parent".into(),
            ..Default::default()
        },
        Mode::Evented,
    );
    let g = sim.sim.create_group(
        NewGroup {
            name: "Child".into(),
            parents: vec![parent],
            ..Default::default()
        },
        Mode::Evented,
    );
    let a = sim.sim.create_user(
        NewUser {
            username: "a".into(),
            ..Default::default()
        },
        Mode::Evented,
    );
    let b = sim.sim.create_user(
        NewUser {
            username: "b".into(),
            ..Default::default()
        },
        Mode::Evented,
    );
    sim.sim.add_member(g, a, Mode::Evented);
    sim.sim.add_member(g, b, Mode::Silent);
    let group = c.group(AkGroupPk(g)).await.unwrap().unwrap();
    assert_eq!(group.users, vec![AkUserPk(a), AkUserPk(b)]);
    assert_eq!(group.parents, vec![AkGroupPk(parent)]);
    assert_eq!(
        c.user(AkUserPk(b)).await.unwrap().unwrap().groups,
        vec![AkGroupPk(g)]
    );
}

#[tokio::test]
async fn a_listing_that_shrinks_while_streaming_ends_cleanly() {
    let sim = authentik::start(SimConfig::new(TOKEN)).await.unwrap();
    sim.sim.generate(&OrgSpec::new(4, 297, 10));
    let c = client(&sim.base_url(), TOKEN);
    let mut stream = std::pin::pin!(c.users(&UserQuery::default()));
    let mut seen = stream.try_next().await.unwrap().unwrap().len();
    seen += stream.try_next().await.unwrap().unwrap().len();
    // Page 3 (of 3) disappears: 150 users are deleted before it is read.
    for pk in 1..=150 {
        sim.sim.delete_user(pk, Mode::Silent);
    }
    while let Some(page) = stream.try_next().await.unwrap() {
        seen += page.len();
    }
    assert_eq!(seen, 200);
}

#[tokio::test]
async fn our_tolerant_types_read_what_the_official_models_read() {
    let sim = authentik::start(SimConfig::new(TOKEN)).await.unwrap();
    sim.sim.generate(&OrgSpec::new(11, 150, 12));
    sim.sim.update_user(
        9,
        UserPatch {
            attributes: Some(serde_json::from_str(r#"{"dept": "R&D", "n": 1}"#).unwrap()),
            ..Default::default()
        },
        Mode::Silent,
    );
    let c = client(&sim.base_url(), TOKEN);
    let ours: Vec<_> = c.users(&UserQuery::default()).try_concat().await.unwrap();
    let raw = get_raw(&sim, "api/v3/core/users/?page_size=100&page=1&ordering=pk").await;
    let official: authentik_client::models::PaginatedUserList = serde_json::from_str(&raw).unwrap();
    for (o, u) in official.results.iter().zip(&ours) {
        assert_eq!(i64::from(o.pk), u.pk.0);
        assert_eq!(o.username, u.username);
        assert_eq!(o.email.as_deref().unwrap_or(""), u.email);
        assert_eq!(o.uid, u.uid);
        assert_eq!(o.uuid, u.uuid.unwrap());
        assert_eq!(o.last_updated, u.last_updated.unwrap());
        assert_eq!(
            o.r#type.map(|t| t.to_string()),
            Some(
                serde_json::to_value(&u.user_type)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            )
        );
        assert_eq!(
            o.groups.clone().unwrap_or_default(),
            u.groups.iter().map(|g| g.0).collect::<Vec<_>>()
        );
        assert_eq!(
            o.attributes.clone().unwrap_or_default().len(),
            u.attributes.len()
        );
    }
    let groups: Vec<_> = c.groups(&GroupQuery::default()).try_concat().await.unwrap();
    let raw = get_raw(
        &sim,
        "api/v3/core/groups/?page_size=100&ordering=name&include_users=false",
    )
    .await;
    let official: authentik_client::models::PaginatedGroupList =
        serde_json::from_str(&raw).unwrap();
    assert_eq!(official.results.len(), groups.len());
    for (o, g) in official.results.iter().zip(&groups) {
        assert_eq!(o.pk, g.pk.0);
        assert_eq!(o.name, g.name);
        assert_eq!(o.users.clone().unwrap_or_default().len(), g.users.len());
        assert_eq!(
            o.parents.clone().unwrap_or_default(),
            g.parents.iter().map(|p| p.0).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn a_token_file_rotated_while_running_is_used_at_the_next_request() {
    let sim = authentik::start(SimConfig::new(TOKEN)).await.unwrap();
    let file = std::env::temp_dir().join(format!("entra-sync-ak-token-{}", std::process::id()));
    std::fs::write(&file, "the-old-token\n").unwrap();
    let source = entra_sync_core::secret::SecretSource::file("authentik.token_file", &file);
    let config = ClientConfig::new(
        sim.base_url().parse().unwrap(),
        ApiToken::from_source(source),
    );
    let client = AuthentikClient::new(config).unwrap();
    let refused = client.user(AkUserPk(1)).await.unwrap_err();
    assert!(
        matches!(refused, AuthentikError::Configuration { status: 401, .. }),
        "{refused}"
    );

    // The mounted secret is updated: the same client sends the new token.
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    assert!(client.user(AkUserPk(1)).await.unwrap().is_none());

    // A file that became unreadable is a configuration error naming its key.
    std::fs::remove_file(&file).unwrap();
    let gone = client.user(AkUserPk(1)).await.unwrap_err();
    assert!(gone.is_configuration(), "{gone}");
    assert!(gone.to_string().contains("authentik.token_file"), "{gone}");
}
