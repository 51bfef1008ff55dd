//! Listing every link of a provider, and reading a chunk of links with their
//! observations, as a full sync does, against the real PostgreSQL.

use entra_sync_core::drift::Observed;
use entra_sync_core::ids::{AkGroupPk, AkUserPk, EntraObjectId};
use entra_sync_store::link_refs::LinkRef;
use entra_sync_store::links::{Link, LinkKey, LinkOrigin, LinkState};
use entra_sync_store::testing::TestDatabase;
use serde_json::json;
use std::time::{Duration, SystemTime};

fn entra(n: u128) -> EntraObjectId {
    EntraObjectId::parse(&uuid::Uuid::from_u128(n).to_string()).unwrap()
}

/// Each reference's ids and state.
fn ids<K: LinkKey>(refs: Vec<LinkRef<K>>) -> Vec<(K, EntraObjectId, LinkState)> {
    refs.into_iter()
        .map(|r| (r.ak_id, r.entra_id, r.state))
        .collect()
}

#[tokio::test]
async fn link_refs_of_lists_one_providers_links_in_order_with_their_state() {
    let db = TestDatabase::migrated().await;
    db.store.register_provider("p", "h").await.unwrap();
    db.store.register_provider("q", "h").await.unwrap();
    let active = Link {
        ak_id: AkUserPk(2),
        entra_id: entra(2),
        attributes: json!({"displayName": "B"}).as_object().cloned().unwrap(),
        origin: LinkOrigin::Discovered,
        state: LinkState::Active,
    };
    let suspended = Link {
        ak_id: AkUserPk(1),
        entra_id: entra(1),
        attributes: Default::default(),
        origin: LinkOrigin::Created,
        state: LinkState::Suspended,
    };
    let elsewhere = Link {
        ak_id: AkUserPk(3),
        entra_id: entra(3),
        ..active.clone()
    };
    db.store.save_link("p", &active).await.unwrap().unwrap();
    db.store.save_link("p", &suspended).await.unwrap().unwrap();
    db.store.save_link("q", &elsewhere).await.unwrap().unwrap();
    assert_eq!(
        ids(db.store.link_refs_of::<AkUserPk>("p").await.unwrap()),
        vec![
            (AkUserPk(1), entra(1), LinkState::Suspended),
            (AkUserPk(2), entra(2), LinkState::Active)
        ]
    );
    let group = Link {
        ak_id: AkGroupPk(uuid::Uuid::from_u128(7)),
        entra_id: entra(7),
        attributes: Default::default(),
        origin: LinkOrigin::Adopted,
        state: LinkState::Active,
    };
    db.store.save_link("p", &group).await.unwrap().unwrap();
    assert_eq!(
        ids(db.store.link_refs_of::<AkGroupPk>("p").await.unwrap()),
        vec![(group.ak_id, entra(7), LinkState::Active)]
    );
    assert!(
        db.store
            .link_refs_of::<AkGroupPk>("q")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn links_observed_reads_the_asked_links_with_only_observations_newer_than_their_write() {
    let db = TestDatabase::migrated().await;
    db.store.register_provider("p", "h").await.unwrap();
    let link = |n: i64| Link {
        ak_id: AkUserPk(n),
        entra_id: entra(n as u128),
        attributes: json!({"displayName": format!("user {n}")})
            .as_object()
            .cloned()
            .unwrap(),
        origin: LinkOrigin::Created,
        state: LinkState::Active,
    };
    for n in 1..=3 {
        db.store.save_link("p", &link(n)).await.unwrap().unwrap();
    }
    let body = json!({"displayName": "edited in the portal"})
        .as_object()
        .cloned()
        .unwrap();
    let now = db.store.clock().await.unwrap();
    let newer = [
        (AkUserPk(1), Observed::Listed(body.clone())),
        (AkUserPk(2), Observed::Missing),
    ];
    db.store
        .observe("p", now + Duration::from_secs(1), &newer)
        .await
        .unwrap();
    let older = [(AkUserPk(3), Observed::Listed(body))];
    db.store
        .observe("p", SystemTime::UNIX_EPOCH, &older)
        .await
        .unwrap();

    let keys = [AkUserPk(1), AkUserPk(2), AkUserPk(3), AkUserPk(4)];
    let found = db.store.links_observed("p", &keys).await.unwrap();
    assert_eq!(found.len(), 3, "user 4 is not linked");
    assert_eq!(found[&AkUserPk(1)], (link(1), Some(newer[0].1.clone())));
    assert_eq!(found[&AkUserPk(2)], (link(2), Some(Observed::Missing)));
    assert_eq!(
        found[&AkUserPk(3)],
        (link(3), None),
        "an observation older than the link's last write does not count"
    );
    assert!(
        db.store
            .links_observed::<AkUserPk>("q", &keys)
            .await
            .unwrap()
            .is_empty()
    );
}
