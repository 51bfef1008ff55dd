//! authentik users and groups as authentik's API returns them.
//!
//! Only the fields entra-sync uses are read, and optional ones may be missing,
//! so that older authentik releases parse too.

use crate::ids::{AkGroupPk, AkUserPk};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// authentik's user `type`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AkUserType {
    /// A regular user of the organisation.
    #[default]
    Internal,
    /// A user from outside the organisation.
    External,
    /// A service account made by an admin.
    ServiceAccount,
    /// A service account authentik made for itself (outposts).
    InternalServiceAccount,
    /// A type this version of entra-sync does not know.
    #[serde(untagged)]
    Other(String),
}

impl AkUserType {
    /// Whether authentik counts this type as a service account.
    pub fn is_service_account(&self) -> bool {
        matches!(self, Self::ServiceAccount | Self::InternalServiceAccount)
    }
}

fn default_true() -> bool {
    true
}

/// A user, as `GET /api/v3/core/users/{pk}/` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AkUser {
    /// Primary key.
    pub pk: AkUserPk,
    /// Login name.
    pub username: String,
    /// Full name.
    #[serde(default)]
    pub name: String,
    /// Whether the user may log in.
    #[serde(default = "default_true")]
    pub is_active: bool,
    /// E-mail address; may be empty.
    #[serde(default)]
    pub email: String,
    /// authentik's stable unique id (hex sha256), used as `onPremisesImmutableId`.
    #[serde(default)]
    pub uid: String,
    /// User type.
    #[serde(rename = "type", default)]
    pub user_type: AkUserType,
    /// The groups the user is a direct member of.
    #[serde(default)]
    pub groups: Vec<AkGroupPk>,
    /// Free-form attributes.
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Whether the user is a superuser.
    #[serde(default)]
    pub is_superuser: bool,
    /// Directory path, e.g. `users`.
    #[serde(default)]
    pub path: String,
    /// The user's UUID, if this authentik version exposes it.
    #[serde(default)]
    pub uuid: Option<uuid::Uuid>,
    /// Last modification time (authentik 2026.8 and later).
    #[serde(default)]
    pub last_updated: Option<DateTime<Utc>>,
}

/// A group, as `GET /api/v3/core/groups/{pk}/` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AkGroup {
    /// Primary key.
    pub pk: AkGroupPk,
    /// Numeric key, if this authentik version exposes it.
    #[serde(default)]
    pub num_pk: Option<i64>,
    /// Name; groups are matched to Entra by it.
    pub name: String,
    /// Direct members, when the request asked for them (`include_users`).
    #[serde(default)]
    pub users: Vec<AkUserPk>,
    /// Free-form attributes.
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Whether members are superusers.
    #[serde(default)]
    pub is_superuser: bool,
    /// Parent groups (authentik 2026.8 has several).
    #[serde(default)]
    pub parents: Vec<AkGroupPk>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_minimal_old_user() {
        let u: AkUser =
            serde_json::from_value(serde_json::json!({"pk": 7, "username": "a"})).unwrap();
        assert!(u.is_active);
        assert_eq!(u.user_type, AkUserType::Internal);
        assert!(u.groups.is_empty());
    }

    #[test]
    fn unknown_user_types_are_kept() {
        let u: AkUser = serde_json::from_value(serde_json::json!(
            {"pk": 7, "username": "a", "type": "robot", "extra_field": 1}
        ))
        .unwrap();
        assert_eq!(u.user_type, AkUserType::Other("robot".into()));
        assert!(!u.user_type.is_service_account());
        assert!(AkUserType::InternalServiceAccount.is_service_account());
    }
}
