//! The client against the simulator in every release mode: it reads the
//! release, decodes each release's users and groups (2024.2's root group in
//! `groups_obj` without `parent_name` included), sends only the filters the
//! release has, and notes the ones authentik ignores.

use entra_sync_authentik::{
    ApiToken, AuthentikClient, ClientConfig, Feature, Filter, GroupQuery, UserQuery,
};
use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_sim::authentik::{self, Mode, NewGroup, NewUser, Release, RunningSim, SimConfig};
use futures_util::TryStreamExt;

const TOKEN: &str = "releases-token";

async fn start(release: Release) -> RunningSim {
    authentik::start(SimConfig::new(TOKEN).with_release(release))
        .await
        .unwrap()
}

fn client(sim: &RunningSim) -> AuthentikClient {
    let config = ClientConfig::new(sim.base_url().parse().unwrap(), ApiToken::new(TOKEN));
    AuthentikClient::new(config).unwrap()
}

/// Creates group `name` under `parents`, silently; its pk.
fn create_group(sim: &RunningSim, name: &str, parents: Vec<uuid::Uuid>) -> uuid::Uuid {
    let group = NewGroup {
        name: name.into(),
        parents,
        ..Default::default()
    };
    sim.sim.create_group(group, Mode::Silent)
}

#[tokio::test]
async fn each_releases_users_and_groups_decode_alike() {
    for release in Release::ALL {
        let sim = start(release).await;
        let root = create_group(&sim, "root", vec![]);
        let child = create_group(&sim, "child", vec![root]);
        let pk = sim.sim.create_user(
            NewUser {
                username: "jdoe".into(),
                email: "jdoe@contoso.com".into(),
                ..Default::default()
            },
            Mode::Silent,
        );
        sim.sim.add_member(root, pk, Mode::Silent);
        sim.sim.add_member(child, pk, Mode::Silent);
        let c = client(&sim);
        let caps = c.detect_release().await.unwrap();
        assert_eq!(caps.behaves_as.to_string(), release.to_string());
        assert!(caps.warning.is_none());
        assert_eq!(
            c.uses(Feature::LastUpdated),
            release >= Release::V2025_10,
            "{release}"
        );

        let u = c.user(AkUserPk(pk)).await.unwrap().unwrap();
        assert_eq!(u.username, "jdoe");
        let mut groups = u.groups.clone();
        groups.sort();
        let mut want = vec![AkGroupPk(root), AkGroupPk(child)];
        want.sort();
        assert_eq!(groups, want, "{release}");
        assert_eq!(u.last_updated.is_some(), release >= Release::V2025_10);
        // 2024.2 sends groups_obj regardless; its root group has no `parent_name` key.
        match &u.groups_obj {
            Some(objs) => {
                assert_eq!(release, Release::V2024_2);
                let r = objs.iter().find(|g| g.pk == AkGroupPk(root)).unwrap();
                assert_eq!((r.parent, r.parent_name.as_deref()), (None, None));
                let ch = objs.iter().find(|g| g.pk == AkGroupPk(child)).unwrap();
                assert_eq!(ch.parent, Some(AkGroupPk(root)));
                assert_eq!(ch.parent_name.as_deref(), Some("root"));
            }
            None => assert_ne!(release, Release::V2024_2),
        }
        // `parent` (≤2025.10) and `parents` (2025.12+) become the same list.
        let g = c.group(AkGroupPk(child)).await.unwrap().unwrap();
        assert_eq!(g.parents, vec![AkGroupPk(root)], "{release}");
        assert_eq!(g.users, vec![AkUserPk(pk)]);
        let r = c.group(AkGroupPk(root)).await.unwrap().unwrap();
        assert!(r.parents.is_empty(), "{release}");
        let all: Vec<_> = c.groups(&GroupQuery::default()).try_concat().await.unwrap();
        assert_eq!(all.len(), 2);
        let users: Vec<_> = c.users(&UserQuery::default()).try_concat().await.unwrap();
        assert_eq!(users.len(), 1);
        // Only filters the release has were sent: none seen ignored.
        assert!(
            c.ignored_filters().is_empty(),
            "{release}: {:?}",
            c.ignored_filters()
        );
    }
}

#[tokio::test]
async fn a_filter_authentik_ignores_is_noted_once_and_fallen_back_from() {
    let sim = start(Release::V2024_2).await;
    let g = create_group(&sim, "g", vec![]);
    let pk = sim.sim.create_user(NewUser::default(), Mode::Silent);
    sim.sim.add_member(g, pk, Mode::Silent);
    // Before reading the release, the client assumes the newest behaviour.
    let c = client(&sim);
    assert!(c.uses(Feature::IncludeObjects));
    c.user(AkUserPk(pk)).await.unwrap();
    assert!(c.is_ignored(Filter::UsersIncludeGroups));
    // Fallen back: the feature is no longer used, so the groups' include_users
    // is not sent either; nothing more is noted, and the answers still decode.
    assert!(!c.uses(Feature::IncludeObjects));
    c.user(AkUserPk(pk)).await.unwrap();
    let group = c.group(AkGroupPk(g)).await.unwrap().unwrap();
    assert_eq!(group.users, vec![AkUserPk(pk)]);
    let ignored: Vec<Filter> = c.ignored_filters().iter().map(|i| i.filter).collect();
    assert_eq!(ignored, vec![Filter::UsersIncludeGroups]);
}

#[tokio::test]
async fn an_unknown_newer_release_gets_the_newest_behaviour() {
    let caps = entra_sync_authentik::Capabilities::of("2027.2.0");
    assert!(caps.warning.as_deref().unwrap().contains("newer"));
    assert!(caps.has(Feature::LastUpdated) && caps.has(Feature::EventActions));
}
