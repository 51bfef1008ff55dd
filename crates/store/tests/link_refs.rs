//! Bulk link look-ups from either side against the real PostgreSQL.

use entra_sync_core::ids::{AkGroupPk, AkUserPk, EntraObjectId};
use entra_sync_store::links::{Link, LinkOrigin, LinkState};
use entra_sync_store::testing::TestDatabase;

fn entra(n: u128) -> EntraObjectId {
    EntraObjectId::parse(&uuid::Uuid::from_u128(n).to_string()).unwrap()
}

fn link<K>(ak_id: K, entra_id: EntraObjectId, state: LinkState) -> Link<K> {
    Link {
        ak_id,
        entra_id,
        attributes: Default::default(),
        origin: LinkOrigin::Created,
        state,
    }
}

/// Links `group` of provider `p` to the Entra group `entra(n)`.
async fn link_group(db: &TestDatabase, group: AkGroupPk, n: u128) {
    db.store
        .save_link("p", &link(group, entra(n), LinkState::Active))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn links_are_found_in_bulk_by_either_id_and_kind() {
    let db = TestDatabase::migrated().await;
    db.store.register_provider("p", "h").await.unwrap();
    db.store.register_provider("q", "h").await.unwrap();
    let save = |provider: &'static str, l: Link<AkUserPk>| {
        let store = db.store.clone();
        async move { store.save_link(provider, &l).await.unwrap().unwrap() }
    };
    save("p", link(AkUserPk(1), entra(1), LinkState::Active)).await;
    save("p", link(AkUserPk(2), entra(2), LinkState::Suspended)).await;
    save("q", link(AkUserPk(3), entra(3), LinkState::Active)).await;
    let group = AkGroupPk(uuid::Uuid::from_u128(9));
    link_group(&db, group, 9).await;

    let mut users = db
        .store
        .link_refs("p", &[AkUserPk(1), AkUserPk(2), AkUserPk(3), AkUserPk(4)])
        .await
        .unwrap();
    users.sort_by_key(|r| r.ak_id);
    assert_eq!(
        users
            .iter()
            .map(|r| (r.ak_id, r.entra_id.clone(), r.state))
            .collect::<Vec<_>>(),
        vec![
            (AkUserPk(1), entra(1), LinkState::Active),
            (AkUserPk(2), entra(2), LinkState::Suspended),
        ],
        "only this provider's links of the asked ids"
    );
    assert!(users[0].created_at.elapsed().unwrap().as_secs() < 60);

    let by_entra = db
        .store
        .link_refs_by_entra_id::<AkUserPk>("p", &[entra(2), entra(3), entra(9)])
        .await
        .unwrap();
    assert_eq!(
        by_entra.iter().map(|r| r.ak_id).collect::<Vec<_>>(),
        vec![AkUserPk(2)],
        "a group's Entra id is not a user link, another provider's link is not ours"
    );
    let groups = db
        .store
        .link_refs_by_entra_id::<AkGroupPk>("p", &[entra(1), entra(9)])
        .await
        .unwrap();
    assert_eq!(
        groups.iter().map(|r| r.ak_id).collect::<Vec<_>>(),
        vec![group]
    );
    assert!(
        db.store
            .link_refs::<AkUserPk>("p", &[])
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn memberships_are_recorded_only_while_the_group_is_linked_to_that_entra_group() {
    let db = TestDatabase::migrated().await;
    db.store.register_provider("p", "h").await.unwrap();
    let group = AkGroupPk(uuid::Uuid::from_u128(9));
    link_group(&db, group, 9).await;
    for pk in 1..=2 {
        db.store
            .save_link(
                "p",
                &link(AkUserPk(pk), entra(pk as u128), LinkState::Active),
            )
            .await
            .unwrap()
            .unwrap();
    }
    assert!(
        db.store
            .add_written_members_to("p", group, &entra(9), &[AkUserPk(1)])
            .await
            .unwrap()
    );
    // The group was re-created meanwhile: writes to the old Entra group are not its members.
    db.store.delete_link("p", group).await.unwrap();
    link_group(&db, group, 10).await;
    assert!(
        !db.store
            .add_written_members_to("p", group, &entra(9), &[AkUserPk(2)])
            .await
            .unwrap()
    );
    assert!(
        db.store
            .written_members("p", group)
            .await
            .unwrap()
            .is_empty()
    );
    let other = AkGroupPk(uuid::Uuid::from_u128(11));
    assert!(
        !db.store
            .add_written_members_to("p", other, &entra(9), &[AkUserPk(2)])
            .await
            .unwrap(),
        "an unlinked group records nothing"
    );
}
