//! The migration runner against the real PostgreSQL.

use entra_sync_store::testing::TestDatabase;

#[tokio::test]
async fn applies_every_migration_once_and_is_idempotent() {
    let db = TestDatabase::empty().await;
    let first = db.store.migrate().await.unwrap();
    assert_eq!(
        first.applied.first().map(String::as_str),
        Some("V1__initial_schema")
    );
    let second = db.store.migrate().await.unwrap();
    assert!(
        second.applied.is_empty(),
        "second run applied {:?}",
        second.applied
    );
    let conn = db.store.conn().await.unwrap();
    let tables: i64 = conn
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'user_links'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 1);
}

#[tokio::test]
async fn concurrent_runs_apply_each_migration_exactly_once() {
    let db = TestDatabase::empty().await;
    let runs = (0..4).map(|_| {
        let store = db.store.clone();
        tokio::spawn(async move { store.migrate().await })
    });
    let mut applied = Vec::new();
    for run in runs {
        applied.extend(
            run.await
                .unwrap()
                .expect("every concurrent run succeeds")
                .applied,
        );
    }
    let conn = db.store.conn().await.unwrap();
    let history: i64 = conn
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        applied.len() as i64,
        history,
        "each migration applied by exactly one run"
    );
    assert!(history >= 1);
}
