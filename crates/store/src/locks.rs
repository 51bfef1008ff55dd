//! Per-object locks: the read → decide → write → record cycle of one object
//! runs under a PostgreSQL session advisory lock on (provider, object), so two
//! workers never write the same object at once (DESIGN invariant 2).

use crate::{Store, StoreError, query_error};
use std::time::Duration;
use tokio_postgres::error::SqlState;

/// A held object lock. Release it with [`ObjectLock::release`]; if it is
/// dropped instead (a panic, a cancelled task), its connection is closed, which
/// releases the lock, rather than going back to the pool still holding it.
pub struct ObjectLock {
    conn: Option<deadpool_postgres::Object>,
    key: String,
}

impl std::fmt::Debug for ObjectLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectLock")
            .field("key", &self.key)
            .finish()
    }
}

impl Store {
    /// Waits up to `timeout` for the lock on `object` of `provider` (a group
    /// and its memberships should share one name); `None` if another session
    /// still holds it then. A free lock is taken without setting a timeout.
    pub async fn lock_object(
        &self,
        provider: &str,
        object: &str,
        timeout: Duration,
    ) -> Result<Option<ObjectLock>, StoreError> {
        let key = &self.object_lock_key(provider, object);
        let conn = self.lock_conn().await?;
        // A free lock, the usual case, is taken in one round trip.
        let free: bool = conn
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&key],
            )
            .await
            .map_err(query_error("taking an object lock"))?
            .get(0);
        if free {
            return Ok(Some(ObjectLock {
                conn: Some(conn),
                key: key.to_owned(),
            }));
        }
        let timeout_ms = timeout.as_millis().max(1).to_string();
        conn.execute(
            "SELECT set_config('lock_timeout', $1, false)",
            &[&timeout_ms],
        )
        .await
        .map_err(query_error("setting the lock timeout"))?;
        let locked = conn
            .execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&key])
            .await;
        let reset = conn
            .batch_execute("SET lock_timeout = 0")
            .await
            .map_err(query_error("resetting the lock timeout"));
        match locked {
            Ok(_) => {
                let lock = ObjectLock {
                    conn: Some(conn),
                    key: key.to_owned(),
                };
                reset?;
                Ok(Some(lock))
            }
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                reset?;
                Ok(None)
            }
            Err(e) => Err(query_error("taking an object lock")(e)),
        }
    }
}

impl Store {
    /// The advisory-lock key of `object` of `provider`.
    pub(crate) fn object_lock_key(&self, provider: &str, object: &str) -> String {
        self.lock_key(&format!("object/{provider}/{object}"))
    }
}

impl ObjectLock {
    /// Releases the lock and returns the connection to the pool.
    pub async fn release(mut self) -> Result<(), StoreError> {
        let conn = self.conn.take().expect("a held lock has its connection");
        match conn
            .execute(
                "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                &[&self.key],
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                // The session may still hold the lock: never pool it again.
                drop(deadpool_postgres::Object::take(conn));
                Err(query_error("releasing an object lock")(e))
            }
        }
    }
}

impl Drop for ObjectLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(deadpool_postgres::Object::take(conn));
        }
    }
}
