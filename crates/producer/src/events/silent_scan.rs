//! [`SilentScan`]: finds users changed without an event where the watermark
//! cannot (authentik before 2025.8 has no `last_updated`).
//!
//! Every `silent_scan_interval` it lists the users, hashes each one's state
//! as authentik sends it, and compares with the hash of the last scan (kept
//! in PostgreSQL). Only users whose hash differs, and users gone since, are
//! handed off; an unchanged directory hands off nothing. The first scan only
//! records the hashes: the first full sync covers what came before. A
//! cursor (`SILENT_SCAN_CURSOR`, at authentik's clock) marks that a scan ran.
//!
//! A user's mapped state is a function of what authentik sends, so an
//! unchanged hash means an unchanged mapped state; a changed hash may still
//! map to the same body, and then the worker writes nothing.

use super::cursor::hand_off;
use super::{
    ChangeSink, ChangeSource, FollowError, Follower, FullSyncReason, Handoff, ObjectChange,
    PollOutcome, SILENT_SCAN_CURSOR,
};
use chrono::DateTime;
use entra_sync_authentik::{AuthentikClient, Feature, UserQuery};
use entra_sync_core::authentik::AkUser;
use entra_sync_core::ids::AkUserPk;
use entra_sync_store::Store;
use entra_sync_store::cursor::SourceCursor;
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use std::collections::HashSet;

/// Scans authentik's users for silent changes.
#[derive(Debug, Clone)]
pub struct SilentScan {
    client: AuthentikClient,
    store: Store,
    max_backlog: usize,
}

impl SilentScan {
    /// A scan of `client`'s users with its hashes in `store`; more than
    /// `max_backlog` changed users ask for a full sync instead.
    pub fn new(client: AuthentikClient, store: Store, max_backlog: usize) -> Self {
        Self {
            client,
            store,
            max_backlog,
        }
    }
}

/// The hash of a user's state as authentik sent it.
fn state_hash(user: &AkUser) -> Vec<u8> {
    let bytes = serde_json::to_vec(user).unwrap_or_default();
    Sha256::digest(bytes).to_vec()
}

impl Follower for SilentScan {
    async fn poll_once<S: ChangeSink>(&self, sink: &mut S) -> Result<PollOutcome, FollowError> {
        if self.client.uses(Feature::LastUpdated) {
            // The watermark sees these changes within seconds.
            return Ok(PollOutcome::default());
        }
        let baseline = self.store.load_cursor(SILENT_SCAN_CURSOR).await?.is_none();
        let started = self.client.server_time().await?;
        let known = self.store.silent_scan_hashes().await?;
        let mut seen = HashSet::with_capacity(known.len());
        let mut changed = Vec::new();
        let mut users = std::pin::pin!(self.client.users(&UserQuery::default()));
        while let Some(page) = users.try_next().await? {
            for user in page {
                let hash = state_hash(&user);
                seen.insert(user.pk.0);
                if known.get(&user.pk.0) != Some(&hash) {
                    changed.push((user.pk.0, hash));
                }
            }
        }
        let gone: Vec<i64> = known
            .keys()
            .filter(|pk| !seen.contains(pk))
            .copied()
            .collect();
        let mut outcome = PollOutcome {
            new_items: changed.len() + gone.len(),
            ..PollOutcome::default()
        };
        if !baseline {
            let changes: Vec<ObjectChange> = changed
                .iter()
                .map(|(pk, _)| *pk)
                .chain(gone.iter().copied())
                .map(|pk| ObjectChange::User(AkUserPk(pk)))
                .collect();
            if changes.len() > self.max_backlog {
                let reason = FullSyncReason::BacklogTooLarge {
                    events: changes.len(),
                };
                hand_off(sink, Handoff::FullSyncNeeded(reason.clone())).await?;
                outcome.full_sync = Some(reason);
            } else if !changes.is_empty() {
                outcome.changes = changes.len();
                let handoff = Handoff::Changes {
                    source: ChangeSource::SilentScan,
                    changes,
                };
                hand_off(sink, handoff).await?;
            }
        }
        self.store.save_silent_scan_hashes(&changed, &gone).await?;
        let at = started.unwrap_or(DateTime::UNIX_EPOCH);
        self.store
            .save_cursor(SILENT_SCAN_CURSOR, &SourceCursor::at(at))
            .await?;
        Ok(outcome)
    }
}
