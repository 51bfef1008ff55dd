//! The task a producer publishes and a worker reconciles: it names one object
//! and why it was sent, and carries no instructions (DESIGN invariant 1).

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

/// Why a task was sent; recorded with the outcome, never changes what the worker does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskReason {
    /// Part of a full sync.
    FullSync,
    /// An authentik event (model created, updated or deleted).
    Event,
    /// The `last_updated` watermark saw a change that made no event.
    Watermark,
    /// A user's reconcile found its group memberships changed.
    MembershipChange,
    /// Sent by an operator.
    Manual,
}

/// One unit of work: reconcile this object of this provider to its current desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Message format version.
    pub v: u8,
    /// Provider name, as in the configuration.
    pub provider: String,
    /// What kind of object.
    pub kind: ObjectKind,
    /// The authentik id: a user's integer pk or a group's UUID, as text.
    pub object_id: String,
    /// Why it was sent.
    pub reason: TaskReason,
    /// The full-sync run this task belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<uuid::Uuid>,
    /// How many times it has been tried already.
    #[serde(default)]
    pub attempt: u32,
}

/// A task message that could not be read, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("malformed task message: {0}")]
pub struct MalformedTask(String);

impl Task {
    /// The current message format version.
    pub const VERSION: u8 = 1;

    /// A first attempt at `object_id` of `kind`.
    pub fn new(
        provider: &str,
        kind: ObjectKind,
        object_id: impl Into<String>,
        reason: TaskReason,
    ) -> Self {
        Self {
            v: Self::VERSION,
            provider: provider.to_owned(),
            kind,
            object_id: object_id.into(),
            reason,
            run_id: None,
            attempt: 0,
        }
    }

    /// Reads a message body, checking the version and that the id fits the kind.
    pub fn decode(body: &[u8]) -> Result<Self, MalformedTask> {
        let task: Task = serde_json::from_slice(body).map_err(|e| MalformedTask(e.to_string()))?;
        if task.v != Self::VERSION {
            return Err(MalformedTask(format!("unsupported version {}", task.v)));
        }
        if task.provider.is_empty() {
            return Err(MalformedTask("empty provider".into()));
        }
        let id_ok = match task.kind {
            ObjectKind::User => task.object_id.parse::<i64>().is_ok(),
            ObjectKind::Group | ObjectKind::Membership => {
                uuid::Uuid::parse_str(&task.object_id).is_ok()
            }
        };
        if !id_ok {
            return Err(MalformedTask(format!(
                "{} id {:?} is not valid",
                task.kind, task.object_id
            )));
        }
        Ok(task)
    }

    /// The message body.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a task always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut t = Task::new("contoso", ObjectKind::User, "42", TaskReason::Event);
        t.run_id = Some(uuid::Uuid::now_v7());
        assert_eq!(Task::decode(&t.encode()).unwrap(), t);
    }

    #[test]
    fn refuses_malformed_messages() {
        for body in [
            &b"not json"[..],
            br#"{"v":1,"provider":"p","kind":"user","object_id":"abc","reason":"event"}"#,
            br#"{"v":1,"provider":"p","kind":"group","object_id":"42","reason":"event"}"#,
            br#"{"v":2,"provider":"p","kind":"user","object_id":"42","reason":"event"}"#,
            br#"{"v":1,"provider":"","kind":"user","object_id":"42","reason":"event"}"#,
            br#"{"v":1,"provider":"p","kind":"user","object_id":"42","reason":"event","delete":true}"#,
        ] {
            assert!(Task::decode(body).is_err(), "{}", String::from_utf8_lossy(body));
        }
    }
}
