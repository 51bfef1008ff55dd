//! The simulator imitates each authentik release 2024.2 … 2026.8 as
//! `shared/reference/authentik-versions.md` describes it: fields, ignored
//! filters and orderings, page sizes, event shapes, the version endpoint and
//! authentik's clock.

use entra_sync_sim::authentik::{
    self, Mode, NewGroup, NewUser, Release, RunningSim, SimConfig, UserPatch,
};
use serde_json::Value;

const TOKEN: &str = "release-token";

async fn start(release: Release) -> RunningSim {
    authentik::start(SimConfig::new(TOKEN).with_release(release))
        .await
        .unwrap()
}

async fn get_full(sim: &RunningSim, path: &str) -> reqwest::Response {
    let resp = reqwest::Client::new()
        .get(format!("{}api/v3/{path}", sim.base_url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp
}

async fn get(sim: &RunningSim, path: &str) -> Value {
    get_full(sim, path).await.json().await.unwrap()
}

fn user(name: &str) -> NewUser {
    NewUser {
        username: name.into(),
        name: name.into(),
        is_active: true,
        ..Default::default()
    }
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    k.sort();
    k
}

/// A root group `root`, its child `child`, and user `u` in both.
fn small_org(sim: &RunningSim) -> (i64, uuid::Uuid, uuid::Uuid) {
    let root = sim.sim.create_group(
        NewGroup {
            name: "root".into(),
            ..Default::default()
        },
        Mode::Silent,
    );
    let child = sim.sim.create_group(
        NewGroup {
            name: "child".into(),
            parents: vec![root],
            ..Default::default()
        },
        Mode::Silent,
    );
    let u = sim.sim.create_user(user("u"), Mode::Silent);
    sim.sim.add_member(root, u, Mode::Silent);
    sim.sim.add_member(child, u, Mode::Silent);
    (u, root, child)
}

#[tokio::test]
async fn each_release_has_its_own_user_and_group_fields() {
    for release in Release::ALL {
        let sim = start(release).await;
        let (u, root, child) = small_org(&sim);
        let got = get(&sim, &format!("core/users/{u}/?include_groups=false")).await;
        let since = |r: Release| release >= r;
        for (field, present) in [
            ("password_change_date", since(Release::V2025_4)),
            ("date_joined", since(Release::V2025_4)),
            ("last_updated", since(Release::V2025_10)),
            ("roles", since(Release::V2026_8)),
        ] {
            assert_eq!(got.get(field).is_some(), present, "{release}: user {field}");
        }
        // include_groups exists from 2024.4: before, groups_obj always comes.
        assert_eq!(
            got["groups_obj"].is_array(),
            release == Release::V2024_2,
            "{release}: {got}"
        );
        let with_groups = get(&sim, &format!("core/users/{u}/")).await;
        let objs = with_groups["groups_obj"].as_array().unwrap();
        let root_obj = objs.iter().find(|g| g["name"] == "root").unwrap();
        let child_obj = objs.iter().find(|g| g["name"] == "child").unwrap();
        if release >= Release::V2026_8 {
            assert!(root_obj.get("parent").is_none() && root_obj.get("parent_name").is_none());
        } else {
            assert_eq!(child_obj["parent_name"], "root", "{release}");
            assert_eq!(child_obj["parent"], serde_json::json!(root));
            // 2024.2: a root group's `parent_name` is a missing key, not null.
            assert_eq!(
                root_obj.get("parent_name").is_some(),
                release != Release::V2024_2,
                "{release}: {root_obj}"
            );
            assert!(root_obj["parent"].is_null());
        }
        let group = get(&sim, &format!("core/groups/{child}/?include_users=false")).await;
        let mut expected = vec![
            "attributes",
            "is_superuser",
            "name",
            "num_pk",
            "pk",
            "roles",
            "roles_obj",
            "users",
            "users_obj",
        ];
        if release >= Release::V2026_8 {
            expected.extend(["inherited_roles_obj", "parents", "parents_obj"]);
            assert_eq!(group["parents"], serde_json::json!([root]));
        } else {
            expected.extend(["parent", "parent_name"]);
            assert_eq!(group["parent"], serde_json::json!(root));
        }
        if release >= Release::V2025_10 {
            expected.extend(["children", "children_obj"]);
        }
        expected.sort();
        assert_eq!(keys(&group), expected, "{release}");
        assert_eq!(
            group["users_obj"].is_array(),
            release == Release::V2024_2,
            "{release}: include_users"
        );
    }
}

#[tokio::test]
async fn unknown_filters_and_orderings_are_ignored() {
    for release in Release::ALL {
        let sim = start(release).await;
        let t0 = sim.sim.clock();
        for name in ["carol", "alice", "bob"] {
            sim.sim.create_user(user(name), Mode::Silent);
        }
        sim.sim.update_user(
            1,
            UserPatch {
                is_active: Some(false),
                ..Default::default()
            },
            Mode::Silent,
        );
        let since = chrono::DateTime::<chrono::Utc>::MAX_UTC.min(t0 + chrono::Duration::days(1));
        let later = since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let filtered = get(&sim, &format!("core/users/?last_updated__gt={later}")).await;
        let n = filtered["pagination"]["count"].as_u64().unwrap();
        // Before 2025.8 the filter does not exist: everything comes back, with 200.
        assert_eq!(
            n,
            if release >= Release::V2025_10 { 0 } else { 3 },
            "{release}"
        );
        // `__gte` exists in no release.
        let gte = get(&sim, &format!("core/users/?last_updated__gte={later}")).await;
        assert_eq!(gte["pagination"]["count"], 3, "{release}");
        // `is_active=1` filters nothing; `false` does.
        let one = get(&sim, "core/users/?is_active=1").await;
        assert_eq!(one["pagination"]["count"], 3);
        let inactive = get(&sim, "core/users/?is_active=false").await;
        assert_eq!(inactive["pagination"]["count"], 1, "{release}: {inactive}");
        // An unknown ordering is dropped: username order.
        let ordered = get(&sim, "core/users/?ordering=no_such_field").await;
        let names: Vec<&str> = ordered["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["alice", "bob", "carol"], "{release}");
        let by_update = get(&sim, "core/users/?ordering=-last_updated").await;
        let first = by_update["results"][0]["username"].as_str().unwrap();
        // carol (pk 1) was saved last; before 2025.8 the key is dropped.
        let want = if release >= Release::V2025_10 {
            "carol"
        } else {
            "alice"
        };
        assert_eq!(first, want, "{release}");
        assert_eq!(
            ordered.get("autocomplete").is_some(),
            release >= Release::V2025_10,
            "{release}: autocomplete"
        );
    }
}

#[tokio::test]
async fn page_sizes_follow_the_release() {
    for (release, default, asked_5000) in [
        (Release::V2024_2, 100, 250),
        (Release::V2025_10, 100, 250),
        (Release::V2026_8, 20, 100),
    ] {
        let sim = start(release).await;
        for i in 0..250 {
            sim.sim.create_user(user(&format!("u{i:03}")), Mode::Silent);
        }
        let plain = get(&sim, "core/users/").await;
        assert_eq!(
            plain["results"].as_array().unwrap().len(),
            default,
            "{release}"
        );
        let big = get(&sim, "core/users/?page_size=5000").await;
        assert_eq!(
            big["results"].as_array().unwrap().len(),
            asked_5000,
            "{release}"
        );
    }
}

#[tokio::test]
async fn events_follow_the_release() {
    for release in Release::ALL {
        let mut config = SimConfig::new(TOKEN).with_release(release);
        config.licensed = release == Release::V2025_4;
        let sim = authentik::start(config).await.unwrap();
        let g = sim.sim.create_group(
            NewGroup {
                name: "g".into(),
                ..Default::default()
            },
            Mode::Silent,
        );
        let u = sim.sim.create_user(user("u"), Mode::Silent);
        sim.sim.add_member(g, u, Mode::Evented);
        let page = get(
            &sim,
            "events/events/?context_model_name=group&actions=model_created",
        )
        .await;
        let events = page["results"].as_array().unwrap();
        // `actions` exists from 2025.8; before, it is ignored.
        let expected = match release {
            Release::V2025_10 | Release::V2026_8 => 0,
            // 2024.2 may log one change twice.
            Release::V2024_2 => 2,
            _ => 1,
        };
        assert_eq!(events.len(), expected, "{release}: {page}");
        let all = get(&sim, "events/events/?context_model_name=group").await;
        let diff = &all["results"][0]["context"]["diff"];
        // The diff: none in 2024.2; 2024.6–2024.12 always; 2025.2+ licensed only.
        let has_diff = matches!(release, Release::V2024_12 | Release::V2025_4);
        assert_eq!(!diff.is_null(), has_diff, "{release}: {all}");
        if has_diff {
            assert_eq!(diff["users"]["add"], serde_json::json!([u]));
        }
    }
}

#[tokio::test]
async fn the_version_endpoint_says_the_release() {
    for release in Release::ALL {
        let sim = start(release).await;
        let v = get(&sim, "admin/version/").await;
        assert_eq!(v["version_current"], release.version_current());
        assert!(
            v["version_current"]
                .as_str()
                .unwrap()
                .starts_with(&release.to_string())
        );
        assert_eq!(
            v.get("outpost_outdated").is_some(),
            release > Release::V2024_2
        );
    }
    let sim = start(Release::V2026_8).await;
    let v: authentik_client::models::Version =
        serde_json::from_value(get(&sim, "admin/version/").await).unwrap();
    assert_eq!(v.version_current, "2026.8.1");
}

#[tokio::test]
async fn authentiks_clock_can_be_off_and_events_can_commit_late() {
    let sim = start(Release::V2026_8).await;
    sim.sim.set_clock_offset(chrono::Duration::seconds(-30));
    let resp = get_full(&sim, "admin/version/").await;
    let date = resp.headers()["date"].to_str().unwrap().to_owned();
    let date = chrono::DateTime::parse_from_rfc2822(&date).unwrap();
    let behind = chrono::Utc::now() - date.with_timezone(&chrono::Utc);
    assert!(behind > chrono::Duration::seconds(25), "{behind}");
    sim.sim.hold_next_events();
    let late = sim.sim.create_user(user("late"), Mode::Evented);
    let newer = sim.sim.create_user(user("newer"), Mode::Evented);
    let pks = |v: &Value| -> Vec<Value> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["context"]["model"]["pk"].clone())
            .collect()
    };
    let before = get(&sim, "events/events/").await;
    assert_eq!(pks(&before), vec![serde_json::json!(newer)]);
    sim.sim.commit_held();
    let after = get(&sim, "events/events/?ordering=-created").await;
    // The late event is older than the newer one it committed after.
    assert_eq!(
        pks(&after),
        vec![serde_json::json!(newer), serde_json::json!(late)]
    );
    let created = after["results"][1]["created"].as_str().unwrap();
    let created = chrono::DateTime::parse_from_rfc3339(created).unwrap();
    assert!(
        created.with_timezone(&chrono::Utc) < chrono::Utc::now() - chrono::Duration::seconds(25)
    );
}
