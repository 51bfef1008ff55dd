//! Entra users and groups with Graph's property names, as discovery lists them.

use crate::ids::EntraObjectId;
use serde::{Deserialize, Serialize};

/// The user properties discovery reads (`$select`).
pub const USER_SELECT: &[&str] = &[
    "id",
    "userPrincipalName",
    "mail",
    "displayName",
    "accountEnabled",
    "mailNickname",
    "onPremisesImmutableId",
];

/// The group properties discovery reads (`$select`).
pub const GROUP_SELECT: &[&str] = &[
    "id",
    "displayName",
    "mailNickname",
    "mailEnabled",
    "securityEnabled",
    "uniqueName",
];

/// An Entra user as listed by `GET /users?$select=…`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntraUser {
    /// Object id.
    pub id: EntraObjectId,
    /// Sign-in name.
    #[serde(default)]
    pub user_principal_name: Option<String>,
    /// Primary SMTP address; only set for users with a mailbox.
    #[serde(default)]
    pub mail: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Whether sign-in is enabled.
    #[serde(default)]
    pub account_enabled: Option<bool>,
    /// Mail alias.
    #[serde(default)]
    pub mail_nickname: Option<String>,
    /// Immutable id for federation.
    #[serde(default)]
    pub on_premises_immutable_id: Option<String>,
}

/// An Entra group as listed by `GET /groups?$select=…`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntraGroup {
    /// Object id.
    pub id: EntraObjectId,
    /// Display name; groups are matched by it.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Mail alias.
    #[serde(default)]
    pub mail_nickname: Option<String>,
    /// Whether the group is mail-enabled.
    #[serde(default)]
    pub mail_enabled: Option<bool>,
    /// Whether the group is a security group.
    #[serde(default)]
    pub security_enabled: Option<bool>,
    /// Optional immutable alternate key; usually null.
    #[serde(default)]
    pub unique_name: Option<String>,
}

/// Turns a listed object into the attributes map stored as "last written",
/// without `id` and without properties Graph returned as null.
pub fn listed_attributes<T: Serialize>(object: &T) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::to_value(object) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.remove("id");
            map.retain(|_, v| !v.is_null());
            map
        }
        _ => serde_json::Map::new(),
    }
}
