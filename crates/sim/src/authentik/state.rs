//! The simulated directory: users, groups, memberships and the events log.

use super::release::Release;
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
    /// `context.diff` of a group-side membership change, where the release records one.
    pub diff: Option<serde_json::Value>,
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
    /// The release imitated.
    pub(crate) release: Release,
    /// Whether the imitated instance has an enterprise licence (membership diffs from 2025.2).
    pub(crate) licensed: bool,
    /// How far authentik's clock is from this machine's.
    clock_offset: ChronoDuration,
    /// Whether the next mutation's events commit late ([`State::hold_next`]).
    pub(crate) hold_next: bool,
    /// Events recorded but not committed yet.
    held: Vec<SimEvent>,
}

/// Microsecond precision, as PostgreSQL and authentik's JSON have it.
pub(crate) fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

impl State {
    pub(crate) fn new(retention: std::time::Duration, release: Release, licensed: bool) -> Self {
        Self {
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            events: VecDeque::new(),
            next_user_pk: 1,
            next_group_num: 1,
            last_time: DateTime::<Utc>::MIN_UTC,
            frozen: None,
            retention: ChronoDuration::from_std(retention).unwrap_or(ChronoDuration::days(365)),
            release,
            licensed,
            clock_offset: ChronoDuration::zero(),
            hold_next: false,
            held: Vec::new(),
        }
    }

    /// authentik's wall clock: the frozen instant, else this machine's plus
    /// the configured offset.
    pub(crate) fn clock(&self) -> DateTime<Utc> {
        self.frozen
            .unwrap_or_else(|| Utc::now() + self.clock_offset)
    }

    pub(crate) fn set_clock_offset(&mut self, offset: ChronoDuration) {
        self.clock_offset = offset;
    }

    /// The next mutation's events keep their time but stay invisible until
    /// [`State::commit_held`], like a transaction that commits late.
    pub(crate) fn hold_next(&mut self) {
        self.hold_next = true;
    }

    /// Forgets the last `n` recorded events (a silent change records nothing).
    pub(crate) fn forget_recorded(&mut self, n: usize) {
        self.events.truncate(self.events.len().saturating_sub(n));
    }

    /// Moves the last `n` recorded events out of sight until [`State::commit_held`].
    pub(crate) fn hold_recorded(&mut self, n: usize) {
        let from = self.events.len().saturating_sub(n);
        self.held.extend(self.events.drain(from..));
    }

    /// Makes the held events visible; returns them.
    pub(crate) fn commit_held(&mut self) -> Vec<SimEvent> {
        let held = std::mem::take(&mut self.held);
        self.events.extend(held.iter().cloned());
        held
    }

    /// The current time: monotonic, microsecond precision, frozen if asked.
    /// Two calls may return the same instant (as two authentik events may share one).
    pub(crate) fn now(&mut self) -> DateTime<Utc> {
        let t = micros(self.clock()).max(self.last_time);
        self.last_time = t;
        t
    }

    pub(crate) fn freeze(&mut self, at: Option<DateTime<Utc>>) {
        self.frozen = at.map(micros);
    }

    pub(crate) fn expire_events(&mut self) {
        let now = micros(self.clock()).max(self.last_time);
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
            diff: None,
        };
        self.events.push_back(event.clone());
        event
    }

    /// The group's `model_updated` for a group-side membership change (`op`
    /// is `add` or `remove`), with `context.diff` where the release records
    /// one, and logged twice where the release's race does so (up to 2024.6).
    pub(crate) fn group_membership_event(
        &mut self,
        group: Uuid,
        op: &str,
        user: i64,
    ) -> Vec<SimEvent> {
        let diff = self
            .release
            .membership_diff(self.licensed)
            .then(|| serde_json::json!({"users": {op: [user]}}));
        let copies = if self.release.duplicate_events() {
            2
        } else {
            1
        };
        let mut out = Vec::new();
        for _ in 0..copies {
            let Some(mut e) = self.group_event("model_updated", group) else {
                break;
            };
            e.diff = diff.clone();
            if let Some(stored) = self.events.back_mut() {
                stored.diff = diff.clone();
            }
            out.push(e);
        }
        out
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
