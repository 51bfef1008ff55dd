//! authentik users and groups as authentik's API returns them.
//!
//! Only the fields entra-sync uses are read, and every field that is not in
//! all releases 2024.2 … 2026.8 is optional (`shared/reference/authentik-versions.md`):
//! - a missing key, a `null` and an empty list all mean "none" ([`null_as_default`]);
//! - a group's single `parent` (up to 2025.10) and its `parents` (2025.12 and
//!   later) both become [`AkGroup::parents`].

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

/// Deserialises `null` as the type's default, so a missing key, a `null` and
/// an empty list (or object) mean the same.
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A group as a user's `groups_obj` lists it (`UserGroup` / `PartialGroup`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AkUserGroup {
    /// Primary key.
    pub pk: AkGroupPk,
    /// Name.
    pub name: String,
    /// The parent group (up to 2025.10; none since).
    #[serde(default)]
    pub parent: Option<AkGroupPk>,
    /// The parent's name: `null` for a root group, or (2024.2) no key at all.
    #[serde(default)]
    pub parent_name: Option<String>,
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
    #[serde(default, deserialize_with = "null_as_default")]
    pub groups: Vec<AkGroupPk>,
    /// The expanded groups, when authentik sends them (always before 2024.4,
    /// else only with `include_groups=true`). Not used for syncing; tells
    /// whether `include_groups=false` was honoured.
    #[serde(default, skip_serializing)]
    pub groups_obj: Option<Vec<AkUserGroup>>,
    /// Free-form attributes.
    #[serde(default, deserialize_with = "null_as_default")]
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
    /// Last save of the user (authentik 2025.8 and later).
    #[serde(default)]
    pub last_updated: Option<DateTime<Utc>>,
}

/// A group, as `GET /api/v3/core/groups/{pk}/` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "WireGroup")]
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
    /// Parent groups: `parents` (2025.12 and later), or the one `parent` of
    /// earlier releases.
    #[serde(default)]
    pub parents: Vec<AkGroupPk>,
    /// Whether `users_obj` came back (a list): tells whether
    /// `include_users=false` was honoured (ignored before 2024.4).
    #[serde(default, skip_serializing)]
    pub users_obj_sent: bool,
}

/// A group as any release sends it.
#[derive(Deserialize)]
struct WireGroup {
    pk: AkGroupPk,
    #[serde(default)]
    num_pk: Option<i64>,
    name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    users: Vec<AkUserPk>,
    #[serde(default, deserialize_with = "null_as_default")]
    attributes: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    is_superuser: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    parents: Vec<AkGroupPk>,
    #[serde(default)]
    parent: Option<AkGroupPk>,
    #[serde(default)]
    users_obj: Option<serde::de::IgnoredAny>,
}

impl From<WireGroup> for AkGroup {
    fn from(w: WireGroup) -> Self {
        let mut parents = w.parents;
        if let Some(parent) = w.parent
            && !parents.contains(&parent)
        {
            parents.push(parent);
        }
        Self {
            pk: w.pk,
            num_pk: w.num_pk,
            name: w.name,
            users: w.users,
            attributes: w.attributes,
            is_superuser: w.is_superuser,
            parents,
            users_obj_sent: w.users_obj.is_some(),
        }
    }
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
