//! The simulator speaks authentik's real API: every kind of response it gives
//! parses with the official `authentik-client` 2026.8.5 models (generated from
//! authentik's OpenAPI schema).

mod common;

use authentik_client::models::{
    Event, EventActions, Group, PaginatedEventList, PaginatedGroupList, PaginatedUserList, User,
    UserTypeEnum,
};
use common::event_kinds;
use entra_sync_sim::authentik::{self, Mode, NewGroup, NewUser, OrgSpec, SimConfig};

const TOKEN: &str = "test-token";

async fn get<T: serde::de::DeserializeOwned>(base: &str, path: &str) -> T {
    let resp = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    let body = resp.bytes().await.unwrap();
    serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "{path}: {e}\n{}",
            String::from_utf8_lossy(&body[..body.len().min(2000)])
        )
    })
}

#[tokio::test]
async fn official_models_parse_every_response_kind() {
    let sim = authentik::start(SimConfig::new(TOKEN)).await.unwrap();
    let org = sim.sim.generate(&OrgSpec::new(7, 60, 20));
    // Evented changes of every kind, so the events list holds all three actions.
    let pk = sim.sim.create_user(
        NewUser {
            username: "new.user".into(),
            name: "New User".into(),
            ..Default::default()
        },
        Mode::Evented,
    );
    let g = sim.sim.create_group(
        NewGroup {
            name: "Newcomers".into(),
            parents: vec![org.filter_group],
            ..Default::default()
        },
        Mode::Evented,
    );
    sim.sim.add_member(g, pk, Mode::Evented);
    let doomed = sim.sim.create_group(
        NewGroup {
            name: "Doomed".into(),
            ..Default::default()
        },
        Mode::Evented,
    );
    sim.sim.delete_group(doomed, Mode::Evented);
    let base = sim.base_url();

    for query in [
        "page_size=100",
        "page_size=20&page=2&include_groups=false&include_roles=false",
        "ordering=last_updated&last_updated__gt=2000-01-01T00:00:00Z",
        "type=service_account&type=internal_service_account",
    ] {
        let list: PaginatedUserList = get(&base, &format!("api/v3/core/users/?{query}")).await;
        assert!(!list.results.is_empty(), "{query}");
        assert!(list.results.len() <= 100);
    }
    let services: PaginatedUserList = get(&base, "api/v3/core/users/?type=service_account").await;
    assert_eq!(services.results.len(), org.service_accounts.len());
    assert!(
        services
            .results
            .iter()
            .all(|u| u.r#type == Some(UserTypeEnum::ServiceAccount))
    );

    let full: PaginatedUserList = get(&base, "api/v3/core/users/?page_size=100").await;
    let hostile = org.hostile_users[0];
    let u = full
        .results
        .iter()
        .find(|u| i64::from(u.pk) == hostile)
        .unwrap();
    assert_eq!(u.name, "Zoë Ångström-Ñúñez 李小龍 🚀");
    assert!(u.groups_obj.is_some());
    let trimmed: PaginatedUserList = get(
        &base,
        "api/v3/core/users/?page_size=100&include_groups=false",
    )
    .await;
    assert!(
        trimmed
            .results
            .iter()
            .all(|u| u.groups_obj.is_none() && u.groups.is_some())
    );

    let user: User = get(&base, &format!("api/v3/core/users/{pk}/")).await;
    assert_eq!(user.groups, Some(vec![g]));

    for query in [
        "",
        "?include_users=false&page_size=100",
        "?include_children=true&include_parents=true&include_inherited_roles=true",
        "?name=Newcomers",
    ] {
        let list: PaginatedGroupList = get(&base, &format!("api/v3/core/groups/{query}")).await;
        assert!(!list.results.is_empty(), "{query}");
    }
    let group: Group = get(
        &base,
        &format!("api/v3/core/groups/{g}/?include_parents=true"),
    )
    .await;
    assert_eq!(group.users, Some(vec![pk as i32]));
    assert_eq!(group.parents, Some(vec![org.filter_group]));
    let parent: Group = get(&base, &format!("api/v3/core/groups/{}/", org.filter_group)).await;
    assert!(parent.children.contains(&g));

    let events: PaginatedEventList = get(
        &base,
        "api/v3/events/events/?actions=model_created&actions=model_updated&actions=model_deleted&context_model_app=authentik_core&ordering=-created,pk",
    )
    .await;
    let actions: Vec<EventActions> = events.results.iter().map(|e| e.action).collect();
    for a in [
        EventActions::ModelCreated,
        EventActions::ModelUpdated,
        EventActions::ModelDeleted,
    ] {
        assert!(actions.contains(&a), "{a:?} missing");
    }
    assert!(
        events
            .results
            .windows(2)
            .all(|w| w[0].created >= w[1].created)
    );
    let one: Event =
        serde_json::from_value(serde_json::to_value(&events.results[0]).unwrap()).unwrap();
    let model = &one.context.as_ref().unwrap()["model"];
    assert_eq!(model["app"], "authentik_core");
    assert_eq!(events.pagination.count as usize, events.results.len());
}

#[tokio::test]
async fn listings_cap_the_page_size_and_require_the_token() {
    let sim = authentik::start(SimConfig::new(TOKEN)).await.unwrap();
    sim.sim.generate(&OrgSpec::new(1, 250, 10));
    let list: PaginatedUserList =
        get(&sim.base_url(), "api/v3/core/users/?page_size=1000&page=1").await;
    assert_eq!(list.results.len(), 100);
    assert_eq!(list.pagination.count as usize, 253);
    assert_eq!(list.pagination.total_pages as usize, 3);
    assert_eq!(list.pagination.next as usize, 2);
    let last: PaginatedUserList =
        get(&sim.base_url(), "api/v3/core/users/?page_size=100&page=3").await;
    assert_eq!(last.results.len(), 53);
    assert_eq!(last.pagination.next as usize, 0);
    for auth in [None, Some("Bearer wrong")] {
        let mut req = reqwest::Client::new().get(format!("{}api/v3/core/users/", sim.base_url()));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        assert_eq!(req.send().await.unwrap().status(), 401);
    }
}

#[tokio::test]
async fn silent_changes_record_no_event_but_bump_last_updated() {
    let sim = authentik::start(SimConfig::new(TOKEN)).await.unwrap();
    let pk = sim.sim.create_user(
        NewUser {
            username: "ldap.user".into(),
            ..Default::default()
        },
        Mode::Silent,
    );
    let before = sim.sim.user(pk).unwrap().last_updated;
    let g = sim.sim.create_group(
        NewGroup {
            name: "LDAP".into(),
            ..Default::default()
        },
        Mode::Silent,
    );
    sim.sim.add_member(g, pk, Mode::Silent);
    sim.sim.update_user(
        pk,
        authentik::UserPatch {
            name: Some("Renamed".into()),
            ..Default::default()
        },
        Mode::Silent,
    );
    assert!(sim.sim.events().is_empty());
    assert!(sim.sim.user(pk).unwrap().last_updated > before);
    // The group's side records on the group only, the user's side on the user only.
    sim.sim.remove_member(g, pk, Mode::Evented);
    sim.sim.set_membership_from_user(pk, g, true, Mode::Evented);
    assert_eq!(
        event_kinds(&sim.sim),
        vec![("model_updated", "group"), ("model_updated", "user")]
    );
}

#[tokio::test]
async fn the_generator_is_deterministic_and_hostile() {
    let a = authentik::AuthentikSim::new(SimConfig::new(TOKEN));
    let b = authentik::AuthentikSim::new(SimConfig::new(TOKEN));
    let spec = OrgSpec::new(42, 500, 40);
    let (sa, sb) = (a.generate(&spec), b.generate(&spec));
    assert_eq!(sa, sb);
    assert_eq!(a.stats().users, 503);
    assert_eq!(a.user(10).unwrap().name, b.user(10).unwrap().name);
    assert_eq!(a.user(10).unwrap().uuid, b.user(10).unwrap().uuid);
    assert!(!sa.inactive.is_empty());
    let dupes: Vec<_> = sa
        .hostile_users
        .iter()
        .filter(|pk| a.user(**pk).unwrap().email == sa.duplicate_email)
        .collect();
    assert_eq!(dupes.len(), 2);
    assert!(
        sa.hostile_users.iter().any(|pk| a
            .user(*pk)
            .unwrap()
            .email
            .ends_with("@unverified.example"))
    );
    assert!(
        sa.hostile_users
            .iter()
            .any(|pk| a.user(*pk).unwrap().name.chars().count() > 256)
    );
    assert!(
        sa.hostile_groups
            .iter()
            .any(|g| a.group(*g).unwrap().name.chars().count() > 256)
    );
    assert!(a.group(sa.filter_group).unwrap().members.len() > 400);
}

#[tokio::test]
async fn add_user_and_remove_user_change_membership_with_an_event_on_the_group_only() {
    let sim = authentik::start(SimConfig::new(TOKEN)).await.unwrap();
    let pk = sim.sim.create_user(
        NewUser {
            username: "admin.ui".into(),
            ..Default::default()
        },
        Mode::Silent,
    );
    let g = sim.sim.create_group(
        NewGroup {
            name: "Staff".into(),
            ..Default::default()
        },
        Mode::Silent,
    );
    let post = |path: String, body: serde_json::Value| {
        let url = format!("{}api/v3/core/groups/{path}", sim.base_url());
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let status = post(format!("{g}/add_user/"), serde_json::json!({"pk": pk})).await;
    assert_eq!(status, 204);
    assert!(sim.sim.group(g).unwrap().members.contains(&pk));
    let status = post(format!("{g}/remove_user/"), serde_json::json!({"pk": pk})).await;
    assert_eq!(status, 204);
    assert!(!sim.sim.group(g).unwrap().members.contains(&pk));
    assert_eq!(
        event_kinds(&sim.sim),
        vec![("model_updated", "group"), ("model_updated", "group")]
    );
    let status = post(format!("{g}/add_user/"), serde_json::json!({"pk": 9999})).await;
    assert_eq!(status, 404, "an unknown user");
    let other = uuid::Uuid::new_v4();
    let status = post(format!("{other}/add_user/"), serde_json::json!({"pk": pk})).await;
    assert_eq!(status, 404, "an unknown group");
    assert_eq!(sim.sim.events().len(), 2);
}
