//! [`EventFollower`]: follows authentik's events feed.
//!
//! authentik's `GET /api/v3/events/events/` has no timestamp filter (2026.8
//! schema: `action`, `actions`, `context_model_*`, `ordering`, `page`, …). So
//! the follower reads the model events of `authentik_core` newest first
//! (`ordering=-created,pk`), page by page, until it reaches an event older
//! than its cursor, hands the changes off, and only then saves the cursor.
//!
//! Events expire in authentik. If the feed ends before reaching the cursor
//! and events created after the cursor would have expired by now, some may be
//! gone: the follower hands off [`Handoff::FullSyncNeeded`] and moves on from
//! the newest event. The same happens on the first run (no cursor) and when
//! the backlog exceeds `max_backlog`. This keeps invariant 3 of DESIGN.md: a
//! change the feed may have lost is caught by a full sync, never dropped.

use super::cursor::{Batch, commit, hand_off};
use super::{
    ChangeSink, ChangeSource, FollowError, Follower, FollowerConfig, FullSyncReason, Handoff,
    ObjectChange, PollOutcome,
};
use chrono::{DateTime, Utc};
use entra_sync_authentik::{AkEvent, AuthentikClient};
use entra_sync_store::Store;
use entra_sync_store::cursor::SourceCursor;
use std::collections::HashSet;

/// Follows the events feed.
#[derive(Debug, Clone)]
pub struct EventFollower {
    client: AuthentikClient,
    store: Store,
    config: FollowerConfig,
}

impl EventFollower {
    /// A follower of `client`'s events with its cursor in `store`.
    pub fn new(client: AuthentikClient, store: Store, config: FollowerConfig) -> Self {
        Self {
            client,
            store,
            config,
        }
    }

    /// Hands off a full sync and restarts the cursor at the newest event.
    async fn restart<S: ChangeSink>(
        &self,
        sink: &mut S,
        reason: FullSyncReason,
        newest: &[(DateTime<Utc>, String)],
        new_items: usize,
    ) -> Result<PollOutcome, FollowError> {
        tracing::warn!(cursor = %self.config.cursor_name, ?reason, "authentik events feed: full sync needed");
        hand_off(sink, Handoff::FullSyncNeeded(reason.clone())).await?;
        let top = newest
            .iter()
            .map(|(t, _)| *t)
            .max()
            .unwrap_or_else(Utc::now);
        let cursor = SourceCursor {
            position: top,
            seen_ids: newest
                .iter()
                .filter(|(t, _)| *t == top)
                .map(|(_, id)| id.clone())
                .collect(),
        };
        self.store
            .save_cursor(&self.config.cursor_name, &cursor)
            .await?;
        Ok(PollOutcome {
            new_items,
            changes: 0,
            full_sync: Some(reason),
        })
    }
}

impl Follower for EventFollower {
    async fn poll_once<S: ChangeSink>(&self, sink: &mut S) -> Result<PollOutcome, FollowError> {
        let Some(cursor) = self.store.load_cursor(&self.config.cursor_name).await? else {
            let head = self.client.model_events_page(1).await?;
            let newest: Vec<_> = head
                .results
                .iter()
                .map(|e| (e.created, e.pk.to_string()))
                .collect();
            return self
                .restart(sink, FullSyncReason::NoCursor, &newest, 0)
                .await;
        };
        // Every event at or after the cursor, newest first.
        let mut seen_now: Vec<(DateTime<Utc>, String)> = Vec::new();
        let mut fresh: Vec<AkEvent> = Vec::new();
        let mut fresh_ids = HashSet::new();
        let mut touched_floor = false;
        let mut oldest: Option<DateTime<Utc>> = None;
        let mut retention: Option<chrono::Duration> = None;
        let mut retention_known = true;
        let mut page = 1;
        'pages: loop {
            let p = self.client.model_events_page(page).await?;
            for e in p.results {
                oldest = Some(oldest.map_or(e.created, |o| o.min(e.created)));
                match e.expires {
                    Some(x) => {
                        let r = x - e.created;
                        retention = Some(retention.map_or(r, |old| old.min(r)));
                    }
                    None => retention_known = false,
                }
                if e.created < cursor.position {
                    touched_floor = true;
                    break 'pages;
                }
                if e.created == cursor.position {
                    touched_floor = true;
                }
                let id = e.pk.to_string();
                seen_now.push((e.created, id.clone()));
                if !cursor.is_handled(e.created, &id) && fresh_ids.insert(e.pk) {
                    fresh.push(e);
                }
                if fresh.len() > self.config.max_backlog {
                    let n = fresh.len();
                    return self
                        .restart(
                            sink,
                            FullSyncReason::BacklogTooLarge { events: n },
                            &seen_now,
                            n,
                        )
                        .await;
                }
            }
            match p.next {
                Some(n) => page = n,
                None => break,
            }
        }
        if !touched_floor && let Some(oldest_available) = oldest {
            let expired_possible =
                !retention_known || retention.is_none_or(|r| cursor.position + r <= Utc::now());
            if expired_possible {
                let n = fresh.len();
                let reason = FullSyncReason::RetentionGap {
                    cursor: cursor.position,
                    oldest_available,
                };
                return self.restart(sink, reason, &seen_now, n).await;
            }
        }
        fresh.sort_by(|a, b| a.created.cmp(&b.created).then(a.pk.cmp(&b.pk)));
        let lag = fresh
            .first()
            .map(|e| (Utc::now() - e.created).as_seconds_f64());
        entra_sync_telemetry::series().events_feed_lag(lag.unwrap_or(0.0));
        let mut set = HashSet::new();
        let changes: Vec<ObjectChange> = fresh
            .iter()
            .filter_map(ObjectChange::from_event)
            .filter(|c| set.insert(*c))
            .collect();
        let batch = Batch {
            source: ChangeSource::Events,
            new_items: fresh.len(),
            changes,
        };
        commit(&self.store, &self.config, sink, batch, &cursor, &seen_now).await
    }
}
