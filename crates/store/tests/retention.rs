//! Retention: old provisioning-log rows, dead letters and finished runs are
//! pruned by age and count; running syncs and recent rows stay.

use entra_sync_store::retention::{Pruned, Retention};
use entra_sync_store::testing::TestDatabase;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(86400);

fn keep_all() -> Retention {
    Retention {
        outcomes_max_age: 365 * DAY,
        outcomes_max_rows: 1_000_000,
        dead_letters_max_age: 365 * DAY,
        dead_letters_max_rows: 1_000_000,
        runs_kept: 1_000,
        run_objects_max_age: 365 * DAY,
    }
}

async fn count(db: &TestDatabase, table: &str) -> i64 {
    let conn = db.store.conn().await.unwrap();
    conn.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// `n` provisioning-log rows and dead letters written `days_ago`.
async fn history(db: &TestDatabase, n: i32, days_ago: i32) {
    let conn = db.store.conn().await.unwrap();
    conn.execute(
        "INSERT INTO object_outcomes (provider, kind, object_id, action, result, at)
         SELECT 'p', 'user', g::text, 'updated', 'ok', now() - make_interval(days => $2)
         FROM generate_series(1, $1) g",
        &[&n, &days_ago],
    )
    .await
    .unwrap();
    conn.execute(
        "INSERT INTO dead_letters (provider, kind, object_id, reason, at)
         SELECT 'p', 'user', g::text, 'out of attempts', now() - make_interval(days => $2)
         FROM generate_series(1, $1) g",
        &[&n, &days_ago],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_provisioning_log_and_dead_letters_are_pruned_by_age_then_count() {
    let db = TestDatabase::migrated().await;
    history(&db, 5, 40).await;
    history(&db, 7, 10).await;
    history(&db, 3, 0).await;

    let nothing = db.store.prune(&keep_all()).await.unwrap();
    assert_eq!(nothing, Some(Pruned::default()));
    assert_eq!(count(&db, "object_outcomes").await, 15);

    let by_age = Retention {
        outcomes_max_age: 30 * DAY,
        dead_letters_max_age: 20 * DAY,
        ..keep_all()
    };
    let pruned = db.store.prune(&by_age).await.unwrap().unwrap();
    assert_eq!((pruned.outcomes, pruned.dead_letters), (5, 5));
    assert_eq!(count(&db, "object_outcomes").await, 10);

    let by_count = Retention {
        outcomes_max_rows: 4,
        dead_letters_max_rows: 2,
        ..keep_all()
    };
    let pruned = db.store.prune(&by_count).await.unwrap().unwrap();
    assert_eq!((pruned.outcomes, pruned.dead_letters), (6, 8));
    let conn = db.store.conn().await.unwrap();
    let newest: i64 = conn
        .query_one(
            "SELECT count(*) FROM object_outcomes WHERE at > now() - interval '1 day'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(newest, 3, "the newest rows are the ones kept");
    assert_eq!(count(&db, "dead_letters").await, 2);
}

#[tokio::test]
async fn finished_runs_beyond_the_kept_number_go_with_their_objects_and_a_running_one_stays() {
    let db = TestDatabase::migrated().await;
    let conn = db.store.conn().await.unwrap();
    conn.batch_execute(
        "INSERT INTO providers (name, settings_hash) VALUES ('p', 'h'), ('q', 'h');
         INSERT INTO sync_runs (id, provider, state, trigger, started_at, finished_at)
         SELECT gen_random_uuid(), 'p', 'done', 'schedule', now() - make_interval(days => g), now() - make_interval(days => g)
         FROM generate_series(1, 5) g;
         INSERT INTO sync_runs (id, provider, state, trigger, started_at)
         VALUES (gen_random_uuid(), 'p', 'running', 'schedule', now() - interval '30 days');
         INSERT INTO sync_runs (id, provider, state, trigger, started_at, finished_at)
         VALUES (gen_random_uuid(), 'q', 'failed', 'schedule', now() - interval '9 days', now() - interval '9 days');
         INSERT INTO sync_run_objects (run_id, kind, object_id, status)
         SELECT id, 'user', '1', 'done' FROM sync_runs;",
    )
    .await
    .unwrap();

    let keep_two = Retention {
        runs_kept: 2,
        ..keep_all()
    };
    let pruned = db.store.prune(&keep_two).await.unwrap().unwrap();
    assert_eq!(
        pruned.runs, 3,
        "p keeps its 2 newest finished runs; q has only 1"
    );
    assert_eq!(count(&db, "sync_runs").await, 4);
    assert_eq!(count(&db, "sync_run_objects").await, 4);
    let running: i64 = conn
        .query_one(
            "SELECT count(*) FROM sync_runs WHERE state = 'running'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(running, 1);

    // A finished run's per-object rows go after run_objects_max_age; its counts stay.
    let objects = Retention {
        run_objects_max_age: 3 * DAY,
        ..keep_all()
    };
    let pruned = db.store.prune(&objects).await.unwrap().unwrap();
    assert_eq!(pruned.run_objects, 1, "only q's 9-day-old run is past it");
    assert_eq!(count(&db, "sync_runs").await, 4);
    assert_eq!(count(&db, "sync_run_objects").await, 3);
}
