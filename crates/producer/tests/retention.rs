//! The producer's background pruning: old provisioning-log rows go without anyone asking.

use entra_sync_producer::retention::prune_loop;
use entra_sync_store::retention::Retention;
use entra_sync_store::testing::TestDatabase;
use std::time::{Duration, Instant};

// Multi-threaded: the schema is dropped from a blocking Drop, while the
// aborted loop's connection must still be driven to roll back.
#[tokio::test(flavor = "multi_thread")]
async fn the_prune_loop_deletes_what_retention_does_not_keep() {
    let db = TestDatabase::migrated().await;
    let conn = db.store.conn().await.unwrap();
    conn.batch_execute(
        "INSERT INTO object_outcomes (provider, kind, object_id, action, result, at)
         VALUES ('p', 'user', '1', 'updated', 'ok', now() - interval '40 days'),
                ('p', 'user', '2', 'updated', 'ok', now())",
    )
    .await
    .unwrap();
    let day = Duration::from_secs(86400);
    let retention = Retention {
        outcomes_max_age: 30 * day,
        outcomes_max_rows: 1000,
        dead_letters_max_age: 30 * day,
        dead_letters_max_rows: 1000,
        runs_kept: 10,
        run_objects_max_age: day,
    };
    let pruning = tokio::spawn(prune_loop(
        db.store.clone(),
        retention,
        Duration::from_millis(100),
    ));
    let started = Instant::now();
    loop {
        let left: Vec<String> = conn
            .query("SELECT object_id FROM object_outcomes", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        if left == ["2"] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not pruned: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pruning.abort();
    let _ = pruning.await;
}
