//! [`WatermarkFollower`]: follows users' `last_updated` (authentik 2026.8+).
//!
//! It reads `GET /core/users/?last_updated__gt=…&ordering=last_updated` to
//! catch user edits that made no event (LDAP imports). Silent membership
//! changes do not bump `last_updated`: full syncs catch those. Like the feed,
//! it keeps invariant 3 of DESIGN.md: the cursor moves only after the hand-off,
//! and a backlog too large to hand off asks for a full sync.

use super::cursor::{Batch, commit, hand_off};
use super::{
    ChangeSink, ChangeSource, FollowError, Follower, FollowerConfig, FullSyncReason, Handoff,
    ObjectChange, PollOutcome,
};
use chrono::Utc;
use entra_sync_authentik::AuthentikClient;
use entra_sync_store::Store;
use entra_sync_store::cursor::SourceCursor;
use std::collections::HashSet;

/// Follows users' `last_updated` (authentik 2026.8+).
#[derive(Debug, Clone)]
pub struct WatermarkFollower {
    client: AuthentikClient,
    store: Store,
    config: FollowerConfig,
}

impl WatermarkFollower {
    /// A follower of `client`'s users with its cursor in `store`.
    pub fn new(client: AuthentikClient, store: Store, config: FollowerConfig) -> Self {
        Self {
            client,
            store,
            config,
        }
    }
}

impl Follower for WatermarkFollower {
    async fn poll_once<S: ChangeSink>(&self, sink: &mut S) -> Result<PollOutcome, FollowError> {
        let Some(cursor) = self.store.load_cursor(&self.config.cursor_name).await? else {
            // Start from now, without the settle window: whatever changed
            // before is the first full sync's, which the events follower
            // requests when it starts without a cursor and which lists users
            // after this instant. (Going back by the window would also send
            // every user edited just before the first start as a direct task.)
            self.store
                .save_cursor(&self.config.cursor_name, &SourceCursor::at(Utc::now()))
                .await?;
            return Ok(PollOutcome::default());
        };
        let tick = chrono::Duration::microseconds(1);
        // `last_updated__gt` is strict: ask from one microsecond before the cursor.
        let mut after = cursor.position - tick;
        let mut page = 1;
        let mut seen_now = Vec::new();
        let mut fresh = Vec::new();
        let mut fresh_ids = HashSet::new();
        loop {
            let p = self.client.users_updated_after(after, page).await?;
            for u in &p.results {
                let Some(at) = u.last_updated else {
                    return Err(FollowError::Unsupported(
                        "authentik's users carry no last_updated (needs authentik 2026.8 or later): disable the watermark".into(),
                    ));
                };
                if at <= after {
                    return Err(FollowError::Unsupported(
                        "authentik ignored the last_updated__gt filter (needs authentik 2026.8 or later): disable the watermark".into(),
                    ));
                }
                let id = format!("{}@{}", u.pk, at.timestamp_micros());
                seen_now.push((at, id.clone()));
                if !cursor.is_handled(at, &id) && fresh_ids.insert(u.pk) {
                    fresh.push(u.pk);
                }
            }
            if fresh.len() > self.config.max_backlog {
                let reason = FullSyncReason::BacklogTooLarge {
                    events: fresh.len(),
                };
                hand_off(sink, Handoff::FullSyncNeeded(reason.clone())).await?;
                let top = seen_now
                    .iter()
                    .map(|(t, _)| *t)
                    .max()
                    .unwrap_or(cursor.position);
                self.store
                    .save_cursor(&self.config.cursor_name, &SourceCursor::at(top))
                    .await?;
                return Ok(PollOutcome {
                    new_items: fresh.len(),
                    changes: 0,
                    full_sync: Some(reason),
                });
            }
            let Some(next) = p.next else { break };
            // Keyset paging: users edited meanwhile move to the end of the
            // ordering, so restart from the last instant read rather than
            // trusting page offsets (unless the whole page shares one instant).
            match p.results.last().and_then(|u| u.last_updated) {
                Some(last) if last - tick > after => {
                    after = last - tick;
                    page = 1;
                }
                _ => page = next,
            }
        }
        let changes: Vec<ObjectChange> = fresh.iter().map(|pk| ObjectChange::User(*pk)).collect();
        let batch = Batch {
            source: ChangeSource::Watermark,
            new_items: fresh.len(),
            changes,
        };
        commit(&self.store, &self.config, sink, batch, &cursor, &seen_now).await
    }
}
