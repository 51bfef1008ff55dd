//! Links looked up in bulk from either side, without their attributes: what
//! reconciling memberships and adopting groups need (one query for a whole
//! group); and recording memberships only while the group is still linked to
//! the Entra group they were written to.

use crate::links::{LinkKey, LinkState, entra_id, insert_written_members, state};
use crate::{Store, StoreError, query_error};
use entra_sync_core::ids::{AkGroupPk, AkUserPk, EntraObjectId};
use std::time::SystemTime;
use tokio_postgres::Row;

/// A link's two ids, its state and when it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkRef<K> {
    /// The authentik id.
    pub ak_id: K,
    /// The Entra object.
    pub entra_id: EntraObjectId,
    /// Active, or suspended by a delete action.
    pub state: LinkState,
    /// When the link was made (a re-created object gets a new link).
    pub created_at: SystemTime,
}

impl<K: LinkKey> LinkRef<K> {
    fn from_row(row: &Row) -> Result<Self, StoreError> {
        Ok(Self {
            ak_id: K::from_row(row, 0),
            entra_id: entra_id(row, 1)?,
            state: state(row.get(2)),
            created_at: row.get(3),
        })
    }
}

impl Store {
    /// The links of those of `keys` that are linked, in one query.
    pub async fn link_refs<K: LinkKey>(
        &self,
        provider: &str,
        keys: &[K],
    ) -> Result<Vec<LinkRef<K>>, StoreError> {
        let sql: Vec<K::Sql> = keys.iter().map(|k| k.sql()).collect();
        let query = format!(
            "SELECT {c}, entra_id, state, created_at FROM {t} WHERE provider = $1 AND {c} = ANY($2)",
            c = K::COLUMN,
            t = K::TABLE
        );
        self.rows_as(
            &query,
            &[&provider, &sql],
            "reading links by authentik id",
            LinkRef::from_row,
        )
        .await
    }

    /// Every link of one kind of a provider, without its attributes, in
    /// authentik id order: what a full sync counts and indexes for all of
    /// them (100,000 users' attributes would not fit its memory budget).
    pub async fn link_refs_of<K: LinkKey>(
        &self,
        provider: &str,
    ) -> Result<Vec<LinkRef<K>>, StoreError> {
        let columns = format!("{}, entra_id, state, created_at", K::COLUMN);
        self.list_links::<K, _>(provider, &columns, LinkRef::from_row)
            .await
    }

    /// The authentik ids of a provider's active links of kind `K`: for users,
    /// those in scope as last decided (a suspended or unlinked user is not).
    pub async fn active_links<K: LinkKey>(&self, provider: &str) -> Result<Vec<K>, StoreError> {
        let query = format!(
            "SELECT {c} FROM {t} WHERE provider = $1 AND state = 'active' ORDER BY {c}",
            c = K::COLUMN,
            t = K::TABLE
        );
        let conn = self.conn().await?;
        let rows = conn
            .query(&query, &[&provider])
            .await
            .map_err(query_error("listing active links"))?;
        Ok(rows.iter().map(|r| K::from_row(r, 0)).collect())
    }

    /// The links of kind `K` of those of `entra_ids` that are linked, in one query.
    pub async fn link_refs_by_entra_id<K: LinkKey>(
        &self,
        provider: &str,
        entra_ids: &[EntraObjectId],
    ) -> Result<Vec<LinkRef<K>>, StoreError> {
        let ids: Vec<&str> = entra_ids.iter().map(EntraObjectId::as_str).collect();
        let query = format!(
            "SELECT {c}, entra_id, state, created_at FROM {t} WHERE provider = $1 AND entra_id = ANY($2)",
            c = K::COLUMN,
            t = K::TABLE
        );
        self.rows_as(
            &query,
            &[&provider, &ids],
            "reading links by Entra id",
            LinkRef::from_row,
        )
        .await
    }

    /// Records `users` as members written to Entra group `entra_group`, if
    /// authentik group `group` is still linked to it (a group re-created
    /// meanwhile has a new link, which these members are not in). Returns
    /// whether they were recorded.
    pub async fn add_written_members_to(
        &self,
        provider: &str,
        group: AkGroupPk,
        entra_group: &EntraObjectId,
        users: &[AkUserPk],
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn
            .transaction()
            .await
            .map_err(query_error("recording memberships"))?;
        // The key-share lock keeps the link from being dropped until the commit.
        let linked = tx
            .query_opt(
                "SELECT 1 FROM group_links WHERE provider = $1 AND ak_group_pk = $2 AND entra_id = $3 FOR KEY SHARE",
                &[&provider, &group.0, &entra_group.as_str()],
            )
            .await
            .map_err(query_error("checking a group link"))?;
        if linked.is_none() {
            tx.rollback()
                .await
                .map_err(query_error("recording memberships"))?;
            return Ok(false);
        }
        insert_written_members(&tx, provider, group, users).await?;
        tx.commit()
            .await
            .map_err(query_error("recording memberships"))?;
        Ok(true)
    }
}
