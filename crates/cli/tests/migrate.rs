//! `entra-sync migrate` as a process, against the real PostgreSQL.

use entra_sync_store::testing::TestDatabase;
use std::process::Command;

fn migrate(url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_entra-sync"))
        .arg("migrate")
        .env("DATABASE_URL", url)
        .env_remove("ENTRA_SYNC_CONFIG")
        .output()
        .expect("run entra-sync")
}

#[tokio::test]
async fn migrate_applies_the_schema_and_is_idempotent() {
    let db = TestDatabase::empty().await;
    let url = db.url_with_schema();
    let first = migrate(&url);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stderr).contains("V1__initial_schema"));
    let second = migrate(&url);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("up to date"));
    let links: i64 = db
        .store
        .conn()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM user_links", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(links, 0);
}

#[test]
fn migrate_without_a_database_says_what_is_missing() {
    let out = Command::new(env!("CARGO_BIN_EXE_entra-sync"))
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .env_remove("ENTRA_SYNC_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("set DATABASE_URL"));
}
