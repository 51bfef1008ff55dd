//! The simulated directory: users, groups, memberships and the events log.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use uuid::Uuid;

/// authentik's user types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UserType {
    /// A regular user.
    #[default]
    Internal,
    /// A user from outside the organisation.
    External,
    /// A service account made by an admin.
    ServiceAccount,
    /// A service account authentik made for itself.
    InternalServiceAccount,
}

impl UserType {
    /// The API's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Internal => "internal",
            Self::External => "external",
            Self::ServiceAccount => "service_account",
            Self::InternalServiceAccount => "internal_service_account",
        }
    }
}

/// Whether a change records an event (a change through authentik's web
/// requests) or not (a background import, e.g. an LDAP source sync).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Records `model_*` events and sends webhooks, like an API or admin UI change.
    Evented,
    /// Records nothing, like an LDAP import (user edits still bump `last_updated`).
    Silent,
}

/// A user as stored by the simulator.
#[derive(Debug, Clone, PartialEq)]
pub struct SimUser {
    /// Integer primary key.
    pub pk: i64,
    /// UUID.
    pub uuid: Uuid,
    /// Login name.
    pub username: String,
    /// Full name.
    pub name: String,
    /// E-mail (may be empty).
    pub email: String,
    /// Whether the user may log in.
    pub is_active: bool,
    /// Type.
    pub user_type: UserType,
    /// Directory path.
    pub path: String,
    /// Free-form attributes.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// When the user was created.
    pub date_joined: DateTime<Utc>,
    /// Last save of the user row (not bumped by membership changes, as in authentik).
    pub last_updated: DateTime<Utc>,
    /// Direct groups.
    pub groups: BTreeSet<Uuid>,
}

/// A group as stored by the simulator.
#[derive(Debug, Clone, PartialEq)]
pub struct SimGroup {
    /// UUID primary key.
    pub pk: Uuid,
    /// Numeric key.
    pub num_pk: i64,
    /// Name.
    pub name: String,
    /// Whether members are superusers.
    pub is_superuser: bool,
    /// Parent groups.
    pub parents: Vec<Uuid>,
    /// Free-form attributes.
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Direct members.
    pub members: BTreeSet<i64>,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct SimEvent {
    /// UUID.
    pub pk: Uuid,
    /// `model_created`, `model_updated` or `model_deleted`.
    pub action: &'static str,
    /// When it was recorded.
    pub created: DateTime<Utc>,
    /// When it expires (created + retention).
    pub expires: DateTime<Utc>,
    /// `user` or `group`.
    pub model_name: &'static str,
    /// The model pk as authentik stores it: an integer, or a UUID's hex.
    pub model_pk: serde_json::Value,
    /// The object's name (`str(instance)`).
    pub model_label: String,
}

/// The simulator's data. Callers hold the lock for one request or mutation.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) users: BTreeMap<i64, SimUser>,
    pub(crate) groups: BTreeMap<Uuid, SimGroup>,
    pub(crate) events: VecDeque<SimEvent>,
    next_user_pk: i64,
    next_group_num: i64,
    last_time: DateTime<Utc>,
    frozen: Option<DateTime<Utc>>,
    retention: ChronoDuration,
}

/// Microsecond precision, as PostgreSQL and authentik's JSON have it.
pub(crate) fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

impl State {
    pub(crate) fn new(retention: std::time::Duration) -> Self {
        Self {
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            events: VecDeque::new(),
            next_user_pk: 1,
            next_group_num: 1,
            last_time: DateTime::<Utc>::MIN_UTC,
            frozen: None,
            retention: ChronoDuration::from_std(retention).unwrap_or(ChronoDuration::days(365)),
        }
    }

    /// The current time: monotonic, microsecond precision, frozen if asked.
    /// Two calls may return the same instant (as two authentik events may share one).
    pub(crate) fn now(&mut self) -> DateTime<Utc> {
        let t = micros(self.frozen.unwrap_or_else(Utc::now)).max(self.last_time);
        self.last_time = t;
        t
    }

    pub(crate) fn freeze(&mut self, at: Option<DateTime<Utc>>) {
        self.frozen = at.map(micros);
    }

    pub(crate) fn expire_events(&mut self) {
        let now = micros(Utc::now()).max(self.last_time);
        while self.events.front().is_some_and(|e| e.expires <= now) {
            self.events.pop_front();
        }
    }

    pub(crate) fn alloc_user_pk(&mut self) -> i64 {
        let pk = self.next_user_pk;
        self.next_user_pk += 1;
        pk
    }

    pub(crate) fn alloc_group_num(&mut self) -> i64 {
        let n = self.next_group_num;
        self.next_group_num += 1;
        n
    }

    /// Records one event (evented changes only) and returns it.
    pub(crate) fn record(
        &mut self,
        action: &'static str,
        model_name: &'static str,
        model_pk: serde_json::Value,
        model_label: String,
    ) -> SimEvent {
        let created = self.now();
        let event = SimEvent {
            pk: Uuid::new_v4(),
            action,
            created,
            expires: created + self.retention,
            model_name,
            model_pk,
            model_label,
        };
        self.events.push_back(event.clone());
        event
    }

    pub(crate) fn user_event(&mut self, action: &'static str, pk: i64) -> Option<SimEvent> {
        let label = self.users.get(&pk).map(|u| u.username.clone())?;
        Some(self.record(action, "user", serde_json::json!(pk), label))
    }

    pub(crate) fn group_event(&mut self, action: &'static str, pk: Uuid) -> Option<SimEvent> {
        let label = self.groups.get(&pk).map(|g| g.name.clone())?;
        Some(self.record(
            action,
            "group",
            serde_json::json!(pk.simple().to_string()),
            label,
        ))
    }

    /// Whether a user is a superuser (through a superuser group).
    pub(crate) fn is_superuser(&self, user: &SimUser) -> bool {
        user.groups
            .iter()
            .any(|g| self.groups.get(g).is_some_and(|g| g.is_superuser))
    }

    /// Children of a group (groups naming it as a parent).
    pub(crate) fn children(&self, pk: Uuid) -> Vec<Uuid> {
        self.groups
            .values()
            .filter(|g| g.parents.contains(&pk))
            .map(|g| g.pk)
            .collect()
    }

    /// Adds `user` to `group`; false if either is missing or already a member.
    pub(crate) fn link(&mut self, group: Uuid, user: i64) -> bool {
        let (Some(g), Some(u)) = (self.groups.get_mut(&group), self.users.get_mut(&user)) else {
            return false;
        };
        let added = g.members.insert(user);
        u.groups.insert(group);
        added
    }

    /// Removes `user` from `group`; false if it was not a member.
    pub(crate) fn unlink(&mut self, group: Uuid, user: i64) -> bool {
        let removed = self
            .groups
            .get_mut(&group)
            .is_some_and(|g| g.members.remove(&user));
        if let Some(u) = self.users.get_mut(&user) {
            u.groups.remove(&group);
        }
        removed
    }
}
