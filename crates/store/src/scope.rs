//! The provider's scope as last resolved in authentik, shared by the producer
//! and every worker, so no process keeps a filter-group resolution older than
//! the last run or the last group event (DESIGN invariant 7).

use crate::{Store, StoreError, query_error};
use chrono::{DateTime, Utc};
use entra_sync_core::ids::AkGroupPk;

/// The filter group as last resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFilterGroup {
    /// The configured name.
    pub name: String,
    /// Its pk then, or `None` if authentik had no group of that name.
    pub pk: Option<AkGroupPk>,
    /// When it was resolved.
    pub resolved_at: DateTime<Utc>,
}

impl Store {
    /// Stores the resolution of filter group `name` (`None`: no such group).
    pub async fn save_filter_group(
        &self,
        provider: &str,
        name: &str,
        pk: Option<AkGroupPk>,
    ) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "INSERT INTO provider_scopes (provider, filter_group_name, filter_group_pk, resolved_at)
             VALUES ($1, $2, $3, now())
             ON CONFLICT (provider) DO UPDATE SET filter_group_name = EXCLUDED.filter_group_name,
                 filter_group_pk = EXCLUDED.filter_group_pk, resolved_at = now()",
            &[&provider, &name, &pk.map(|p| p.0)],
        )
        .await
        .map_err(query_error("saving a provider's filter group"))?;
        Ok(())
    }

    /// The last resolution of `provider`'s filter group named `name`; `None`
    /// if it was never resolved under that name.
    pub async fn filter_group(
        &self,
        provider: &str,
        name: &str,
    ) -> Result<Option<StoredFilterGroup>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT filter_group_pk, resolved_at FROM provider_scopes
                 WHERE provider = $1 AND filter_group_name = $2",
                &[&provider, &name],
            )
            .await
            .map_err(query_error("reading a provider's filter group"))?;
        Ok(row.map(|r| StoredFilterGroup {
            name: name.to_owned(),
            pk: r.get::<_, Option<uuid::Uuid>>(0).map(AkGroupPk),
            resolved_at: r.get(1),
        }))
    }
}
