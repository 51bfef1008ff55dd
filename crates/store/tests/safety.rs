//! The deletion guard's shared count, halt kinds, the shared filter group and
//! the 403 refusal count, against the real PostgreSQL.

use entra_sync_core::ids::AkGroupPk;
use entra_sync_core::task::ObjectKind;
use entra_sync_store::guard::{DeprovisionAction, Deprovisioning, GuardDecision, GuardLimit};
use entra_sync_store::providers::HaltKind;
use entra_sync_store::runs::{RunStart, RunTrigger};
use entra_sync_store::testing::TestDatabase;
use std::time::Duration;

async fn db_with_provider() -> TestDatabase {
    let db = TestDatabase::migrated().await;
    db.store.register_provider("p", "h1").await.unwrap();
    db
}

/// Claims `deprovisioning` against `limit`.
async fn claim(
    db: &TestDatabase,
    deprovisioning: &Deprovisioning<'_>,
    limit: GuardLimit,
) -> GuardDecision {
    db.store
        .claim_deprovisioning(deprovisioning, limit)
        .await
        .unwrap()
}

fn user(id: &str, run_id: Option<uuid::Uuid>) -> Deprovisioning<'_> {
    Deprovisioning {
        provider: "p",
        kind: ObjectKind::User,
        object_id: id,
        action: DeprovisionAction::Delete,
        run_id,
    }
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn concurrent_claims_never_let_more_than_the_threshold_through() {
    let db = db_with_provider().await;
    let limit = GuardLimit {
        threshold: 20,
        window: HOUR,
    };
    let ids: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    let claims = ids.iter().map(|id| {
        let store = db.store.clone();
        async move { store.claim_deprovisioning(&user(id, None), limit).await }
    });
    let decisions = futures_util::future::join_all(claims).await;
    let allowed = decisions
        .iter()
        .filter(|d| matches!(d, Ok(GuardDecision::Allowed)))
        .count();
    let exceeded = decisions
        .iter()
        .filter(|d| matches!(d, Ok(GuardDecision::Exceeded { would_be: 21 })))
        .count();
    assert_eq!((allowed, exceeded), (20, 30), "{decisions:?}");
    assert_eq!(
        db.store.deprovisionings_within("p", HOUR).await.unwrap(),
        20
    );
}

#[tokio::test]
async fn a_claim_repeated_for_the_same_object_counts_once() {
    let db = db_with_provider().await;
    let limit = GuardLimit {
        threshold: 1,
        window: HOUR,
    };
    // A delete retried after a transient failure claims again.
    for _ in 0..2 {
        assert_eq!(
            db.store
                .claim_deprovisioning(&user("1", None), limit)
                .await
                .unwrap(),
            GuardDecision::Allowed
        );
    }
    assert_eq!(db.store.deprovisionings_within("p", HOUR).await.unwrap(), 1);
    assert_eq!(
        db.store
            .claim_deprovisioning(&user("2", None), limit)
            .await
            .unwrap(),
        GuardDecision::Exceeded { would_be: 2 }
    );
}

#[tokio::test]
async fn the_window_rolls_and_suspends_count_too() {
    let db = db_with_provider().await;
    let limit = GuardLimit {
        threshold: 1,
        window: Duration::from_millis(300),
    };
    let suspend = Deprovisioning {
        action: DeprovisionAction::Suspend,
        ..user("1", None)
    };
    assert_eq!(claim(&db, &suspend, limit).await, GuardDecision::Allowed);
    assert_eq!(
        claim(&db, &user("2", None), limit).await,
        GuardDecision::Exceeded { would_be: 2 }
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        claim(&db, &user("2", None), limit).await,
        GuardDecision::Allowed
    );
}

#[tokio::test]
async fn a_run_started_allowing_deletions_is_waived_and_fills_no_window() {
    let db = db_with_provider().await;
    let limit = GuardLimit {
        threshold: 1,
        window: HOUR,
    };
    let RunStart::Started(run) = db
        .store
        .start_run_allowing_deletions("p", RunTrigger::Resume)
        .await
        .unwrap()
    else {
        panic!("no run was running")
    };
    assert!(db.store.run(run).await.unwrap().unwrap().deletions_allowed);
    for id in ["1", "2", "3"] {
        assert_eq!(
            claim(&db, &user(id, Some(run)), limit).await,
            GuardDecision::Waived
        );
    }
    // A direct task during that run is still counted.
    assert_eq!(
        claim(&db, &user("4", None), limit).await,
        GuardDecision::Allowed
    );
    assert_eq!(db.store.deprovisionings_within("p", HOUR).await.unwrap(), 1);

    // An ordinary run gets no waiver.
    db.store
        .finish_run(run, entra_sync_store::runs::RunState::Done, None)
        .await
        .unwrap();
    let other = db
        .store
        .start_run("p", RunTrigger::OnDemand)
        .await
        .unwrap()
        .id();
    assert!(
        !db.store
            .run(other)
            .await
            .unwrap()
            .unwrap()
            .deletions_allowed
    );
    assert_eq!(
        claim(&db, &user("5", Some(other)), limit).await,
        GuardDecision::Exceeded { would_be: 2 }
    );
}

#[tokio::test]
async fn a_halt_of_one_kind_is_cleared_only_as_that_kind() {
    let db = db_with_provider().await;
    assert!(
        db.store
            .halt_as(
                "p",
                HaltKind::FilterGroupMissing,
                "no group named \"entra\""
            )
            .await
            .unwrap()
    );
    let halt = db.store.halt_of("p").await.unwrap().unwrap();
    assert_eq!(halt.kind, HaltKind::FilterGroupMissing);
    assert!(
        !db.store
            .clear_halt_of_kind("p", HaltKind::DeletionGuard)
            .await
            .unwrap()
    );
    assert!(db.store.halt_of("p").await.unwrap().is_some());
    assert!(
        db.store
            .clear_halt_of_kind("p", HaltKind::FilterGroupMissing)
            .await
            .unwrap()
    );
    assert!(db.store.halt("p", "bad mapping").await.unwrap());
    assert_eq!(
        db.store.halt_of("p").await.unwrap().unwrap().kind,
        HaltKind::Configuration
    );
}

/// The pk saved for provider `p`'s filter group `entra`.
async fn resolved_pk(db: &TestDatabase) -> Option<AkGroupPk> {
    db.store
        .filter_group("p", "entra")
        .await
        .unwrap()
        .expect("a resolution was saved")
        .pk
}

#[tokio::test]
async fn the_filter_group_resolution_is_shared_per_name() {
    let db = db_with_provider().await;
    assert!(db.store.filter_group("p", "entra").await.unwrap().is_none());
    let first = AkGroupPk(uuid::Uuid::from_u128(1));
    db.store
        .save_filter_group("p", "entra", Some(first))
        .await
        .unwrap();
    assert_eq!(resolved_pk(&db).await, Some(first));
    db.store
        .save_filter_group("p", "entra", None)
        .await
        .unwrap();
    assert_eq!(resolved_pk(&db).await, None);
    // A renamed filter group in the configuration is never answered from the old name.
    assert!(db.store.filter_group("p", "staff").await.unwrap().is_none());
}

#[tokio::test]
async fn refusals_count_distinct_objects_until_a_write_succeeds() {
    let db = db_with_provider().await;
    let count = |id: &'static str| {
        let store = db.store.clone();
        async move {
            store
                .record_forbidden_write("p", ObjectKind::User, id, HOUR)
                .await
                .unwrap()
        }
    };
    assert_eq!(count("1").await, 1);
    assert_eq!(count("1").await, 1, "the same object counts once");
    assert_eq!(count("2").await, 2);
    db.store.clear_forbidden_writes("p").await.unwrap();
    assert_eq!(count("3").await, 1);
}
