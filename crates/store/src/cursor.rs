//! Cursors into authentik's change sources, stored in `source_cursors`.
//!
//! A cursor says how far a source has been handled: every item created before
//! `position` is handled, and of the items at or after `position`, exactly
//! those in `seen_ids`. So items sharing a timestamp across a page boundary, or
//! a restart, are neither skipped nor handled twice.

use crate::{Store, StoreError, query_error};
use chrono::{DateTime, Utc};

/// How far a source has been handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceCursor {
    /// Everything strictly before this instant is handled.
    pub position: DateTime<Utc>,
    /// Ids of items at or after `position` already handled.
    pub seen_ids: Vec<String>,
}

impl SourceCursor {
    /// A cursor at `position` with nothing seen there yet.
    pub fn at(position: DateTime<Utc>) -> Self {
        Self {
            position,
            seen_ids: Vec::new(),
        }
    }

    /// Whether an item with this timestamp and id was already handled.
    pub fn is_handled(&self, created: DateTime<Utc>, id: &str) -> bool {
        created < self.position || self.seen_ids.iter().any(|s| s == id)
    }
}

impl Store {
    /// The cursor named `name`, if one was saved.
    pub async fn load_cursor(&self, name: &str) -> Result<Option<SourceCursor>, StoreError> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT position, seen_ids FROM source_cursors WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(query_error("loading a source cursor"))?;
        Ok(row.map(|r| SourceCursor {
            position: r.get(0),
            seen_ids: r.get(1),
        }))
    }

    /// Saves the cursor named `name` (insert or replace).
    pub async fn save_cursor(&self, name: &str, cursor: &SourceCursor) -> Result<(), StoreError> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO source_cursors (name, position, seen_ids, updated_at)
                 VALUES ($1, $2, $3, now())
                 ON CONFLICT (name) DO UPDATE
                 SET position = EXCLUDED.position, seen_ids = EXCLUDED.seen_ids, updated_at = now()",
                &[&name, &cursor.position, &cursor.seen_ids],
            )
            .await
            .map_err(query_error("saving a source cursor"))?;
        Ok(())
    }

    /// Forgets the cursor named `name` (the next follow starts with a full sync).
    pub async fn delete_cursor(&self, name: &str) -> Result<(), StoreError> {
        self.conn()
            .await?
            .execute("DELETE FROM source_cursors WHERE name = $1", &[&name])
            .await
            .map_err(query_error("deleting a source cursor"))?;
        Ok(())
    }
}

#[cfg(all(test, feature = "test-support"))]
mod tests {
    use super::*;
    use crate::testing::TestDatabase;

    #[tokio::test]
    async fn cursors_round_trip_with_microseconds_and_seen_ids() {
        let db = TestDatabase::migrated().await;
        assert_eq!(db.store.load_cursor("events").await.unwrap(), None);
        let t = DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap();
        let c = SourceCursor {
            position: t,
            seen_ids: vec!["a".into(), "b".into()],
        };
        db.store.save_cursor("events", &c).await.unwrap();
        assert_eq!(
            db.store.load_cursor("events").await.unwrap(),
            Some(c.clone())
        );
        let c2 = SourceCursor::at(t + chrono::Duration::seconds(1));
        db.store.save_cursor("events", &c2).await.unwrap();
        assert_eq!(db.store.load_cursor("events").await.unwrap(), Some(c2));
        assert!(c.is_handled(t - chrono::Duration::microseconds(1), "z"));
        assert!(c.is_handled(t, "a"));
        assert!(!c.is_handled(t, "z"));
        db.store.delete_cursor("events").await.unwrap();
        assert_eq!(db.store.load_cursor("events").await.unwrap(), None);
    }
}
