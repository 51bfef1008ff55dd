//! `resume` through the provider room against the real PostgreSQL: plain
//! resume keeps the deletion guard, `--allow-deletions` waives it for one run
//! and only clears the guard's own halt.

use entra_sync_provider::{Provider, Resumed, RunRequest, resume};
use entra_sync_store::Store;
use entra_sync_store::providers::HaltKind;
use entra_sync_store::testing::TestDatabase;

mod common;

/// Provider `p` with a threshold of 20; no Graph request is made, so any
/// address will do.
fn provider() -> Provider {
    let mut provider = common::provider(common::graph_client("http://127.0.0.1:9"));
    provider.deletions.threshold = 20;
    provider
}

async fn halted(kind: HaltKind) -> (TestDatabase, Provider) {
    let db = TestDatabase::migrated().await;
    db.store.register_provider("p", "h").await.unwrap();
    db.store.halt_as("p", kind, "why").await.unwrap();
    (db, provider())
}

async fn started_run(store: &Store, resumed: Resumed) -> entra_sync_store::runs::Run {
    let Resumed::Resumed {
        run: RunRequest::Started(id),
        ..
    } = resumed
    else {
        panic!("a full sync was started: {resumed:?}")
    };
    store.run(id).await.unwrap().unwrap()
}

#[tokio::test]
async fn allow_deletions_clears_the_guard_and_waives_it_for_the_run_it_starts() {
    let (db, provider) = halted(HaltKind::DeletionGuard).await;
    let resumed = resume(&db.store, &provider, true).await.unwrap();
    assert!(db.store.halt_of("p").await.unwrap().is_none());
    let run = started_run(&db.store, resumed).await;
    assert!(run.deletions_allowed);
    assert_eq!(run.trigger, "resume_allowing_deletions");
}

#[tokio::test]
async fn plain_resume_keeps_the_guard() {
    let (db, provider) = halted(HaltKind::DeletionGuard).await;
    let resumed = resume(&db.store, &provider, false).await.unwrap();
    assert!(db.store.halt_of("p").await.unwrap().is_none());
    let run = started_run(&db.store, resumed).await;
    assert!(!run.deletions_allowed);
}

#[tokio::test]
async fn allow_deletions_on_another_halt_changes_nothing() {
    let (db, provider) = halted(HaltKind::Configuration).await;
    let resumed = resume(&db.store, &provider, true).await.unwrap();
    let Resumed::NotHalted(Some(halt)) = resumed else {
        panic!("not halted by the guard: {resumed:?}")
    };
    assert_eq!(halt.kind, HaltKind::Configuration);
    assert_eq!(db.store.halt_of("p").await.unwrap(), Some(halt));
    assert!(db.store.latest_run("p").await.unwrap().is_none());
}

#[tokio::test]
async fn allow_deletions_on_a_running_provider_changes_nothing() {
    let db = TestDatabase::migrated().await;
    db.store.register_provider("p", "h").await.unwrap();
    let resumed = resume(&db.store, &provider(), true).await.unwrap();
    assert_eq!(resumed, Resumed::NotHalted(None));
    assert!(db.store.latest_run("p").await.unwrap().is_none());
}
