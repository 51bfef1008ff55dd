//! The events feed and watermark followers against the authentik simulator and
//! the real PostgreSQL.

mod common;

use chrono::Utc;
use common::sink::{Collect, poll, user};
use common::{AK_TOKEN, authentik_client};
use entra_sync_core::ids::AkGroupPk;
use entra_sync_producer::events::{
    ChangeSource, EVENTS_CURSOR, EventFollower, FollowError, Follower, FollowerConfig,
    FullSyncReason, Handoff, ObjectChange, WATERMARK_CURSOR, WatermarkFollower, run,
};
use entra_sync_sim::authentik::{self, Mode, NewGroup, NewUser, OrgSpec, SimConfig, UserPatch};
use entra_sync_store::testing::TestDatabase;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Exact-timestamp semantics: no settle window.
fn config(name: &str) -> FollowerConfig {
    FollowerConfig {
        settle: Duration::ZERO,
        ..FollowerConfig::new(name)
    }
}

/// A follower of `sim`'s events feed with its cursor in `db`.
fn events_follower(sim: &authentik::RunningSim, db: &TestDatabase) -> EventFollower {
    EventFollower::new(
        authentik_client(&sim.base_url()),
        db.store.clone(),
        config(EVENTS_CURSOR),
    )
}

/// A follower of `sim`'s users' `last_updated` with its cursor in `db`.
fn watermark_follower(sim: &authentik::RunningSim, db: &TestDatabase) -> WatermarkFollower {
    WatermarkFollower::new(
        authentik_client(&sim.base_url()),
        db.store.clone(),
        config(WATERMARK_CURSOR),
    )
}

fn group(pk: uuid::Uuid) -> ObjectChange {
    ObjectChange::Group(AkGroupPk(pk))
}

/// The pks of changes that are all users.
fn user_pks(changes: &[ObjectChange]) -> Vec<i64> {
    changes
        .iter()
        .map(|c| match c {
            ObjectChange::User(pk) => pk.0,
            ObjectChange::Group(g) => panic!("only users changed, not group {g}"),
        })
        .collect()
}

fn new_user(name: &str) -> NewUser {
    NewUser {
        username: name.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_first_poll_requests_a_full_sync_then_changes_follow_deduplicated() {
    let db = TestDatabase::migrated().await;
    let sim = authentik::start(SimConfig::new(AK_TOKEN)).await.unwrap();
    let org = sim.sim.generate(&OrgSpec::new(1, 50, 10));
    sim.sim.update_user(3, UserPatch::default(), Mode::Evented);
    let f = events_follower(&sim, &db);
    let mut sink = Collect::default();
    let o = f.poll_once(&mut sink).await.unwrap();
    assert_eq!(o.full_sync, Some(FullSyncReason::NoCursor));
    assert_eq!(sink.full_syncs(), vec![FullSyncReason::NoCursor]);
    assert!(
        sink.changes().is_empty(),
        "events before the cursor are the full sync's"
    );

    sim.sim.update_user(
        5,
        UserPatch {
            name: Some("Five".into()),
            ..Default::default()
        },
        Mode::Evented,
    );
    let team = sim.sim.create_group(
        NewGroup {
            name: "Team".into(),
            ..Default::default()
        },
        Mode::Silent,
    );
    // From the group's side: an event on the group; from the user's: on the user.
    assert!(sim.sim.add_member(team, 7, Mode::Evented));
    assert!(
        sim.sim
            .set_membership_from_user(7, team, false, Mode::Evented)
    );
    sim.sim.remove_member(org.filter_group, 8, Mode::Silent);
    sim.sim.update_user(
        5,
        UserPatch {
            name: Some("V".into()),
            ..Default::default()
        },
        Mode::Evented,
    );
    sim.sim.update_user(6, UserPatch::default(), Mode::Silent);
    let mut sink = Collect::default();
    let o = f.poll_once(&mut sink).await.unwrap();
    assert_eq!(o.new_items, 4);
    assert_eq!(sink.changes(), vec![user(5), group(team), user(7)]);
    assert!(matches!(
        &sink.handoffs[0],
        Handoff::Changes {
            source: ChangeSource::Events,
            ..
        }
    ));

    let mut sink = Collect::default();
    assert_eq!(f.poll_once(&mut sink).await.unwrap().new_items, 0);
    assert!(sink.handoffs.is_empty());
}

#[tokio::test]
async fn events_sharing_a_timestamp_across_pages_and_restarts_are_neither_skipped_nor_repeated() {
    let db = TestDatabase::migrated().await;
    let sim = authentik::start(SimConfig::new(AK_TOKEN)).await.unwrap();
    sim.sim.create_user(new_user("first"), Mode::Evented);
    let start = |store| {
        EventFollower::new(
            authentik_client(&sim.base_url()),
            store,
            config(EVENTS_CURSOR),
        )
    };
    let f = start(db.store.clone());
    poll(&f).await;

    // 150 events at one instant: the newest-first pages split them 100 + 50.
    let instant = Utc::now();
    sim.sim.freeze_clock(Some(instant));
    let first: Vec<i64> = (0..150)
        .map(|i| {
            sim.sim
                .create_user(new_user(&format!("a{i}")), Mode::Evented)
        })
        .collect();
    let sink = poll(&f).await;
    // Within one instant the feed orders by event pk, so compare as sets.
    let mut got = user_pks(&sink.changes());
    got.sort();
    assert_eq!(got, first);
    let cursor = db.store.load_cursor(EVENTS_CURSOR).await.unwrap().unwrap();
    // The cursor trails authentik's clock (its `Date`, to the second) and
    // keeps the ids read after it: the 150, and maybe "first".
    assert!(cursor.position <= instant);
    assert!((150..=151).contains(&cursor.seen_ids.len()));

    // More at the same instant while the follower is stopped; a new one resumes.
    drop(f);
    let second: Vec<i64> = (0..130)
        .map(|i| {
            sim.sim
                .create_user(new_user(&format!("b{i}")), Mode::Evented)
        })
        .collect();
    let f = start(db.store.clone());
    let sink = poll(&f).await;
    let mut got = user_pks(&sink.changes());
    got.sort();
    assert_eq!(got, second);
    let sink = poll(&f).await;
    assert!(sink.handoffs.is_empty());

    // Time moves on: the cursor leaves the crowded instant behind (once
    // authentik's `Date`, to the second, has passed it).
    sim.sim.freeze_clock(None);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = sim.sim.create_user(new_user("later"), Mode::Evented);
    let sink = poll(&f).await;
    assert_eq!(sink.changes(), vec![user(later)]);
    assert!(
        db.store
            .load_cursor(EVENTS_CURSOR)
            .await
            .unwrap()
            .unwrap()
            .seen_ids
            .len()
            <= 1
    );
}

#[tokio::test]
async fn a_change_made_while_the_follower_was_stopped_is_picked_up_after_restart() {
    let db = TestDatabase::migrated().await;
    let sim = authentik::start(SimConfig::new(AK_TOKEN)).await.unwrap();
    let pk = sim.sim.create_user(new_user("u"), Mode::Evented);
    let g = sim.sim.create_group(
        NewGroup {
            name: "G".into(),
            ..Default::default()
        },
        Mode::Evented,
    );
    // Default settle window.
    let follower = || {
        EventFollower::new(
            authentik_client(&sim.base_url()),
            db.store.clone(),
            FollowerConfig::new(EVENTS_CURSOR),
        )
    };
    follower().poll_once(&mut Collect::default()).await.unwrap();
    sim.sim.delete_group(g, Mode::Evented);
    sim.sim.update_user(
        pk,
        UserPatch {
            email: Some("u@contoso.com".into()),
            ..Default::default()
        },
        Mode::Evented,
    );
    // Default settle window: changes are handed off at once all the same.
    let f = follower();
    let sink = poll(&f).await;
    assert_eq!(sink.changes(), vec![group(g), user(pk)]);
    let sink = poll(&f).await;
    assert!(sink.handoffs.is_empty(), "{:?}", sink.handoffs);
}

#[tokio::test]
async fn a_failed_handoff_leaves_the_cursor_where_it_was() {
    let db = TestDatabase::migrated().await;
    let sim = authentik::start(SimConfig::new(AK_TOKEN)).await.unwrap();
    let f = events_follower(&sim, &db);
    poll(&f).await;
    let before = db.store.load_cursor(EVENTS_CURSOR).await.unwrap();
    let pk = sim.sim.create_user(new_user("u"), Mode::Evented);
    let mut failing = Collect {
        fail: true,
        ..Default::default()
    };
    let err = f.poll_once(&mut failing).await.unwrap_err();
    assert!(matches!(err, FollowError::Sink(_)) && !err.is_configuration());
    assert_eq!(db.store.load_cursor(EVENTS_CURSOR).await.unwrap(), before);
    let sink = poll(&f).await;
    assert_eq!(sink.changes(), vec![user(pk)]);
}

#[tokio::test]
async fn a_cursor_behind_the_event_retention_requests_a_full_sync() {
    let db = TestDatabase::migrated().await;
    let mut cfg = SimConfig::new(AK_TOKEN);
    cfg.event_retention = Duration::from_millis(800);
    let sim = authentik::start(cfg).await.unwrap();
    sim.sim.create_user(new_user("old"), Mode::Evented);
    let f = events_follower(&sim, &db);
    poll(&f).await;
    let cursor = db.store.load_cursor(EVENTS_CURSOR).await.unwrap().unwrap();

    // While the follower is away, a change is made and then expires, and a new one comes.
    sim.sim.create_user(new_user("lost"), Mode::Evented);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(sim.sim.events().is_empty());
    let fresh = sim.sim.create_user(new_user("fresh"), Mode::Evented);
    let mut sink = Collect::default();
    let o = f.poll_once(&mut sink).await.unwrap();
    match o.full_sync {
        Some(FullSyncReason::RetentionGap {
            cursor: c,
            oldest_available,
        }) => {
            assert_eq!(c, cursor.position);
            assert!(oldest_available > c);
        }
        other => panic!("expected a retention gap, got {other:?}"),
    }
    assert_eq!(sink.full_syncs().len(), 1);
    // Afterwards the follower goes on from the newest event.
    let next = sim.sim.create_user(new_user("next"), Mode::Evented);
    let mut sink = Collect::default();
    let o = f.poll_once(&mut sink).await.unwrap();
    assert_eq!(o.full_sync, None);
    assert_eq!(sink.changes(), vec![user(next)]);
    assert_ne!(fresh, next);
}

#[tokio::test]
async fn a_quiet_feed_within_retention_is_no_gap() {
    let db = TestDatabase::migrated().await;
    let sim = authentik::start(SimConfig::new(AK_TOKEN)).await.unwrap();
    // No events at all when the follower starts: its cursor is "now".
    let f = events_follower(&sim, &db);
    poll(&f).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let pk = sim.sim.create_user(new_user("u"), Mode::Evented);
    let mut sink = Collect::default();
    let o = f.poll_once(&mut sink).await.unwrap();
    assert_eq!(o.full_sync, None);
    assert_eq!(sink.changes(), vec![user(pk)]);
}

#[tokio::test]
async fn a_rejected_token_ends_the_loop_with_a_configuration_error() {
    let db = TestDatabase::migrated().await;
    // A token authentik does not accept.
    let sim = authentik::start(SimConfig::new("revoked")).await.unwrap();
    let f = EventFollower::new(
        authentik_client(&sim.base_url()),
        db.store.clone(),
        config(EVENTS_CURSOR),
    );
    let mut sink = Collect::default();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        run(
            &f,
            &mut sink,
            Arc::new(Notify::new()),
            Duration::from_millis(10),
            std::future::pending(),
        ),
    )
    .await
    .expect("the loop ends by itself");
    let err = result.unwrap_err();
    assert!(err.is_configuration());
    assert!(
        err.to_string().contains("authentik rejected the API token"),
        "{err}"
    );
    assert!(sink.handoffs.is_empty());
    assert_eq!(db.store.load_cursor(EVENTS_CURSOR).await.unwrap(), None);
}

#[tokio::test]
async fn the_watermark_catches_silent_user_edits() {
    let db = TestDatabase::migrated().await;
    let sim = authentik::start(SimConfig::new(AK_TOKEN)).await.unwrap();
    sim.sim.generate(&OrgSpec::new(2, 400, 10));
    let f = watermark_follower(&sim, &db);
    let o = f.poll_once(&mut Collect::default()).await.unwrap();
    assert_eq!(o.changes, 0);
    tokio::time::sleep(Duration::from_millis(5)).await;
    // An LDAP import edits users without events; 150 of them at one instant.
    sim.sim
        .freeze_clock(Some(Utc::now() + chrono::Duration::seconds(1)));
    for pk in 100..250 {
        sim.sim.update_user(
            pk,
            UserPatch {
                name: Some(format!("imported {pk}")),
                ..Default::default()
            },
            Mode::Silent,
        );
    }
    assert!(sim.sim.events().is_empty());
    let sink = poll(&f).await;
    assert!(matches!(
        &sink.handoffs[0],
        Handoff::Changes {
            source: ChangeSource::Watermark,
            ..
        }
    ));
    assert_eq!(sink.changes(), (100..250).map(user).collect::<Vec<_>>());
    // Restarted, with more at the same instant: only the new ones.
    for pk in [3, 4] {
        sim.sim.update_user(
            pk,
            UserPatch {
                is_active: Some(false),
                ..Default::default()
            },
            Mode::Silent,
        );
    }
    let f = watermark_follower(&sim, &db);
    let sink = poll(&f).await;
    assert_eq!(sink.changes(), vec![user(3), user(4)]);
    sim.sim.freeze_clock(None);
    let sink = poll(&f).await;
    assert!(sink.handoffs.is_empty());
}
