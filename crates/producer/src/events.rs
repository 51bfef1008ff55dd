//! Follows authentik's events feed with a cursor stored in PostgreSQL, and the
//! users' `last_updated` watermark with another.
//!
//! # The events feed
//! authentik's `GET /api/v3/events/events/` has no timestamp filter (2026.8
//! schema: `action`, `actions`, `context_model_*`, `ordering`, `page`, …). So
//! [`EventFollower`] reads the model events of `authentik_core` newest first
//! (`ordering=-created,pk`), page by page, until it reaches an event older
//! than its cursor, hands the changes off, and only then saves the cursor.
//! - The cursor ([`SourceCursor`]) is the instant before which everything is
//!   handled plus the ids handled at or after it, so events sharing a
//!   timestamp across a page boundary or a restart are neither skipped nor lost.
//! - The cursor trails the clock by `settle` (default 5 s): an event whose
//!   transaction commits a moment after a later one is still picked up.
//! - Events expire in authentik. If the feed ends before reaching the cursor
//!   and events created after the cursor would have expired by now, some may
//!   be gone: the follower hands off [`Handoff::FullSyncNeeded`] and moves on
//!   from the newest event. The same happens on the first run (no cursor) and
//!   when the backlog exceeds `max_backlog_events`.
//!
//! # The watermark
//! [`WatermarkFollower`] reads `GET /core/users/?last_updated__gt=…&ordering=last_updated`
//! (authentik 2026.8+) to catch user edits that made no event (LDAP imports).
//! Silent membership changes do not bump `last_updated`: full syncs catch those.
//!
//! Both hand off plain [`ObjectChange`]s to a [`ChangeSink`]; the producer maps
//! them to tasks ([`ObjectChange::tasks`]) and publishes them. [`run`] drives
//! a follower, waking on the webhook's [`Notify`] or the poll interval.

use chrono::{DateTime, Utc};
use entra_sync_authentik::{AkEvent, AuthentikClient, AuthentikError};
use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_core::task::{ObjectRef, Task, TaskReason};
use entra_sync_store::cursor::SourceCursor;
use entra_sync_store::{Store, StoreError};
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The cursor name of the events feed.
pub const EVENTS_CURSOR: &str = "authentik:events";
/// The cursor name of the users' `last_updated` watermark.
pub const WATERMARK_CURSOR: &str = "authentik:users-last-updated";

/// One object that may have changed. Level-triggered: it says what to look
/// at, not what happened (a deleted object is found missing by the worker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectChange {
    /// A user. The user and maybe its memberships changed.
    User(AkUserPk),
    /// A group. The group and maybe its memberships changed.
    Group(AkGroupPk),
}

impl ObjectChange {
    /// The tasks to publish for this change: a user → its user task; a group →
    /// its group task and its membership task.
    pub fn tasks(&self, provider: &str, reason: TaskReason) -> Vec<Task> {
        match *self {
            Self::User(pk) => vec![Task::new(provider, ObjectRef::User(pk), reason)],
            Self::Group(pk) => vec![
                Task::new(provider, ObjectRef::Group(pk), reason),
                Task::new(provider, ObjectRef::Membership(pk), reason),
            ],
        }
    }

    /// The change an event stands for: `model_created` / `model_updated` /
    /// `model_deleted` of `authentik_core` users and groups; `None` otherwise.
    pub fn from_event(event: &AkEvent) -> Option<Self> {
        if !matches!(
            event.action.as_str(),
            "model_created" | "model_updated" | "model_deleted"
        ) {
            return None;
        }
        let model = event.model()?;
        if model.app != "authentik_core" {
            return None;
        }
        match model.model_name.as_str() {
            "user" => {
                let pk = match &model.pk {
                    serde_json::Value::Number(n) => n.as_i64()?,
                    serde_json::Value::String(s) => s.parse().ok()?,
                    _ => return None,
                };
                Some(Self::User(AkUserPk(pk)))
            }
            "group" => {
                // authentik stores UUID pks as hex without dashes.
                let uuid = uuid::Uuid::parse_str(model.pk.as_str()?).ok()?;
                Some(Self::Group(AkGroupPk(uuid)))
            }
            _ => None,
        }
    }
}

/// Where a batch of changes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeSource {
    /// The events feed.
    Events,
    /// The `last_updated` watermark.
    Watermark,
}

impl ChangeSource {
    /// The task reason to record.
    pub fn reason(self) -> TaskReason {
        match self {
            Self::Events => TaskReason::Event,
            Self::Watermark => TaskReason::Watermark,
        }
    }
}

/// Why the follower cannot vouch for having seen every change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FullSyncReason {
    /// There is no cursor yet (first run, or it was reset).
    NoCursor,
    /// The feed ends after the cursor and events after it may have expired.
    RetentionGap {
        /// The cursor's position.
        cursor: DateTime<Utc>,
        /// The oldest event still available.
        oldest_available: DateTime<Utc>,
    },
    /// More new events than the follower hands off one by one.
    BacklogTooLarge {
        /// Events counted before giving up.
        events: usize,
    },
}

/// What a follower hands off before it moves its cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handoff {
    /// These objects may have changed (deduplicated, oldest change first).
    Changes {
        /// Where they came from.
        source: ChangeSource,
        /// The objects.
        changes: Vec<ObjectChange>,
    },
    /// Changes may have been missed: run a full sync.
    FullSyncNeeded(FullSyncReason),
}

/// An error of a [`ChangeSink`]: the cursor is not moved and the batch comes again.
pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Receives hand-offs (the producer publishes tasks or schedules a full sync).
/// The cursor is saved only after `handle` returned `Ok`.
pub trait ChangeSink: Send {
    /// Takes one hand-off.
    fn handle(&mut self, handoff: Handoff) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// A failed poll; the cursor did not move.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// authentik failed; see [`AuthentikError::is_configuration`].
    #[error(transparent)]
    Authentik(#[from] AuthentikError),
    /// PostgreSQL failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sink refused the hand-off.
    #[error("handing off changes failed: {0}")]
    Sink(SinkError),
    /// authentik does not offer what the follower needs.
    #[error("{0}")]
    Unsupported(String),
}

impl FollowError {
    /// Whether retrying cannot help until someone fixes the configuration.
    pub fn is_configuration(&self) -> bool {
        match self {
            Self::Authentik(e) => e.is_configuration(),
            Self::Unsupported(_) => true,
            _ => false,
        }
    }
}

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PollOutcome {
    /// New items read (events, or updated users).
    pub new_items: usize,
    /// Distinct objects handed off.
    pub changes: usize,
    /// A full sync was requested, and why.
    pub full_sync: Option<FullSyncReason>,
}

/// Settings of a follower.
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    /// The cursor's name in `source_cursors`.
    pub cursor_name: String,
    /// How far the cursor trails the clock, for late-committing transactions.
    pub settle: Duration,
    /// Beyond this many new items a full sync is requested instead.
    pub max_backlog: usize,
}

impl FollowerConfig {
    /// Defaults: `settle` 5 s, `max_backlog` 50,000.
    pub fn new(cursor_name: &str) -> Self {
        Self {
            cursor_name: cursor_name.to_owned(),
            settle: Duration::from_secs(5),
            max_backlog: 50_000,
        }
    }
}

/// Anything [`run`] can drive.
pub trait Follower: Send + Sync {
    /// Reads what is new, hands it off, then saves the cursor.
    fn poll_once<S: ChangeSink>(
        &self,
        sink: &mut S,
    ) -> impl Future<Output = Result<PollOutcome, FollowError>> + Send;
}

/// The next cursor: `position` moves to the newest item, but no closer to the
/// clock than `settle`; `seen_ids` keeps the handled items at or after it.
fn advance(
    old: &SourceCursor,
    handled: &[(DateTime<Utc>, String)],
    settle: Duration,
) -> SourceCursor {
    let newest = handled.iter().map(|(t, _)| *t).max();
    let settled = Utc::now() - chrono::Duration::from_std(settle).unwrap_or_default();
    let position = newest
        .map(|n| n.min(settled))
        .unwrap_or(old.position)
        .max(old.position);
    let mut seen_ids: Vec<String> = handled
        .iter()
        .filter(|(t, _)| *t >= position)
        .map(|(_, id)| id.clone())
        .collect();
    if position == old.position {
        seen_ids.extend(old.seen_ids.iter().cloned());
    }
    seen_ids.sort();
    seen_ids.dedup();
    SourceCursor { position, seen_ids }
}

async fn hand_off<S: ChangeSink>(sink: &mut S, handoff: Handoff) -> Result<(), FollowError> {
    sink.handle(handoff).await.map_err(FollowError::Sink)
}

/// What one poll found.
struct Batch {
    source: ChangeSource,
    new_items: usize,
    changes: Vec<ObjectChange>,
}

/// Hands a poll's changes to the sink, then moves the cursor past what was
/// handled: the cursor never moves unless the hand-off succeeded.
async fn commit<S: ChangeSink>(
    store: &Store,
    config: &FollowerConfig,
    sink: &mut S,
    batch: Batch,
    cursor: &SourceCursor,
    handled: &[(DateTime<Utc>, String)],
) -> Result<PollOutcome, FollowError> {
    let outcome = PollOutcome {
        new_items: batch.new_items,
        changes: batch.changes.len(),
        full_sync: None,
    };
    if !batch.changes.is_empty() {
        let handoff = Handoff::Changes {
            source: batch.source,
            changes: batch.changes,
        };
        hand_off(sink, handoff).await?;
    }
    let next = advance(cursor, handled, config.settle);
    if &next != cursor {
        store.save_cursor(&config.cursor_name, &next).await?;
    }
    Ok(outcome)
}

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

/// Polls `follower` whenever `wake` is notified (the webhook) or `interval`
/// passes, whichever comes first, until `shutdown` completes. Transient
/// failures are logged and retried on the next wake-up; a configuration
/// error ends the loop with that error (the producer halts the provider).
pub async fn run<F: Follower, S: ChangeSink>(
    follower: &F,
    sink: &mut S,
    wake: Arc<Notify>,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<(), FollowError> {
    tokio::pin!(shutdown);
    loop {
        match follower.poll_once(sink).await {
            Ok(o) if o.changes > 0 || o.full_sync.is_some() => {
                tracing::info!(changes = o.changes, full_sync = ?o.full_sync, "authentik changes handed off");
            }
            Ok(_) => {}
            Err(e) if e.is_configuration() => return Err(e),
            Err(e) => tracing::warn!(error = %e, "following authentik failed; retrying later"),
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = wake.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, model_name: &str, pk: serde_json::Value) -> AkEvent {
        serde_json::from_value(serde_json::json!({
            "pk": uuid::Uuid::new_v4(), "action": action, "created": "2026-09-01T10:00:00.000001Z",
            "context": {"model": {"app": "authentik_core", "model_name": model_name, "pk": pk, "name": "x"}}
        }))
        .unwrap()
    }

    #[test]
    fn events_map_to_users_and_groups_only() {
        let g = uuid::Uuid::new_v4();
        assert_eq!(
            ObjectChange::from_event(&event("model_updated", "user", serde_json::json!(42))),
            Some(ObjectChange::User(AkUserPk(42)))
        );
        assert_eq!(
            ObjectChange::from_event(&event(
                "model_deleted",
                "group",
                serde_json::json!(g.simple().to_string())
            )),
            Some(ObjectChange::Group(AkGroupPk(g)))
        );
        assert_eq!(
            ObjectChange::from_event(&event("model_updated", "token", serde_json::json!("t"))),
            None
        );
        assert_eq!(
            ObjectChange::from_event(&event("login", "user", serde_json::json!(1))),
            None
        );
        let tasks = ObjectChange::Group(AkGroupPk(g)).tasks("p", TaskReason::Event);
        assert_eq!(
            tasks.iter().map(|t| t.object).collect::<Vec<_>>(),
            vec![
                ObjectRef::Group(AkGroupPk(g)),
                ObjectRef::Membership(AkGroupPk(g))
            ]
        );
    }

    #[test]
    fn the_cursor_trails_the_clock_and_keeps_what_it_saw_after_its_position() {
        let old = SourceCursor::at(Utc::now() - chrono::Duration::hours(1));
        let past = Utc::now() - chrono::Duration::minutes(10);
        let recent = Utc::now();
        let handled = vec![
            (past, "a".to_owned()),
            (past, "b".to_owned()),
            (recent, "c".to_owned()),
        ];
        let next = advance(&old, &handled, Duration::from_secs(5));
        assert!(next.position > past && next.position < recent);
        assert_eq!(next.seen_ids, vec!["c".to_owned()]);
        let settled = advance(&old, &handled[..2], Duration::from_secs(5));
        assert_eq!(settled.position, past);
        assert_eq!(settled.seen_ids, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(advance(&settled, &[], Duration::from_secs(5)), settled);
    }
}
