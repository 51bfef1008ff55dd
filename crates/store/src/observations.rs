//! What full syncs observed of linked objects in Entra (`migrations/V4`),
//! and the one rule for using it: an observation counts only while it is
//! newer than the link's last write.

use crate::links::{LINK_COLUMNS, Link, LinkKey, link_of};
use crate::{Store, StoreError, query_error};
use entra_sync_core::diff::Body;
use entra_sync_core::drift::Observed;
use std::collections::BTreeMap;
use std::time::SystemTime;
use tokio_postgres::Row;

impl Store {
    /// The database's clock: when a listing begins, for its observations.
    pub async fn clock(&self) -> Result<SystemTime, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_one("SELECT now()", &[])
            .await
            .map_err(query_error("reading the clock"))?;
        Ok(row.get(0))
    }

    /// Records what a listing that began at `at` observed of these linked
    /// objects, in one statement.
    pub async fn observe<K: LinkKey>(
        &self,
        provider: &str,
        at: SystemTime,
        observed: &[(K, Observed)],
    ) -> Result<(), StoreError> {
        if observed.is_empty() {
            return Ok(());
        }
        let keys: Vec<K::Sql> = observed.iter().map(|(k, _)| k.sql()).collect();
        let bodies: Vec<Option<serde_json::Value>> = observed
            .iter()
            .map(|(_, o)| match o {
                Observed::Listed(body) => Some(serde_json::Value::Object(body.clone())),
                Observed::Missing => None,
            })
            .collect();
        let sql = format!(
            "UPDATE {t} SET observed = o.body, observed_at = $2
             FROM unnest($3::{ty}[], $4::jsonb[]) AS o(key, body)
             WHERE {t}.provider = $1 AND {t}.{c} = o.key",
            t = K::TABLE,
            c = K::COLUMN,
            ty = K::SQL_TYPE,
        );
        let conn = self.conn().await?;
        conn.execute(&sql, &[&provider, &at, &keys, &bodies])
            .await
            .map_err(query_error("recording observations"))?;
        Ok(())
    }

    /// What the last full sync observed of the linked object, if it observed
    /// it after the link's last write; otherwise the last write stands.
    pub async fn observation<K: LinkKey + Ord>(
        &self,
        provider: &str,
        key: K,
    ) -> Result<Option<Observed>, StoreError> {
        Ok(self
            .link_observed(provider, key)
            .await?
            .and_then(|(_, observed)| observed))
    }

    /// The link of an authentik user or group ([`Store::link`]) with what the
    /// last full sync observed of it if that is newer than the link's last
    /// write ([`Store::observation`]), in one read.
    pub async fn link_observed<K: LinkKey + Ord>(
        &self,
        provider: &str,
        key: K,
    ) -> Result<Option<LinkObserved<K>>, StoreError> {
        Ok(self.links_observed(provider, &[key]).await?.remove(&key))
    }

    /// The links of those of `keys` that are linked, each with what the last
    /// full sync observed of it if that is newer than its last write, in one
    /// query: a full sync compares a chunk of objects at a time, never
    /// holding every link.
    pub async fn links_observed<K: LinkKey + Ord>(
        &self,
        provider: &str,
        keys: &[K],
    ) -> Result<BTreeMap<K, LinkObserved<K>>, StoreError> {
        let sql: Vec<K::Sql> = keys.iter().map(|k| k.sql()).collect();
        let query = format!(
            "SELECT {LINK_COLUMNS}, observed, observed_at > updated_at, {c} FROM {t}
             WHERE provider = $1 AND {c} = ANY($2)",
            t = K::TABLE,
            c = K::COLUMN,
        );
        let found = self
            .rows_as(
                &query,
                &[&provider, &sql],
                "reading links and their observations",
                |r| {
                    let key = K::from_row(r, 6);
                    Ok((key, link_observed_of(key, r)?))
                },
            )
            .await?;
        Ok(found.into_iter().collect())
    }
}

/// A link with what the last full sync observed of it, if that is newer than
/// the link's last write.
pub type LinkObserved<K> = (Link<K>, Option<Observed>);

/// The link of `key` and its observation, from a row of [`LINK_COLUMNS`], the
/// observation and whether it is newer than the last write.
fn link_observed_of<K>(key: K, row: &Row) -> Result<LinkObserved<K>, StoreError> {
    let newer = row.get::<_, Option<bool>>(5).unwrap_or(false);
    Ok((link_of(key, row)?, newer.then(|| observed(row, 4))))
}

/// The observation in column `i`: a listed body, or missing from the listing.
fn observed(row: &Row, i: usize) -> Observed {
    match row.get::<_, Option<serde_json::Value>>(i) {
        Some(serde_json::Value::Object(body)) => Observed::Listed(body),
        Some(_) => Observed::Listed(Body::new()),
        None => Observed::Missing,
    }
}
