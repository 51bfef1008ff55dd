//! Listing every link of a provider with its state, against the real PostgreSQL.

use entra_sync_core::ids::{AkGroupPk, AkUserPk, EntraObjectId};
use entra_sync_store::links::{Link, LinkOrigin, LinkState};
use entra_sync_store::testing::TestDatabase;
use serde_json::json;

fn entra(n: u128) -> EntraObjectId {
    EntraObjectId::parse(&uuid::Uuid::from_u128(n).to_string()).unwrap()
}

#[tokio::test]
async fn links_of_lists_one_providers_links_with_their_state() {
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
        db.store.links_of::<AkUserPk>("p").await.unwrap(),
        vec![suspended, active]
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
        db.store.links_of::<AkGroupPk>("p").await.unwrap(),
        vec![group]
    );
    assert!(
        db.store
            .links_of::<AkGroupPk>("q")
            .await
            .unwrap()
            .is_empty()
    );
}
