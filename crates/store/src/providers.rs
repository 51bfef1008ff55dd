//! Providers, their settings hash, and halts.

use crate::{Store, StoreError, query_error};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Whether a provider's settings are new to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsChange {
    /// First time this provider is seen.
    New,
    /// Its settings hash differs from the stored one.
    Changed,
    /// Same settings as before.
    Unchanged,
}

/// Why a provider halted, which decides how the halt is cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaltKind {
    /// A mapping, credential, permission or setting is wrong: the operator
    /// fixes it and runs `resume`.
    Configuration,
    /// The deletion guard held deletions back: `resume --allow-deletions`
    /// lets them through, plain `resume` keeps the guard.
    DeletionGuard,
    /// The filter group does not exist: the halt clears itself once a group of
    /// that name exists again.
    FilterGroupMissing,
}

impl HaltKind {
    /// The name stored in `provider_halts.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Configuration => "configuration",
            Self::DeletionGuard => "deletion_guard",
            Self::FilterGroupMissing => "filter_group_missing",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "configuration" => Ok(Self::Configuration),
            "deletion_guard" => Ok(Self::DeletionGuard),
            "filter_group_missing" => Ok(Self::FilterGroupMissing),
            other => Err(StoreError::Corrupt(format!("unknown halt kind {other:?}"))),
        }
    }
}

/// Why and when a provider was halted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Halt {
    /// The reason, naming the mapping or setting at fault.
    pub reason: String,
    /// What kind of halt it is.
    pub kind: HaltKind,
    /// When.
    pub halted_at: DateTime<Utc>,
}

impl Store {
    /// Records a provider's settings hash and says whether it is new or changed.
    pub async fn register_provider(
        &self,
        name: &str,
        settings_hash: &str,
    ) -> Result<SettingsChange, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_one(
                "WITH previous AS (SELECT settings_hash FROM providers WHERE name = $1)
                 INSERT INTO providers (name, settings_hash) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET settings_hash = EXCLUDED.settings_hash,
                     updated_at = CASE WHEN providers.settings_hash = EXCLUDED.settings_hash
                                       THEN providers.updated_at ELSE now() END
                 RETURNING (SELECT settings_hash FROM previous)",
                &[&name, &settings_hash],
            )
            .await
            .map_err(query_error("registering a provider"))?;
        let previous: Option<String> = row.get(0);
        Ok(match previous {
            None => SettingsChange::New,
            Some(p) if p == settings_hash => SettingsChange::Unchanged,
            Some(_) => SettingsChange::Changed,
        })
    }

    /// Halts a provider for a configuration reason; see [`Store::halt_as`].
    pub async fn halt(&self, provider: &str, reason: &str) -> Result<bool, StoreError> {
        self.halt_as(provider, HaltKind::Configuration, reason)
            .await
    }

    /// Halts a provider with a halt of `kind` and ends its running full sync as
    /// failed (`provider halted: REASON`), in one transaction. The first halt
    /// stays until it is cleared; returns whether this call halted it.
    pub async fn halt_as(
        &self,
        provider: &str,
        kind: HaltKind,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn
            .transaction()
            .await
            .map_err(query_error("halting a provider"))?;
        let n = tx
            .execute(
                "INSERT INTO provider_halts (provider, reason, kind) VALUES ($1, $2, $3)
                 ON CONFLICT (provider) DO NOTHING",
                &[&provider, &reason, &kind.as_str()],
            )
            .await
            .map_err(query_error("halting a provider"))?;
        tx.execute(FAIL_RUN_OF_HALTED, &[&provider])
            .await
            .map_err(query_error("ending a halted provider's run"))?;
        tx.commit()
            .await
            .map_err(query_error("halting a provider"))?;
        Ok(n == 1)
    }

    /// Clears a halt only if it is of `kind`; returns whether it did.
    pub async fn clear_halt_of_kind(
        &self,
        provider: &str,
        kind: HaltKind,
    ) -> Result<bool, StoreError> {
        let conn = self.conn().await?;
        let n = conn
            .execute(
                "DELETE FROM provider_halts WHERE provider = $1 AND kind = $2",
                &[&provider, &kind.as_str()],
            )
            .await
            .map_err(query_error("clearing a provider's halt"))?;
        Ok(n == 1)
    }

    /// Ends the running full sync of a halted provider as failed (`provider
    /// halted: REASON`); returns its id, or `None` if the provider is not
    /// halted or runs nothing. [`Store::halt_as`] does this itself; this catches
    /// a run started while the provider was being halted.
    pub async fn fail_run_of_halted(&self, provider: &str) -> Result<Option<Uuid>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(FAIL_RUN_OF_HALTED, &[&provider])
            .await
            .map_err(query_error("ending a halted provider's run"))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Clears a halt; returns the halt it cleared, if the provider was halted.
    pub async fn resume(&self, provider: &str) -> Result<Option<Halt>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "DELETE FROM provider_halts WHERE provider = $1 RETURNING reason, kind, halted_at",
                &[&provider],
            )
            .await
            .map_err(query_error("resuming a provider"))?;
        row.as_ref().map(halt).transpose()
    }

    /// Makes a provider known without touching a stored settings hash (for
    /// commands that need its rows before any producer has registered it).
    pub async fn ensure_provider(&self, name: &str, settings_hash: &str) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "INSERT INTO providers (name, settings_hash) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &settings_hash],
        )
        .await
        .map_err(query_error("registering a provider"))?;
        Ok(())
    }

    /// The halt of a provider, if it is halted.
    pub async fn halt_of(&self, provider: &str) -> Result<Option<Halt>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT reason, kind, halted_at FROM provider_halts WHERE provider = $1",
                &[&provider],
            )
            .await
            .map_err(query_error("reading a provider's halt"))?;
        row.as_ref().map(halt).transpose()
    }
}

/// Ends provider `$1`'s running run as failed if the provider is halted; returns its id.
const FAIL_RUN_OF_HALTED: &str = "UPDATE sync_runs r
     SET state = 'failed', error = 'provider halted: ' || h.reason, phase = 'finished', finished_at = now()
     FROM provider_halts h
     WHERE h.provider = r.provider AND r.provider = $1 AND r.state = 'running'
     RETURNING r.id";

/// A halt from a row of (reason, kind, halted_at).
fn halt(row: &tokio_postgres::Row) -> Result<Halt, StoreError> {
    Ok(Halt {
        reason: row.get(0),
        kind: HaltKind::parse(row.get(1))?,
        halted_at: row.get(2),
    })
}
