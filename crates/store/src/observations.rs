//! What full syncs observed of linked objects in Entra (`migrations/V4`),
//! and the one rule for using it: an observation counts only while it is
//! newer than the link's last write.

use crate::links::{LINK_COLUMNS, Link, LinkKey, link_of};
use crate::{Store, StoreError, query_error};
use entra_sync_core::diff::Body;
use entra_sync_core::drift::Observed;
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
    pub async fn observation<K: LinkKey>(
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
    pub async fn link_observed<K: LinkKey>(
        &self,
        provider: &str,
        key: K,
    ) -> Result<Option<(Link<K>, Option<Observed>)>, StoreError> {
        let sql = format!(
            "SELECT {LINK_COLUMNS}, observed, observed_at > updated_at FROM {t}
             WHERE provider = $1 AND {c} = $2",
            t = K::TABLE,
            c = K::COLUMN,
        );
        let conn = self.conn().await?;
        let row = conn
            .query_opt(&sql, &[&provider, &key.sql()])
            .await
            .map_err(query_error("reading a link and its observation"))?;
        row.map(|r| {
            let newer = r.get::<_, Option<bool>>(5).unwrap_or(false);
            Ok((link_of(key, &r)?, newer.then(|| observed(&r, 4))))
        })
        .transpose()
    }

    /// Every observation of a kind of link that is newer than its last
    /// write, by authentik id: what the full sync compares against.
    pub async fn observations<K: LinkKey + Ord>(
        &self,
        provider: &str,
    ) -> Result<std::collections::BTreeMap<K, Observed>, StoreError> {
        let sql = format!(
            "SELECT {c}, observed FROM {t} WHERE provider = $1 AND observed_at > updated_at",
            t = K::TABLE,
            c = K::COLUMN,
        );
        let conn = self.conn().await?;
        let rows = conn
            .query(&sql, &[&provider])
            .await
            .map_err(query_error("reading observations"))?;
        Ok(rows
            .iter()
            .map(|r| (K::from_row(r, 0), observed(r, 1)))
            .collect())
    }
}

/// The observation in column `i`: a listed body, or missing from the listing.
fn observed(row: &Row, i: usize) -> Observed {
    match row.get::<_, Option<serde_json::Value>>(i) {
        Some(serde_json::Value::Object(body)) => Observed::Listed(body),
        Some(_) => Observed::Listed(Body::new()),
        None => Observed::Missing,
    }
}
