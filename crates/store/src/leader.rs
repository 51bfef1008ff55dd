//! Leader election for producer replicas: a PostgreSQL session advisory lock
//! held on a dedicated connection. When the holder dies, PostgreSQL ends its
//! session and releases the lock, and a standby takes over.

use crate::{Store, StoreError, query_error};

/// Leadership of one role, held as long as this value and its connection live.
pub struct Leadership {
    conn: deadpool_postgres::ClientWrapper,
    key: String,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("key", &self.key)
            .finish()
    }
}

impl Store {
    /// Becomes the leader for `role` if no other session is; `None` otherwise.
    pub async fn try_lead(&self, role: &str) -> Result<Option<Leadership>, StoreError> {
        let conn = self.conn().await?;
        let key = self.lock_key(&format!("leader/{role}"));
        let row = conn
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&key],
            )
            .await
            .map_err(query_error("trying to become leader"))?;
        let got: bool = row.get(0);
        // The connection that holds the lock leaves the pool: nobody else may
        // reuse the session, and closing it releases the lock.
        Ok(got.then(|| Leadership {
            conn: deadpool_postgres::Object::take(conn),
            key,
        }))
    }
}

impl Leadership {
    /// Checks that the session holding the lock is still alive.
    pub async fn still_leading(&self) -> Result<(), StoreError> {
        self.conn
            .simple_query("SELECT 1")
            .await
            .map_err(query_error("checking leadership"))?;
        Ok(())
    }

    /// Gives leadership up.
    pub async fn resign(self) -> Result<(), StoreError> {
        self.conn
            .query_one(
                "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                &[&self.key],
            )
            .await
            .map_err(query_error("resigning leadership"))?;
        Ok(())
    }
}
