//! Links between authentik objects and Entra objects, with the attributes we
//! last wrote, and the memberships we last wrote.
//!
//! A link is unique on (provider, authentik id) and on (provider, Entra id), so
//! one authentik object never has two Entra objects and vice versa.

use crate::{Store, StoreError, query_error};
use deadpool_postgres::GenericClient;
use entra_sync_core::diff::Body;
use entra_sync_core::ids::{AkGroupPk, AkUserPk, EntraObjectId};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

/// How a link came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkOrigin {
    /// We created the Entra object.
    Created,
    /// Discovery matched an existing Entra object.
    Discovered,
    /// A create hit a conflict and we adopted the existing object.
    Adopted,
}

impl LinkOrigin {
    fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Discovered => "discovered",
            Self::Adopted => "adopted",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "discovered" => Self::Discovered,
            "adopted" => Self::Adopted,
            _ => Self::Created,
        }
    }
}

/// Whether a linked user is synced or was suspended by a delete action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Synced.
    Active,
    /// `accountEnabled` was set false because the user was deleted or left scope.
    Suspended,
}

/// A link of any kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Link<K> {
    /// The authentik id.
    pub ak_id: K,
    /// The Entra object.
    pub entra_id: EntraObjectId,
    /// The attributes we last wrote (Graph property names; never a password).
    pub attributes: Body,
    /// How it came to be.
    pub origin: LinkOrigin,
    /// Active, or suspended by a delete action (users only; groups stay active).
    pub state: LinkState,
}

/// A user link.
pub type UserLink = Link<AkUserPk>;
/// A group link.
pub type GroupLink = Link<AkGroupPk>;

/// Which side of a link was already taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Entra object {entra_id} is already linked to another authentik object of provider {provider}"
)]
pub struct EntraIdTaken {
    /// The provider.
    pub provider: String,
    /// The Entra id that is taken.
    pub entra_id: EntraObjectId,
}

fn attributes(row: &Row, i: usize) -> Body {
    match row.get::<_, serde_json::Value>(i) {
        serde_json::Value::Object(map) => map,
        _ => Body::new(),
    }
}

/// The columns [`link_of`] reads, first in a row.
pub(crate) const LINK_COLUMNS: &str = "entra_id, attributes, origin, state";

/// The link of `key` from a row that starts with [`LINK_COLUMNS`].
pub(crate) fn link_of<K>(key: K, row: &Row) -> Result<Link<K>, StoreError> {
    Ok(Link {
        ak_id: key,
        entra_id: entra_id(row, 0)?,
        attributes: attributes(row, 1),
        origin: LinkOrigin::parse(row.get(2)),
        state: state(row.get(3)),
    })
}

pub(crate) fn entra_id(row: &Row, i: usize) -> Result<EntraObjectId, StoreError> {
    let text: String = row.get(i);
    EntraObjectId::parse(&text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn state_name(state: LinkState) -> &'static str {
    match state {
        LinkState::Active => "active",
        LinkState::Suspended => "suspended",
    }
}

pub(crate) fn state(s: &str) -> LinkState {
    if s == "suspended" {
        LinkState::Suspended
    } else {
        LinkState::Active
    }
}

/// The result of saving a link.
pub type SaveResult = Result<Result<(), EntraIdTaken>, StoreError>;

/// The result of [`Store::insert_link`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewLink {
    /// The link was made.
    Inserted,
    /// The authentik object already had a link; it was left as it is.
    AlreadyLinked,
    /// The Entra object is linked to another authentik object.
    Taken(EntraIdTaken),
}

fn taken(
    e: tokio_postgres::Error,
    provider: &str,
    id: &EntraObjectId,
    doing: &'static str,
) -> SaveResult {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        Ok(Err(EntraIdTaken {
            provider: provider.to_owned(),
            entra_id: id.clone(),
        }))
    } else {
        Err(query_error(doing)(e))
    }
}

/// The two kinds of linked authentik ids, and where their links live.
pub trait LinkKey: Copy + Send + Sync + 'static {
    /// The id as a query parameter.
    type Sql: tokio_postgres::types::ToSql + Sync + Send;
    /// The table of links.
    const TABLE: &'static str;
    /// The column of the authentik id.
    const COLUMN: &'static str;
    /// The SQL type of that column.
    const SQL_TYPE: &'static str;
    /// The id as a query parameter.
    fn sql(self) -> Self::Sql;
    /// The id from a query result.
    fn from_row(row: &Row, i: usize) -> Self;
}

impl LinkKey for AkUserPk {
    type Sql = i64;
    const TABLE: &'static str = "user_links";
    const COLUMN: &'static str = "ak_user_pk";
    const SQL_TYPE: &'static str = "bigint";
    fn sql(self) -> i64 {
        self.0
    }
    fn from_row(row: &Row, i: usize) -> Self {
        AkUserPk(row.get(i))
    }
}

impl LinkKey for AkGroupPk {
    type Sql = uuid::Uuid;
    const TABLE: &'static str = "group_links";
    const COLUMN: &'static str = "ak_group_pk";
    const SQL_TYPE: &'static str = "uuid";
    fn sql(self) -> uuid::Uuid {
        self.0
    }
    fn from_row(row: &Row, i: usize) -> Self {
        AkGroupPk(row.get(i))
    }
}

impl Store {
    /// The link of an authentik user or group.
    pub async fn link<K: LinkKey>(
        &self,
        provider: &str,
        key: K,
    ) -> Result<Option<Link<K>>, StoreError> {
        let conn = self.conn().await?;
        let sql = format!(
            "SELECT {LINK_COLUMNS} FROM {} WHERE provider = $1 AND {} = $2",
            K::TABLE,
            K::COLUMN
        );
        let row = conn
            .query_opt(&sql, &[&provider, &key.sql()])
            .await
            .map_err(query_error("reading a link"))?;
        row.map(|r| link_of(key, &r)).transpose()
    }

    /// Creates or replaces the link of an authentik user or group.
    pub async fn save_link<K: LinkKey>(&self, provider: &str, link: &Link<K>) -> SaveResult {
        let result = self
            .write_link(
                provider,
                link,
                "DO UPDATE SET entra_id = EXCLUDED.entra_id,
                 attributes = EXCLUDED.attributes, origin = EXCLUDED.origin, state = EXCLUDED.state,
                 updated_at = now()",
            )
            .await?;
        match result {
            Ok(_) => Ok(Ok(())),
            Err(e) => taken(e, provider, &link.entra_id, "saving a link"),
        }
    }

    /// Links an authentik user or group only if it has no link yet: an
    /// existing link, even one made a moment ago, is never overwritten.
    pub async fn insert_link<K: LinkKey>(
        &self,
        provider: &str,
        link: &Link<K>,
    ) -> Result<NewLink, StoreError> {
        match self.write_link(provider, link, "DO NOTHING").await? {
            Ok(1) => Ok(NewLink::Inserted),
            Ok(_) => Ok(NewLink::AlreadyLinked),
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Ok(NewLink::Taken(EntraIdTaken {
                    provider: provider.to_owned(),
                    entra_id: link.entra_id.clone(),
                }))
            }
            Err(e) => Err(query_error("inserting a link")(e)),
        }
    }

    /// Inserts `link`; `on_conflict` says what to do when the authentik object
    /// already has one. Returns the rows written, or the query's error for the
    /// caller to read (a taken Entra id is a unique violation).
    async fn write_link<K: LinkKey>(
        &self,
        provider: &str,
        link: &Link<K>,
        on_conflict: &str,
    ) -> Result<Result<u64, tokio_postgres::Error>, StoreError> {
        let conn = self.conn().await?;
        let sql = format!(
            "INSERT INTO {table} (provider, {column}, entra_id, attributes, origin, state)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (provider, {column}) {on_conflict}",
            table = K::TABLE,
            column = K::COLUMN
        );
        Ok(conn
            .execute(
                &sql,
                &[
                    &provider,
                    &link.ak_id.sql(),
                    &link.entra_id.as_str(),
                    &serde_json::Value::Object(link.attributes.clone()),
                    &link.origin.as_str(),
                    &state_name(link.state),
                ],
            )
            .await)
    }

    /// Records what a PATCH of a linked object wrote: the attributes last
    /// written and the state; the Entra id and origin stay. False if the
    /// authentik object is no longer linked to `entra_id`.
    pub async fn save_link_attributes<K: LinkKey>(
        &self,
        provider: &str,
        key: K,
        entra_id: &EntraObjectId,
        attributes: &Body,
        state: LinkState,
    ) -> Result<bool, StoreError> {
        let conn = self.conn().await?;
        let sql = format!(
            "UPDATE {} SET attributes = $4, state = $5, updated_at = now()
             WHERE provider = $1 AND {} = $2 AND entra_id = $3",
            K::TABLE,
            K::COLUMN
        );
        let updated = conn
            .execute(
                &sql,
                &[
                    &provider,
                    &key.sql(),
                    &entra_id.as_str(),
                    &serde_json::Value::Object(attributes.clone()),
                    &state_name(state),
                ],
            )
            .await
            .map_err(query_error("saving a link's attributes"))?;
        Ok(updated == 1)
    }

    /// Removes the link of an authentik user or group (its memberships go with it).
    pub async fn delete_link<K: LinkKey>(&self, provider: &str, key: K) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        let sql = format!(
            "DELETE FROM {} WHERE provider = $1 AND {} = $2",
            K::TABLE,
            K::COLUMN
        );
        conn.execute(&sql, &[&provider, &key.sql()])
            .await
            .map_err(query_error("deleting a link"))?;
        Ok(())
    }

    /// The authentik ids of every linked user or group of a provider.
    pub async fn linked<K: LinkKey>(&self, provider: &str) -> Result<Vec<K>, StoreError> {
        self.list_links::<K, _>(provider, K::COLUMN, |r| Ok(K::from_row(r, 0)))
            .await
    }

    /// How many links of this kind a provider has.
    pub async fn link_count<K: LinkKey>(&self, provider: &str) -> Result<i64, StoreError> {
        let conn = self.conn().await?;
        let sql = format!("SELECT count(*) FROM {} WHERE provider = $1", K::TABLE);
        let row = conn
            .query_one(&sql, &[&provider])
            .await
            .map_err(query_error("counting links"))?;
        Ok(row.get(0))
    }

    /// `columns` of every link of one kind of a provider, in authentik id
    /// order, each row turned into a `T` as it streams in.
    pub(crate) async fn list_links<K: LinkKey, T>(
        &self,
        provider: &str,
        columns: &str,
        of_row: impl Fn(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let sql = format!(
            "SELECT {columns} FROM {} WHERE provider = $1 ORDER BY {}",
            K::TABLE,
            K::COLUMN
        );
        self.rows_as(&sql, &[&provider], "listing links", of_row)
            .await
    }

    /// The members of a group we last wrote to Entra.
    pub async fn written_members(
        &self,
        provider: &str,
        group: AkGroupPk,
    ) -> Result<Vec<AkUserPk>, StoreError> {
        self.written(provider, group, "reading memberships").await
    }

    /// The groups a user was last written into.
    pub async fn written_groups_of(
        &self,
        provider: &str,
        user: AkUserPk,
    ) -> Result<Vec<AkGroupPk>, StoreError> {
        self.written(provider, user, "reading a user's memberships")
            .await
    }

    /// The other side of the memberships last written with `one` on one
    /// side: a group's members, or a user's groups, in order.
    async fn written<One: LinkKey, Other: LinkKey>(
        &self,
        provider: &str,
        one: One,
        doing: &'static str,
    ) -> Result<Vec<Other>, StoreError> {
        let sql = format!(
            "SELECT {other} FROM membership_links WHERE provider = $1 AND {one} = $2 ORDER BY {other}",
            other = Other::COLUMN,
            one = One::COLUMN
        );
        self.rows_as(&sql, &[&provider, &one.sql()], doing, |r| {
            Ok(Other::from_row(r, 0))
        })
        .await
    }

    /// Records members as written to Entra.
    pub async fn add_written_members(
        &self,
        provider: &str,
        group: AkGroupPk,
        users: &[AkUserPk],
    ) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        insert_written_members(&conn, provider, group, users).await
    }

    /// Records members as removed from Entra.
    pub async fn remove_written_members(
        &self,
        provider: &str,
        group: AkGroupPk,
        users: &[AkUserPk],
    ) -> Result<(), StoreError> {
        let pks: Vec<i64> = users.iter().map(|u| u.0).collect();
        let conn = self.conn().await?;
        conn.execute(
            "DELETE FROM membership_links WHERE provider = $1 AND ak_group_pk = $2 AND ak_user_pk = ANY($3)",
            &[&provider, &group.0, &pks],
        )
        .await
        .map_err(query_error("removing memberships"))?;
        Ok(())
    }
}

/// Records `users` as members of `group` written to Entra, on `client` (a
/// connection, or a transaction that checks the group's link first).
pub(crate) async fn insert_written_members(
    client: &impl GenericClient,
    provider: &str,
    group: AkGroupPk,
    users: &[AkUserPk],
) -> Result<(), StoreError> {
    let pks: Vec<i64> = users.iter().map(|u| u.0).collect();
    client
        .execute(
            "INSERT INTO membership_links (provider, ak_group_pk, ak_user_pk)
             SELECT $1, $2, unnest($3::bigint[]) ON CONFLICT DO NOTHING",
            &[&provider, &group.0, &pks],
        )
        .await
        .map_err(query_error("recording memberships"))?;
    Ok(())
}
