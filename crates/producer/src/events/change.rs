//! What a follower hands off: [`ObjectChange`]s, or a request for a full sync,
//! and how a change becomes tasks.
//!
//! Keeps invariant 1 of DESIGN.md (tasks are level-triggered): a change says
//! which object to look at, not what happened, and becomes one task per object
//! (a group also gets its membership task); the worker decides the rest.

use chrono::{DateTime, Utc};
use entra_sync_authentik::AkEvent;
use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_core::task::{ObjectRef, Task, TaskReason};
use entra_sync_queue::Lane;
use std::future::Future;

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
    /// The silent scan (authentik before 2025.8).
    SilentScan,
}

impl ChangeSource {
    /// The task reason to record.
    pub fn reason(self) -> TaskReason {
        match self {
            Self::Events => TaskReason::Event,
            Self::Watermark | Self::SilentScan => TaskReason::Watermark,
        }
    }

    /// The lane its tasks go to. Silent changes come in bulk (a source sync
    /// may touch 50,000 users; after the upgrade to 2025.8 every user shares
    /// one `last_updated`), so they take the bulk lane and never delay a
    /// direct change (DESIGN invariant 8).
    pub fn lane(self) -> Lane {
        match self {
            Self::Events => Lane::Direct,
            Self::Watermark | Self::SilentScan => Lane::Bulk,
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
}
