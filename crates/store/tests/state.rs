//! Links, runs, outcomes, halts and the rate budget against the real PostgreSQL.

use entra_sync_core::drift::Observed;
use entra_sync_core::ids::{AkGroupPk, AkUserPk, EntraObjectId};
use entra_sync_core::pace::{Ceiling, Grant, Urgency};
use entra_sync_core::task::ObjectKind;
use entra_sync_store::links::{Link, LinkOrigin, LinkState};
use entra_sync_store::outcomes::{Outcome, RunObjectEnd};
use entra_sync_store::providers::SettingsChange;
use entra_sync_store::runs::{RunStart, RunState, RunTrigger};
use entra_sync_store::testing::TestDatabase;
use serde_json::json;
use std::time::Duration;

/// User 1's active link to Entra object 1, whose `displayName` was written as "A".
fn user_1_link(origin: LinkOrigin) -> Link<AkUserPk> {
    Link {
        ak_id: AkUserPk(1),
        entra_id: entra(1),
        attributes: json!({"displayName": "A"}).as_object().cloned().unwrap(),
        origin,
        state: LinkState::Active,
    }
}

fn entra(n: u128) -> EntraObjectId {
    EntraObjectId::parse(&uuid::Uuid::from_u128(n).to_string()).unwrap()
}

async fn db_with_provider() -> TestDatabase {
    let db = TestDatabase::migrated().await;
    db.store.register_provider("p", "h1").await.unwrap();
    db
}

#[tokio::test]
async fn settings_hash_changes_are_detected() {
    let db = TestDatabase::migrated().await;
    assert_eq!(
        db.store.register_provider("p", "h1").await.unwrap(),
        SettingsChange::New
    );
    assert_eq!(
        db.store.register_provider("p", "h1").await.unwrap(),
        SettingsChange::Unchanged
    );
    assert_eq!(
        db.store.register_provider("p", "h2").await.unwrap(),
        SettingsChange::Changed
    );
    assert_eq!(
        db.store.register_provider("p", "h2").await.unwrap(),
        SettingsChange::Unchanged
    );
}

#[tokio::test]
async fn halts_keep_the_first_reason_until_resumed() {
    let db = db_with_provider().await;
    assert!(db.store.halt("p", "mapping \"m\" failed").await.unwrap());
    assert!(!db.store.halt("p", "later reason").await.unwrap());
    assert_eq!(
        db.store.halt_of("p").await.unwrap().unwrap().reason,
        "mapping \"m\" failed"
    );
    assert_eq!(
        db.store.resume("p").await.unwrap().unwrap().reason,
        "mapping \"m\" failed",
        "resume returns the halt it cleared"
    );
    assert!(db.store.halt_of("p").await.unwrap().is_none());
    assert!(db.store.resume("p").await.unwrap().is_none());
}

#[tokio::test]
async fn halting_a_provider_fails_its_running_run_with_the_first_reason() {
    let db = db_with_provider().await;
    let run = db
        .store
        .start_run("p", RunTrigger::Schedule)
        .await
        .unwrap()
        .id();
    db.store.halt("p", "invalid mapping \"upn\"").await.unwrap();
    let failed = db.store.run(run).await.unwrap().unwrap();
    assert_eq!(failed.state, RunState::Failed);
    assert_eq!(
        failed.error.as_deref(),
        Some("provider halted: invalid mapping \"upn\"")
    );
    assert!(failed.finished_at.is_some());

    // A run that slipped in while the provider was halted is failed by the sweep.
    let late = db
        .store
        .start_run("p", RunTrigger::OnDemand)
        .await
        .unwrap()
        .id();
    assert_eq!(db.store.fail_run_of_halted("p").await.unwrap(), Some(late));
    assert_eq!(
        db.store.run(late).await.unwrap().unwrap().error.as_deref(),
        Some("provider halted: invalid mapping \"upn\"")
    );
    assert_eq!(db.store.fail_run_of_halted("p").await.unwrap(), None);

    db.store.resume("p").await.unwrap();
    let next = db
        .store
        .start_run("p", RunTrigger::Schedule)
        .await
        .unwrap()
        .id();
    assert_eq!(
        db.store.fail_run_of_halted("p").await.unwrap(),
        None,
        "a provider that is not halted keeps its run"
    );
    assert_eq!(
        db.store.run(next).await.unwrap().unwrap().state,
        RunState::Running
    );
}

#[test]
fn run_triggers_keep_their_stored_text() {
    let stored: Vec<&str> = [
        RunTrigger::ProviderCreated,
        RunTrigger::SettingsChanged,
        RunTrigger::Schedule,
        RunTrigger::OnDemand,
        RunTrigger::Resume,
        RunTrigger::EventsGap,
    ]
    .into_iter()
    .map(RunTrigger::as_str)
    .collect();
    assert_eq!(
        stored,
        [
            "provider_created",
            "settings_changed",
            "schedule",
            "on_demand",
            "resume",
            "events_gap"
        ]
    );
}

#[tokio::test]
async fn links_are_unique_on_both_sides() {
    let db = db_with_provider().await;
    let link = user_1_link(LinkOrigin::Created);
    db.store.save_link("p", &link).await.unwrap().unwrap();
    assert_eq!(
        db.store.link("p", AkUserPk(1)).await.unwrap(),
        Some(link.clone())
    );
    let other = Link {
        ak_id: AkUserPk(2),
        ..link.clone()
    };
    let taken = db.store.save_link("p", &other).await.unwrap().unwrap_err();
    assert_eq!(taken.entra_id, entra(1));
    let suspended = Link {
        state: LinkState::Suspended,
        ..link.clone()
    };
    db.store.save_link("p", &suspended).await.unwrap().unwrap();
    assert_eq!(
        db.store
            .link("p", AkUserPk(1))
            .await
            .unwrap()
            .unwrap()
            .state,
        LinkState::Suspended
    );
    assert_eq!(
        db.store.linked::<AkUserPk>("p").await.unwrap(),
        vec![AkUserPk(1)]
    );
    db.store.delete_link("p", AkUserPk(1)).await.unwrap();
    assert_eq!(db.store.link("p", AkUserPk(1)).await.unwrap(), None);
}

#[tokio::test]
async fn a_link_is_read_with_its_observation_while_that_is_newer_than_the_last_write() {
    let db = db_with_provider().await;
    let link = user_1_link(LinkOrigin::Created);
    assert_eq!(
        db.store.link_observed("p", AkUserPk(1)).await.unwrap(),
        None
    );
    db.store.save_link("p", &link).await.unwrap().unwrap();
    assert_eq!(
        db.store.link_observed("p", AkUserPk(1)).await.unwrap(),
        Some((link.clone(), None)),
        "never observed"
    );
    let listed = json!({"displayName": "B"}).as_object().cloned().unwrap();
    let at = db.store.clock().await.unwrap();
    let observe = |observed: Observed| {
        let store = db.store.clone();
        async move {
            store
                .observe("p", at, &[(AkUserPk(1), observed)])
                .await
                .unwrap();
            store.link_observed("p", AkUserPk(1)).await.unwrap()
        }
    };
    assert_eq!(
        observe(Observed::Listed(listed.clone())).await,
        Some((link.clone(), Some(Observed::Listed(listed.clone()))))
    );
    assert_eq!(
        observe(Observed::Missing).await,
        Some((link.clone(), Some(Observed::Missing)))
    );
    db.store
        .save_link_attributes("p", AkUserPk(1), &link.entra_id, &listed, LinkState::Active)
        .await
        .unwrap();
    assert_eq!(
        db.store.link_observed("p", AkUserPk(1)).await.unwrap(),
        Some((
            Link {
                attributes: listed,
                ..link
            },
            None
        )),
        "a write after the listing supersedes what it observed"
    );
}

#[tokio::test]
async fn a_patch_is_remembered_only_on_the_link_it_was_written_to() {
    let db = db_with_provider().await;
    let link = user_1_link(LinkOrigin::Adopted);
    db.store.save_link("p", &link).await.unwrap().unwrap();
    let written = json!({"displayName": "A", "accountEnabled": false})
        .as_object()
        .cloned()
        .unwrap();
    let save = |entra_id| {
        let written = written.clone();
        let store = db.store.clone();
        async move {
            store
                .save_link_attributes("p", AkUserPk(1), &entra_id, &written, LinkState::Suspended)
                .await
                .unwrap()
        }
    };
    assert!(!save(entra(2)).await, "the link points elsewhere");
    assert_eq!(
        db.store.link("p", AkUserPk(1)).await.unwrap(),
        Some(link.clone())
    );
    assert!(save(entra(1)).await);
    assert_eq!(
        db.store.link("p", AkUserPk(1)).await.unwrap(),
        Some(Link {
            attributes: written.clone(),
            state: LinkState::Suspended,
            ..link
        }),
        "the origin stays"
    );
    db.store.delete_link("p", AkUserPk(1)).await.unwrap();
    assert!(!save(entra(1)).await, "no link any more");
}

#[tokio::test]
async fn memberships_go_with_their_links() {
    let db = db_with_provider().await;
    let g = AkGroupPk(uuid::Uuid::from_u128(7));
    let group = Link {
        ak_id: g,
        entra_id: entra(100),
        attributes: Default::default(),
        origin: LinkOrigin::Discovered,
        state: LinkState::Active,
    };
    db.store.save_link("p", &group).await.unwrap().unwrap();
    for pk in 1..=3 {
        let user = Link {
            ak_id: AkUserPk(pk),
            entra_id: entra(pk as u128),
            attributes: Default::default(),
            origin: LinkOrigin::Created,
            state: LinkState::Active,
        };
        db.store.save_link("p", &user).await.unwrap().unwrap();
    }
    db.store
        .add_written_members("p", g, &[AkUserPk(1), AkUserPk(2), AkUserPk(3)])
        .await
        .unwrap();
    db.store
        .add_written_members("p", g, &[AkUserPk(1)])
        .await
        .unwrap();
    db.store
        .remove_written_members("p", g, &[AkUserPk(2)])
        .await
        .unwrap();
    assert_eq!(
        db.store.written_members("p", g).await.unwrap(),
        vec![AkUserPk(1), AkUserPk(3)]
    );
    assert_eq!(
        db.store.written_groups_of("p", AkUserPk(3)).await.unwrap(),
        vec![g]
    );
    db.store.delete_link("p", AkUserPk(3)).await.unwrap();
    assert_eq!(
        db.store.written_members("p", g).await.unwrap(),
        vec![AkUserPk(1)]
    );
    let suspended_group = Link {
        state: LinkState::Suspended,
        ..group.clone()
    };
    assert!(
        db.store.save_link("p", &suspended_group).await.is_err(),
        "groups are never suspended"
    );
    db.store.delete_link("p", g).await.unwrap();
    assert!(
        db.store
            .written_groups_of("p", AkUserPk(1))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn one_run_at_a_time_and_each_object_counted_once() {
    let db = db_with_provider().await;
    let RunStart::Started(run) = db.store.start_run("p", RunTrigger::OnDemand).await.unwrap()
    else {
        panic!("first run")
    };
    assert_eq!(
        db.store.start_run("p", RunTrigger::Schedule).await.unwrap(),
        RunStart::AlreadyRunning(run)
    );
    let ids: Vec<String> = (1..=3).map(|i| i.to_string()).collect();
    assert_eq!(
        db.store
            .plan_run_objects(run, ObjectKind::User, &ids)
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        db.store
            .plan_run_objects(run, ObjectKind::User, &ids)
            .await
            .unwrap(),
        0,
        "re-planning adds nothing"
    );
    assert!(
        db.store
            .finish_run_object(run, ObjectKind::User, "1", false)
            .await
            .unwrap()
    );
    assert!(
        !db.store
            .finish_run_object(run, ObjectKind::User, "1", false)
            .await
            .unwrap(),
        "a redelivered task is not counted twice"
    );
    assert!(
        db.store
            .finish_run_object(run, ObjectKind::User, "2", true)
            .await
            .unwrap()
    );
    assert_eq!(
        db.store
            .pending_run_objects(run, ObjectKind::User)
            .await
            .unwrap(),
        vec!["3".to_owned()]
    );
    assert_eq!(
        db.store
            .pending_run_object_count(run, ObjectKind::User)
            .await
            .unwrap(),
        1
    );
    let r = db.store.run(run).await.unwrap().unwrap();
    assert_eq!(
        (r.objects_total, r.objects_done, r.objects_failed),
        (3, 1, 1)
    );
    db.store
        .finish_run(run, RunState::Done, None)
        .await
        .unwrap();
    let latest = db.store.latest_run("p").await.unwrap().unwrap();
    assert_eq!((latest.id, latest.state), (run, RunState::Done));
    assert!(latest.finished_at.is_some());
    assert!(
        matches!(db.store.start_run("p", RunTrigger::Schedule).await.unwrap(), RunStart::Started(id) if id != run)
    );
}

#[tokio::test]
async fn a_batch_records_outcomes_and_ends_each_run_object_once() {
    let db = db_with_provider().await;
    let run = db
        .store
        .start_run("p", RunTrigger::OnDemand)
        .await
        .unwrap()
        .id();
    let ids: Vec<String> = (1..=3).map(|i| i.to_string()).collect();
    db.store
        .plan_run_objects(run, ObjectKind::User, &ids)
        .await
        .unwrap();
    let outcome = |id: &'static str| Outcome {
        provider: "p",
        run_id: Some(run),
        kind: ObjectKind::User,
        object_id: id,
        action: "created",
        result: "ok",
        detail: Some(json!({ "n": id })),
        attempt: 0,
    };
    let end = |id: &str, failed| RunObjectEnd {
        run,
        kind: ObjectKind::User,
        object_id: id.into(),
        failed,
    };
    db.store
        .record_batch(
            &[outcome("1"), outcome("2")],
            &[end("1", false), end("2", true), end("1", true)],
        )
        .await
        .unwrap();
    // A redelivered task's end, in a later batch, is not counted again.
    db.store
        .record_batch(&[], &[end("2", false)])
        .await
        .unwrap();
    let r = db.store.run(run).await.unwrap().unwrap();
    assert_eq!(
        (r.objects_total, r.objects_done, r.objects_failed),
        (3, 1, 1)
    );
    let conn = db.store.conn().await.unwrap();
    let logged: i64 = conn
        .query_one(
            "SELECT count(*) FROM object_outcomes WHERE run_id = $1",
            &[&run],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, 2);
}

#[tokio::test]
async fn outcomes_and_dead_letters_are_recorded() {
    let db = db_with_provider().await;
    db.store
        .record_outcome(&Outcome {
            provider: "p",
            run_id: None,
            kind: ObjectKind::User,
            object_id: "1",
            action: "created",
            result: "ok",
            detail: Some(json!({"written": ["displayName"]})),
            attempt: 0,
        })
        .await
        .unwrap();
    db.store
        .record_dead_letter(
            Some("p"),
            Some(ObjectKind::User),
            Some("1"),
            None,
            "retries exhausted",
        )
        .await
        .unwrap();
    assert_eq!(db.store.dead_letter_count("p").await.unwrap(), 1);
    let n: i64 = db
        .store
        .conn()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM object_outcomes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn the_pace_is_shared_and_kept_between_calls() {
    let db = TestDatabase::migrated().await;
    // One token per 10 s: slow PostgreSQL round trips under load refill next to nothing.
    let ceiling = Ceiling::quota(2, Duration::from_secs(20));
    let long = Duration::from_secs(15);
    let reserve = |store: &entra_sync_store::Store, urgency| {
        let store = store.clone();
        async move {
            store
                .with_pace("t", ceiling, |pace, now| {
                    pace.reserve(ceiling, 1.0, urgency, long, now)
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(
        reserve(&db.store, Urgency::Bulk).await,
        Grant::Now(Duration::ZERO)
    );
    assert_eq!(
        reserve(&db.store, Urgency::Bulk).await,
        Grant::Now(Duration::ZERO)
    );
    // Another process sees the same, now empty, bucket.
    let other = entra_sync_store::Store::connect(&db.url_with_schema(), 1, None).unwrap();
    let Grant::Now(wait) = reserve(&other, Urgency::Direct).await else {
        panic!("a direct write may wait")
    };
    assert!(wait > Duration::ZERO, "{wait:?}");
    assert!(matches!(
        reserve(&other, Urgency::Bulk).await,
        Grant::Later(_)
    ));
}

#[tokio::test]
async fn a_pause_stops_everyone_until_it_passes() {
    let db = TestDatabase::migrated().await;
    let ceiling = Ceiling::quota(3000, Duration::from_secs(150));
    db.store
        .with_pace("t", ceiling, |pace, now| {
            pace.throttled(ceiling, Duration::from_millis(300), now)
        })
        .await
        .unwrap();
    let reserve = || {
        db.store.with_pace("t", ceiling, |pace, now| {
            pace.reserve(ceiling, 1.0, Urgency::Direct, Duration::ZERO, now)
        })
    };
    assert!(matches!(reserve().await.unwrap(), Grant::Paused(_)));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(matches!(reserve().await.unwrap(), Grant::Now(_)));
}

#[tokio::test]
async fn one_leader_at_a_time_and_a_standby_takes_over() {
    let db = TestDatabase::migrated().await;
    let standby = entra_sync_store::Store::connect(&db.url_with_schema(), 2, None).unwrap();
    let leader = db
        .store
        .try_lead("producer")
        .await
        .unwrap()
        .expect("first replica leads");
    assert!(
        standby.try_lead("producer").await.unwrap().is_none(),
        "second replica waits"
    );
    assert!(
        standby.try_lead("other-role").await.unwrap().is_some(),
        "roles are independent"
    );
    leader.still_leading().await.unwrap();
    drop(leader); // the process died: its session closes
    let mut took_over = None;
    for _ in 0..50 {
        took_over = standby.try_lead("producer").await.unwrap();
        if took_over.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let new_leader = took_over.expect("the standby takes over");
    new_leader.resign().await.unwrap();
    assert!(db.store.try_lead("producer").await.unwrap().is_some());
}

#[tokio::test]
async fn an_object_lock_has_one_holder_and_a_dropped_lock_is_released() {
    let db = db_with_provider().await;
    let other = db.store.clone();
    let held = db
        .store
        .lock_object("p", "user/7", Duration::from_secs(1))
        .await
        .unwrap()
        .expect("free lock");
    assert!(
        other
            .lock_object("p", "user/7", Duration::from_millis(100))
            .await
            .unwrap()
            .is_none(),
        "a second holder while the first holds it"
    );
    let unrelated = other
        .lock_object("p", "user/8", Duration::from_millis(100))
        .await
        .unwrap()
        .expect("another object is not blocked");
    unrelated.release().await.unwrap();
    // Dropped without release (a cancelled task): the session ends and the lock goes with it.
    drop(held);
    let again = other
        .lock_object("p", "user/7", Duration::from_secs(2))
        .await
        .unwrap()
        .expect("released by the drop");
    again.release().await.unwrap();
}

#[tokio::test]
async fn a_lock_released_while_another_waits_goes_to_the_waiter() {
    let db = db_with_provider().await;
    let held = db
        .store
        .lock_object("p", "group/1", Duration::from_secs(1))
        .await
        .unwrap()
        .expect("free lock");
    let other = db.store.clone();
    let waiter = tokio::spawn(async move {
        other
            .lock_object("p", "group/1", Duration::from_secs(10))
            .await
    });
    while db.object_lock_waiters("p", "group/1").await == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    held.release().await.unwrap();
    let taken = waiter.await.unwrap().unwrap().expect("the waiter takes it");
    taken.release().await.unwrap();
}

#[tokio::test]
async fn locks_of_two_schemas_never_block_each_other() {
    let a = db_with_provider().await;
    let b = db_with_provider().await;
    let held = a
        .store
        .lock_object("p", "user/1", Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    let other = b
        .store
        .lock_object("p", "user/1", Duration::from_millis(200))
        .await
        .unwrap();
    assert!(other.is_some(), "a lock in another schema blocked this one");
    held.release().await.unwrap();
}

#[tokio::test]
async fn a_held_lock_leaves_the_main_pool_to_the_work_it_guards() {
    let db = db_with_provider().await;
    let store = entra_sync_store::Store::connect(&db.url_with_schema(), 1, None)
        .unwrap()
        .with_lock_pool(1)
        .unwrap();
    let lock = store
        .lock_object("p", "user/1", Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    // With one pool of one connection this would wait for the lock's connection.
    tokio::time::timeout(Duration::from_secs(2), store.ping())
        .await
        .expect("a connection besides the lock's")
        .unwrap();
    lock.release().await.unwrap();
}
