//! Per-test schemas, so integration tests run in parallel against the real PostgreSQL.

use crate::Store;

/// The database tests use: `ENTRA_SYNC_TEST_DATABASE_URL`, or the local one.
pub fn test_database_url() -> String {
    std::env::var("ENTRA_SYNC_TEST_DATABASE_URL").unwrap_or_else(|_| {
        "postgres://entra_sync:entra_sync@127.0.0.1:5432/entra_sync_test".to_owned()
    })
}

/// A fresh schema with the migrations applied, dropped when the value is dropped.
pub struct TestDatabase {
    /// A store whose connections use the schema.
    pub store: Store,
    /// The schema's name, `t_<uuid>`.
    pub schema: String,
    url: String,
}

impl TestDatabase {
    /// Creates an empty schema (no migrations applied).
    pub async fn empty() -> Self {
        Self::empty_at(&test_database_url()).await
    }

    /// Creates an empty schema in the database at `url`.
    pub async fn empty_at(url: &str) -> Self {
        let url = url.to_owned();
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let admin = Store::connect(&url, 1, None).expect("test database url");
        admin
            .conn()
            .await
            .expect("connect to the test database (run scripts/ensure-services)")
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("create test schema");
        let store = Store::connect(&url, 16, Some(&schema)).expect("test database url");
        Self { store, schema, url }
    }

    /// Creates a schema and applies every migration.
    pub async fn migrated() -> Self {
        Self::migrated_at(&test_database_url()).await
    }

    /// Creates a schema in the database at `url` and applies every migration.
    pub async fn migrated_at(url: &str) -> Self {
        let db = Self::empty_at(url).await;
        db.store.migrate().await.expect("migrations apply");
        db
    }

    /// The connection URL and search path, for processes under test.
    pub fn url_with_schema(&self) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{sep}options=-c%20search_path%3D{}",
            self.url, self.schema
        )
    }
}

impl TestDatabase {
    /// Makes every link older than Graph's replication window, so that a "not
    /// found" means gone rather than "not replicated yet".
    pub async fn age_links(&self) {
        self.store
            .conn()
            .await
            .expect("a connection")
            .batch_execute(
                "UPDATE user_links SET created_at = now() - interval '1 hour';
                 UPDATE group_links SET created_at = now() - interval '1 hour';",
            )
            .await
            .expect("links aged");
    }

    /// How many sessions wait for the lock on `object` of `provider`
    /// ([`Store::lock_object`]), so a test can hold a lock until another
    /// party is known to be waiting for it.
    pub async fn object_lock_waiters(&self, provider: &str, object: &str) -> i64 {
        let key = self.store.object_lock_key(provider, object);
        let conn = self.store.conn().await.expect("a connection");
        conn.query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
               AND objsubid = 1
               AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)",
            &[&key],
        )
        .await
        .expect("pg_locks answers")
        .get(0)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let url = self.url.clone();
        let schema = self.schema.clone();
        // Drop runs outside any runtime guarantee: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let store = Store::connect(&url, 1, None).ok()?;
                let conn = store.conn().await.ok()?;
                conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}
