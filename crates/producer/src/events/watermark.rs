//! [`WatermarkFollower`]: follows users' `last_updated` (authentik 2025.8+).
//!
//! It reads `GET /core/users/?last_updated__gt=…&ordering=last_updated` to
//! catch user edits that made no event (LDAP imports). Silent membership
//! changes do not bump `last_updated`: full syncs catch those. Like the feed,
//! it keeps invariant 3 of DESIGN.md: the cursor moves only after the hand-off,
//! and a backlog too large to hand off asks for a full sync.
//!
//! It runs only while the client uses [`Feature::LastUpdated`]: on older
//! releases, or once authentik was seen to ignore the filter (every user
//! comes back), it does nothing and the silent scan takes over. The cursor
//! starts at authentik's clock and moves on authentik's timestamps.

use super::cursor::{Batch, commit, earliest, hand_off};
use super::{
    ChangeSink, ChangeSource, FollowError, Follower, FollowerConfig, FullSyncReason, Handoff,
    ObjectChange, PollOutcome,
};
use chrono::{DateTime, Utc};
use entra_sync_authentik::{AuthentikClient, AuthentikError, Feature, Filter, UserQuery};
use entra_sync_store::Store;
use entra_sync_store::cursor::SourceCursor;
use std::collections::HashSet;

/// Follows users' `last_updated` (authentik 2025.8+).
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

    /// authentik's clock now: the later of its `Date` (to the second) and
    /// just after the newest `last_updated`.
    async fn authentik_now(&self) -> Result<Option<DateTime<Utc>>, AuthentikError> {
        let date = self.client.server_time().await?;
        let q = UserQuery {
            ordering: Some("-last_updated".into()),
            ..UserQuery::default()
        };
        let page = self.client.users_page(&q, 1).await?;
        let newest = page.results.first().and_then(|u| u.last_updated);
        Ok(date.max(newest.map(|t| t + chrono::Duration::microseconds(1))))
    }
}

impl Follower for WatermarkFollower {
    async fn poll_once<S: ChangeSink>(&self, sink: &mut S) -> Result<PollOutcome, FollowError> {
        if !self.client.uses(Feature::LastUpdated) {
            return Ok(PollOutcome::default());
        }
        let Some(cursor) = self.store.load_cursor(&self.config.cursor_name).await? else {
            // Start from authentik's now, without the settle window: whatever
            // changed before is the first full sync's, which the events
            // follower requests when it starts without a cursor and which
            // lists users after this instant.
            let Some(now) = self.authentik_now().await? else {
                return Ok(PollOutcome::default());
            };
            self.store
                .save_cursor(&self.config.cursor_name, &SourceCursor::at(now))
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
        let mut server_time = None;
        loop {
            let p = self.client.users_updated_after(after, page).await?;
            server_time = earliest(server_time, p.server_time);
            for u in &p.results {
                // No `last_updated`, or one not after the filter's: the
                // filter was ignored (authentik before 2025.8 returns every
                // user). Said once; the silent scan takes over.
                if u.last_updated.is_none_or(|at| at <= after) {
                    self.client.note_ignored(Filter::UsersLastUpdatedGt);
                    return Ok(PollOutcome::default());
                }
                let Some(at) = u.last_updated else { continue };
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
            server_time,
        };
        commit(&self.store, &self.config, sink, batch, &cursor, &seen_now).await
    }
}
