//! The task a producer publishes and a worker reconciles: it names one object
//! and why it was sent, and carries no instructions (DESIGN invariant 1).
//!
//! Inside the program the object is typed ([`ObjectRef`]), parsed once when a
//! message is read. On the wire a task keeps the JSON of the first version,
//! `{"v":1,"provider":"contoso","kind":"user","object_id":"42","reason":"event","attempt":0}`
//! (with `run_id` when it belongs to a full sync), both ways: messages waiting
//! in the retry tiers and the dead-letter queue, and workers of the previous
//! version during a rolling upgrade, read and write the same bodies.

use crate::ids::{AkGroupPk, AkUserPk};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The kind of object a task is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// An authentik user (id: the integer pk).
    User,
    /// An authentik group (id: the UUID pk).
    Group,
    /// The memberships of one authentik group (id: the group's UUID pk).
    Membership,
}

impl ObjectKind {
    /// The name used in the database, queues and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
            Self::Membership => "membership",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The object a task is about, with its authentik id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectRef {
    /// An authentik user.
    User(AkUserPk),
    /// An authentik group (the group itself).
    Group(AkGroupPk),
    /// The memberships of an authentik group.
    Membership(AkGroupPk),
}

/// An id that does not fit its kind: not an integer for a user, not a UUID for a group.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} id {id:?} is not valid")]
pub struct InvalidObjectId {
    /// The kind the id was read for.
    pub kind: ObjectKind,
    /// The refused id.
    pub id: String,
}

impl ObjectRef {
    /// Reads an authentik id given as text (a user's integer pk, a group's UUID).
    pub fn parse(kind: ObjectKind, id: &str) -> Result<Self, InvalidObjectId> {
        let invalid = || InvalidObjectId {
            kind,
            id: id.to_owned(),
        };
        let group = || {
            uuid::Uuid::parse_str(id)
                .map(AkGroupPk)
                .map_err(|_| invalid())
        };
        Ok(match kind {
            ObjectKind::User => Self::User(AkUserPk(id.parse().map_err(|_| invalid())?)),
            ObjectKind::Group => Self::Group(group()?),
            ObjectKind::Membership => Self::Membership(group()?),
        })
    }

    /// The kind of object.
    pub fn kind(self) -> ObjectKind {
        match self {
            Self::User(_) => ObjectKind::User,
            Self::Group(_) => ObjectKind::Group,
            Self::Membership(_) => ObjectKind::Membership,
        }
    }

    /// The authentik id as text, as the database and the wire format hold it
    /// (a group's UUID hyphenated, in lower case).
    pub fn id_string(self) -> String {
        match self {
            Self::User(pk) => pk.to_string(),
            Self::Group(pk) | Self::Membership(pk) => pk.to_string(),
        }
    }

    /// The name of the lock the object is written under (DESIGN invariant 2):
    /// a group and its memberships share one. Whoever writes an object's link
    /// (a worker, discovery) takes this lock.
    pub fn lock_name(self) -> String {
        match self {
            Self::User(pk) => format!("user/{pk}"),
            Self::Group(pk) | Self::Membership(pk) => format!("group/{pk}"),
        }
    }
}

impl fmt::Display for ObjectRef {
    /// `user 42`, `group 0190…`, `membership 0190…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.id_string())
    }
}

/// Why a task was sent; recorded with the outcome, never changes what the worker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskReason {
    /// Part of a full sync.
    FullSync,
    /// An authentik event (model created, updated or deleted).
    Event,
    /// The `last_updated` watermark, or the silent scan, saw a change that made no event.
    Watermark,
    /// A user's reconcile found its group memberships changed.
    MembershipChange,
    /// Sent by an operator.
    Manual,
}

/// One unit of work: reconcile this object of this provider to its current desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireTask", into = "WireTask")]
pub struct Task {
    /// Provider name, as in the configuration.
    pub provider: String,
    /// The object to reconcile.
    pub object: ObjectRef,
    /// Why it was sent.
    pub reason: TaskReason,
    /// The full-sync run this task belongs to, if any.
    pub run_id: Option<uuid::Uuid>,
    /// How many times it has been tried already.
    pub attempt: u32,
}

/// A task message that could not be read, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("malformed task message: {0}")]
pub struct MalformedTask(String);

impl Task {
    /// The current message format version.
    pub const VERSION: u8 = 1;

    /// A first attempt at `object`.
    pub fn new(provider: &str, object: ObjectRef, reason: TaskReason) -> Self {
        Self {
            provider: provider.to_owned(),
            object,
            reason,
            run_id: None,
            attempt: 0,
        }
    }

    /// Reads a message body, checking the version and that the id fits the kind.
    pub fn decode(body: &[u8]) -> Result<Self, MalformedTask> {
        let wire: WireTask =
            serde_json::from_slice(body).map_err(|e| MalformedTask(e.to_string()))?;
        Self::try_from(wire)
    }

    /// The message body.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a task always serialises")
    }
}

/// A task as it travels: the format of version 1, field for field.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireTask {
    v: u8,
    provider: String,
    kind: ObjectKind,
    object_id: String,
    reason: TaskReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    run_id: Option<uuid::Uuid>,
    #[serde(default)]
    attempt: u32,
}

impl TryFrom<WireTask> for Task {
    type Error = MalformedTask;

    fn try_from(wire: WireTask) -> Result<Self, Self::Error> {
        if wire.v != Self::VERSION {
            return Err(MalformedTask(format!("unsupported version {}", wire.v)));
        }
        if wire.provider.is_empty() {
            return Err(MalformedTask("empty provider".into()));
        }
        let object = ObjectRef::parse(wire.kind, &wire.object_id)
            .map_err(|e| MalformedTask(e.to_string()))?;
        Ok(Self {
            provider: wire.provider,
            object,
            reason: wire.reason,
            run_id: wire.run_id,
            attempt: wire.attempt,
        })
    }
}

impl From<Task> for WireTask {
    fn from(task: Task) -> Self {
        Self {
            v: Task::VERSION,
            provider: task.provider,
            kind: task.object.kind(),
            object_id: task.object.id_string(),
            reason: task.reason,
            run_id: task.run_id,
            attempt: task.attempt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUP: &str = "0190a7a2-9c1e-7c3a-8f00-5b2a1c3d4e5f";
    const RUN: &str = "0190a7a3-0000-7000-8000-000000000001";

    #[test]
    fn a_group_and_its_memberships_share_one_lock() {
        let group = AkGroupPk(uuid::Uuid::parse_str(GROUP).unwrap());
        assert_eq!(
            ObjectRef::Group(group).lock_name(),
            ObjectRef::Membership(group).lock_name()
        );
        assert_ne!(
            ObjectRef::User(AkUserPk(7)).lock_name(),
            ObjectRef::Group(group).lock_name()
        );
    }

    fn group() -> AkGroupPk {
        AkGroupPk(uuid::Uuid::parse_str(GROUP).unwrap())
    }

    /// Bodies exactly as the first version publishes them (and as messages in
    /// the retry tiers and the DLQ hold them), with the task each stands for.
    fn first_version_bodies() -> Vec<(String, Task)> {
        let run = uuid::Uuid::parse_str(RUN).unwrap();
        vec![
            (
                r#"{"v":1,"provider":"contoso","kind":"user","object_id":"42","reason":"event","attempt":0}"#.into(),
                Task::new("contoso", ObjectRef::User(AkUserPk(42)), TaskReason::Event),
            ),
            (
                format!(
                    r#"{{"v":1,"provider":"contoso","kind":"group","object_id":"{GROUP}","reason":"watermark","attempt":2}}"#
                ),
                Task {
                    attempt: 2,
                    ..Task::new("contoso", ObjectRef::Group(group()), TaskReason::Watermark)
                },
            ),
            (
                format!(
                    r#"{{"v":1,"provider":"contoso","kind":"membership","object_id":"{GROUP}","reason":"full_sync","run_id":"{RUN}","attempt":3}}"#
                ),
                Task {
                    run_id: Some(run),
                    attempt: 3,
                    ..Task::new("contoso", ObjectRef::Membership(group()), TaskReason::FullSync)
                },
            ),
        ]
    }

    #[test]
    fn reads_and_writes_the_first_versions_bodies_byte_for_byte() {
        for (body, task) in first_version_bodies() {
            assert_eq!(Task::decode(body.as_bytes()).unwrap(), task, "{body}");
            assert_eq!(String::from_utf8(task.encode()).unwrap(), body);
        }
    }

    #[test]
    fn reads_a_body_without_attempt_as_a_first_attempt() {
        let body = br#"{"v":1,"provider":"p","kind":"user","object_id":"7","reason":"manual"}"#;
        assert_eq!(
            Task::decode(body).unwrap(),
            Task::new("p", ObjectRef::User(AkUserPk(7)), TaskReason::Manual)
        );
    }

    #[test]
    fn round_trips() {
        let mut t = Task::new("contoso", ObjectRef::Membership(group()), TaskReason::Event);
        t.run_id = Some(uuid::Uuid::now_v7());
        t.attempt = 5;
        assert_eq!(Task::decode(&t.encode()).unwrap(), t);
        let value = serde_json::to_value(&t).unwrap();
        assert_eq!(serde_json::from_value::<Task>(value).unwrap(), t);
    }

    #[test]
    fn an_object_ref_names_its_kind_and_id() {
        let user = ObjectRef::parse(ObjectKind::User, "42").unwrap();
        assert_eq!(user, ObjectRef::User(AkUserPk(42)));
        assert_eq!(
            (user.kind(), user.id_string()),
            (ObjectKind::User, "42".into())
        );
        assert_eq!(user.to_string(), "user 42");
        let members = ObjectRef::parse(ObjectKind::Membership, &GROUP.to_uppercase()).unwrap();
        assert_eq!(members, ObjectRef::Membership(group()));
        assert_eq!(members.id_string(), GROUP, "ids are written in one form");
        assert_eq!(
            ObjectRef::parse(ObjectKind::Group, "42")
                .unwrap_err()
                .to_string(),
            "group id \"42\" is not valid"
        );
    }

    #[test]
    fn refuses_malformed_messages() {
        for body in [
            &b"not json"[..],
            br#"{"v":1,"provider":"p","kind":"user","object_id":"abc","reason":"event"}"#,
            br#"{"v":1,"provider":"p","kind":"group","object_id":"42","reason":"event"}"#,
            br#"{"v":1,"provider":"p","kind":"membership","object_id":"","reason":"event"}"#,
            br#"{"v":2,"provider":"p","kind":"user","object_id":"42","reason":"event"}"#,
            br#"{"v":1,"provider":"","kind":"user","object_id":"42","reason":"event"}"#,
            br#"{"v":1,"provider":"p","kind":"user","object_id":"42","reason":"event","delete":true}"#,
        ] {
            assert!(Task::decode(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn a_malformed_message_says_what_is_wrong() {
        let body =
            br#"{"v":1,"provider":"p","kind":"user","object_id":"not-a-number","reason":"event"}"#;
        assert_eq!(
            Task::decode(body).unwrap_err().to_string(),
            "malformed task message: user id \"not-a-number\" is not valid"
        );
    }
}
