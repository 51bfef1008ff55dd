//! The followers across authentik releases and clocks, against the authentik
//! simulator and the real PostgreSQL: the silent scan where the watermark
//! cannot run, a watermark filter authentik ignores, authentik's clock off
//! this machine's, events that commit late, and events logged twice.

mod common;

use common::sink::{Collect, poll, user};
use entra_sync_authentik::{AuthentikClient, Feature, Filter};
use entra_sync_core::ids::AkGroupPk;
use entra_sync_producer::events::{
    ChangeSource, EVENTS_CURSOR, EventFollower, Follower, FollowerConfig, Handoff, ObjectChange,
    SILENT_SCAN_CURSOR, SilentScan, WATERMARK_CURSOR, WatermarkFollower,
};
use entra_sync_sim::authentik::{
    self, Mode, NewGroup, NewUser, OrgSpec, Release, RunningSim, SimConfig, UserPatch,
};
use entra_sync_store::testing::TestDatabase;
use std::time::Duration;

async fn sim(release: Release) -> RunningSim {
    authentik::start(SimConfig::new(common::AK_TOKEN).with_release(release))
        .await
        .unwrap()
}

fn client(sim: &RunningSim) -> AuthentikClient {
    common::authentik_client(&sim.base_url())
}

/// A client that has read the release, as the producer's has.
async fn detected(sim: &RunningSim) -> AuthentikClient {
    let c = client(sim);
    c.detect_release().await.unwrap();
    c
}

/// Authentik 2026.8 with its clock 30 s behind this machine's, and a database.
async fn clock_behind() -> (TestDatabase, RunningSim) {
    let db = TestDatabase::migrated().await;
    let sim = sim(Release::V2026_8).await;
    sim.sim.set_clock_offset(chrono::Duration::seconds(-30));
    (db, sim)
}

/// Whether the silent scan has saved its cursor.
async fn scan_cursor_saved(db: &TestDatabase) -> bool {
    let cursor = db.store.load_cursor(SILENT_SCAN_CURSOR).await.unwrap();
    cursor.is_some()
}

fn rename(sim: &RunningSim, pk: i64, name: &str) {
    sim.sim.update_user(
        pk,
        UserPatch {
            name: Some(name.into()),
            ..Default::default()
        },
        Mode::Silent,
    );
}

async fn silent_scan_finds_only_silent_changes(release: Release) {
    let db = TestDatabase::migrated().await;
    let sim = sim(release).await;
    sim.sim.generate(&OrgSpec::new(3, 10_000, 20));
    let client = detected(&sim).await;
    assert!(!client.uses(Feature::LastUpdated), "{release}");
    let scan = SilentScan::new(client, db.store.clone(), 50_000);
    // The first scan records the state: the first full sync covers the rest.
    let mut sink = Collect::default();
    scan.poll_once(&mut sink).await.unwrap();
    assert!(sink.handoffs.is_empty());
    assert!(scan_cursor_saved(&db).await);
    // 10,000 unchanged users: no task.
    let o = scan.poll_once(&mut sink).await.unwrap();
    assert_eq!((o.changes, o.new_items), (0, 0));
    assert!(sink.handoffs.is_empty(), "{release}");
    // An LDAP import renames two users and deletes one, silently.
    rename(&sim, 17, "renamed 17");
    rename(&sim, 9000, "renamed 9000");
    sim.sim.delete_user(42, Mode::Silent);
    assert!(sim.sim.events().is_empty());
    scan.poll_once(&mut sink).await.unwrap();
    let mut got = sink.changes();
    got.sort_by_key(|c| match c {
        ObjectChange::User(pk) => pk.0,
        ObjectChange::Group(_) => 0,
    });
    assert_eq!(got, vec![user(17), user(42), user(9000)], "{release}");
    assert!(matches!(
        sink.handoffs[0],
        Handoff::Changes {
            source: ChangeSource::SilentScan,
            ..
        }
    ));
    assert_eq!(
        ChangeSource::SilentScan.lane(),
        entra_sync_queue::Lane::Bulk
    );
    // Handled: the next scan is quiet again.
    assert!(poll(&scan).await.handoffs.is_empty());
}

#[tokio::test]
async fn on_2024_2_the_silent_scan_finds_silent_changes_and_nothing_else() {
    silent_scan_finds_only_silent_changes(Release::V2024_2).await;
}

#[tokio::test]
async fn on_2025_4_the_silent_scan_finds_silent_changes_and_nothing_else() {
    silent_scan_finds_only_silent_changes(Release::V2025_4).await;
}

#[tokio::test]
async fn the_silent_scan_leaves_2025_8_and_later_to_the_watermark() {
    let db = TestDatabase::migrated().await;
    let sim = sim(Release::V2025_10).await;
    sim.sim.create_user(NewUser::default(), Mode::Silent);
    let scan = SilentScan::new(detected(&sim).await, db.store.clone(), 50_000);
    poll(&scan).await;
    assert!(!scan_cursor_saved(&db).await);
}

#[tokio::test]
async fn an_ignored_last_updated_filter_is_noted_and_the_watermark_stands_down() {
    let db = TestDatabase::migrated().await;
    let sim = sim(Release::V2025_4).await;
    sim.sim.generate(&OrgSpec::new(3, 50, 5));
    // A client that has not read the release assumes the newest behaviour.
    let client = client(&sim);
    assert!(client.uses(Feature::LastUpdated));
    let config = FollowerConfig::new(WATERMARK_CURSOR);
    let watermark = WatermarkFollower::new(client.clone(), db.store.clone(), config);
    let mut sink = Collect::default();
    watermark.poll_once(&mut sink).await.unwrap(); // starts its cursor
    tokio::time::sleep(Duration::from_millis(5)).await;
    let o = watermark.poll_once(&mut sink).await.unwrap();
    assert_eq!(o.changes, 0);
    assert!(sink.handoffs.is_empty(), "no flood of every user");
    assert!(client.is_ignored(Filter::UsersLastUpdatedGt));
    assert!(!client.uses(Feature::LastUpdated));
    assert_eq!(client.ignored_filters().len(), 1);
    // The silent scan now runs for this client.
    let scan = SilentScan::new(client, db.store.clone(), 50_000);
    scan.poll_once(&mut sink).await.unwrap();
    assert!(scan_cursor_saved(&db).await);
}

fn events_follower(client: AuthentikClient, db: &TestDatabase) -> EventFollower {
    EventFollower::new(client, db.store.clone(), FollowerConfig::new(EVENTS_CURSOR))
}

#[tokio::test]
async fn a_producer_clock_30s_ahead_misses_no_event() {
    let (db, sim) = clock_behind().await;
    let f = events_follower(detected(&sim).await, &db);
    // First start on an empty feed: a full sync, and a cursor not in authentik's future.
    poll(&f).await;
    let cursor = db.store.load_cursor(EVENTS_CURSOR).await.unwrap().unwrap();
    assert!(cursor.position <= sim.sim.clock(), "{cursor:?}");
    let pk = sim.sim.create_user(NewUser::default(), Mode::Evented);
    assert_eq!(poll(&f).await.changes(), vec![user(pk)]);
    // Read once only, though it stays inside the overlap window.
    assert!(poll(&f).await.handoffs.is_empty());
}

#[tokio::test]
async fn an_event_committing_late_behind_a_newer_one_is_still_handed_off() {
    let (db, sim) = clock_behind().await;
    let f = events_follower(detected(&sim).await, &db);
    poll(&f).await;
    sim.sim.hold_next_events();
    let late = sim.sim.create_user(NewUser::default(), Mode::Evented);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let newer = sim.sim.create_user(NewUser::default(), Mode::Evented);
    assert_eq!(poll(&f).await.changes(), vec![user(newer)]);
    // The older event commits now, behind the one already read.
    sim.sim.commit_held();
    assert_eq!(poll(&f).await.changes(), vec![user(late)]);
}

#[tokio::test]
async fn the_watermark_runs_on_authentiks_clock() {
    let (db, sim) = clock_behind().await;
    let pk = sim.sim.create_user(NewUser::default(), Mode::Silent);
    let config = FollowerConfig::new(WATERMARK_CURSOR);
    let f = WatermarkFollower::new(detected(&sim).await, db.store.clone(), config);
    poll(&f).await;
    let cursor = db
        .store
        .load_cursor(WATERMARK_CURSOR)
        .await
        .unwrap()
        .unwrap();
    assert!(cursor.position <= sim.sim.clock());
    rename(&sim, pk, "silently renamed");
    assert_eq!(poll(&f).await.changes(), vec![user(pk)]);
    assert!(poll(&f).await.handoffs.is_empty());
}

#[tokio::test]
async fn a_change_logged_twice_is_handed_off_once() {
    let db = TestDatabase::migrated().await;
    let sim = sim(Release::V2024_2).await;
    let f = events_follower(detected(&sim).await, &db);
    poll(&f).await;
    let g = sim.sim.create_group(
        NewGroup {
            name: "g".into(),
            ..Default::default()
        },
        Mode::Silent,
    );
    let u = sim.sim.create_user(NewUser::default(), Mode::Silent);
    sim.sim.add_member(g, u, Mode::Evented);
    let group_events = sim
        .sim
        .events()
        .iter()
        .filter(|e| e.model_name == "group")
        .count();
    assert_eq!(group_events, 2, "2024.2 logs it twice");
    let groups: Vec<_> = poll(&f)
        .await
        .changes()
        .into_iter()
        .filter(|c| matches!(c, ObjectChange::Group(_)))
        .collect();
    assert_eq!(groups, vec![ObjectChange::Group(AkGroupPk(g))]);
}
