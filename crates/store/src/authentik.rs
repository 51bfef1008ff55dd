//! What the producer learnt about authentik (its release, the filters it
//! ignores), for `status`; and the silent scan's hash of each user's state.

use crate::{Store, StoreError, query_error};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// authentik as the producer last saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthentikServer {
    /// What authentik reported (`version_current`); `None` if it could not be read.
    pub version: Option<String>,
    /// The release whose behaviour entra-sync uses.
    pub behaves_as: String,
    /// Why that differs from the version, if it does.
    pub warning: Option<String>,
    /// The filters authentik was seen to ignore, with their fallbacks (JSON).
    pub ignored_filters: serde_json::Value,
    /// When it was checked.
    pub checked_at: DateTime<Utc>,
}

impl Store {
    /// Records what the producer learnt about authentik.
    pub async fn save_authentik_server(
        &self,
        version: Option<&str>,
        behaves_as: &str,
        warning: Option<&str>,
        ignored_filters: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO authentik_server (singleton, version, behaves_as, warning, ignored_filters, checked_at)
                 VALUES (true, $1, $2, $3, $4, now())
                 ON CONFLICT (singleton) DO UPDATE
                 SET version = EXCLUDED.version, behaves_as = EXCLUDED.behaves_as,
                     warning = EXCLUDED.warning, ignored_filters = EXCLUDED.ignored_filters,
                     checked_at = now()",
                &[&version, &behaves_as, &warning, ignored_filters],
            )
            .await
            .map_err(query_error("saving authentik's release"))?;
        Ok(())
    }

    /// What the producer last learnt about authentik, if anything.
    pub async fn authentik_server(&self) -> Result<Option<AuthentikServer>, StoreError> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT version, behaves_as, warning, ignored_filters, checked_at FROM authentik_server",
                &[],
            )
            .await
            .map_err(query_error("loading authentik's release"))?;
        Ok(row.map(|r| AuthentikServer {
            version: r.get(0),
            behaves_as: r.get(1),
            warning: r.get(2),
            ignored_filters: r.get(3),
            checked_at: r.get(4),
        }))
    }

    /// The silent scan's hashes, by user pk.
    pub async fn silent_scan_hashes(&self) -> Result<HashMap<i64, Vec<u8>>, StoreError> {
        let rows = self
            .conn()
            .await?
            .query("SELECT user_pk, state_hash FROM silent_scan_users", &[])
            .await
            .map_err(query_error("loading the silent scan's hashes"))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Stores `changed` hashes and forgets the `gone` users, in one transaction.
    pub async fn save_silent_scan_hashes(
        &self,
        changed: &[(i64, Vec<u8>)],
        gone: &[i64],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn
            .transaction()
            .await
            .map_err(query_error("saving the silent scan's hashes"))?;
        for chunk in changed.chunks(1000) {
            let pks: Vec<i64> = chunk.iter().map(|(pk, _)| *pk).collect();
            let hashes: Vec<&[u8]> = chunk.iter().map(|(_, h)| h.as_slice()).collect();
            tx.execute(
                "INSERT INTO silent_scan_users (user_pk, state_hash)
                 SELECT * FROM unnest($1::bigint[], $2::bytea[])
                 ON CONFLICT (user_pk) DO UPDATE SET state_hash = EXCLUDED.state_hash",
                &[&pks, &hashes],
            )
            .await
            .map_err(query_error("saving the silent scan's hashes"))?;
        }
        if !gone.is_empty() {
            tx.execute(
                "DELETE FROM silent_scan_users WHERE user_pk = ANY($1)",
                &[&gone],
            )
            .await
            .map_err(query_error("forgetting the silent scan's hashes"))?;
        }
        tx.commit()
            .await
            .map_err(query_error("saving the silent scan's hashes"))?;
        Ok(())
    }
}
