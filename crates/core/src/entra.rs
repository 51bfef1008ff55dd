//! Entra users and groups with Graph's property names, as discovery lists them,
//! and which of them entra-sync may take over.

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
    "onPremisesSyncEnabled",
];

/// The group properties discovery reads (`$select`): the name, and every
/// property that tells whether the group can be owned.
pub const GROUP_SELECT: &[&str] = &[
    "id",
    "displayName",
    "mailNickname",
    "mailEnabled",
    "securityEnabled",
    "groupTypes",
    "isAssignableToRole",
    "onPremisesSyncEnabled",
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
    /// `true` while the user is synchronised from on-premises Active Directory.
    #[serde(default)]
    pub on_premises_sync_enabled: Option<bool>,
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
    /// `Unified` for a Microsoft 365 group, `DynamicMembership` for a dynamic one.
    #[serde(default)]
    pub group_types: Option<Vec<String>>,
    /// Whether Entra roles can be assigned to the group.
    #[serde(default)]
    pub is_assignable_to_role: Option<bool>,
    /// `true` while the group is synchronised from on-premises Active Directory.
    #[serde(default)]
    pub on_premises_sync_enabled: Option<bool>,
    /// Optional immutable alternate key; usually null.
    #[serde(default)]
    pub unique_name: Option<String>,
}

/// Why entra-sync must not take over an Entra object: adopting it would have
/// the sync change, or delete, something Graph or its owners manage otherwise.
///
/// Reads as a clause: "it is a dynamic group".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum NotOwnable {
    /// `groupTypes` holds `Unified`.
    #[error("it is a Microsoft 365 group")]
    Microsoft365Group,
    /// `groupTypes` holds `DynamicMembership`: Entra computes its members.
    #[error("it is a dynamic group")]
    DynamicGroup,
    /// Mastered in on-premises Active Directory: Entra refuses cloud writes.
    #[error("it is synchronised from on-premises")]
    OnPremisesSynced,
    /// `isAssignableToRole`: changing it needs directory-role rights.
    #[error("it is role-assignable")]
    RoleAssignable,
    /// A mail-enabled security group: read-only through Graph.
    #[error("it is a mail-enabled security group")]
    MailEnabledSecurityGroup,
    /// A distribution group: read-only through Graph.
    #[error("it is a distribution group")]
    DistributionGroup,
    /// `securityEnabled` is not true.
    #[error("it is not a security group")]
    NotSecurityGroup,
}

/// An Entra object that entra-sync may or may not take over.
pub trait Ownable {
    /// Its object id.
    fn id(&self) -> &EntraObjectId;
    /// `Ok` if discovery and conflict adoption may link it, else why not.
    fn ownership(&self) -> Result<(), NotOwnable>;
}

impl Ownable for EntraUser {
    fn id(&self) -> &EntraObjectId {
        &self.id
    }

    /// A user mastered on-premises is not adoptable: Entra rejects cloud writes to it.
    fn ownership(&self) -> Result<(), NotOwnable> {
        if self.on_premises_sync_enabled == Some(true) {
            return Err(NotOwnable::OnPremisesSynced);
        }
        Ok(())
    }
}

impl EntraGroup {
    fn has_group_type(&self, wanted: &str) -> bool {
        self.group_types
            .iter()
            .flatten()
            .any(|t| t.eq_ignore_ascii_case(wanted))
    }
}

impl Ownable for EntraGroup {
    fn id(&self) -> &EntraObjectId {
        &self.id
    }

    /// Only a plain cloud security group can be owned: `securityEnabled`, not
    /// mail-enabled, no `Unified` or `DynamicMembership` type, not role-assignable,
    /// not synchronised from on-premises. The first rule broken is the reason.
    fn ownership(&self) -> Result<(), NotOwnable> {
        let mail_enabled = self.mail_enabled == Some(true);
        let security = self.security_enabled == Some(true);
        if self.has_group_type("Unified") {
            Err(NotOwnable::Microsoft365Group)
        } else if self.has_group_type("DynamicMembership") {
            Err(NotOwnable::DynamicGroup)
        } else if self.on_premises_sync_enabled == Some(true) {
            Err(NotOwnable::OnPremisesSynced)
        } else if self.is_assignable_to_role == Some(true) {
            Err(NotOwnable::RoleAssignable)
        } else if mail_enabled && security {
            Err(NotOwnable::MailEnabledSecurityGroup)
        } else if mail_enabled {
            Err(NotOwnable::DistributionGroup)
        } else if !security {
            Err(NotOwnable::NotSecurityGroup)
        } else {
            Ok(())
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn group(props: Value) -> EntraGroup {
        let mut body = json!({"id": "9a3d0000-0000-0000-0000-000000000001"});
        body.as_object_mut()
            .unwrap()
            .extend(props.as_object().unwrap().clone());
        serde_json::from_value(body).unwrap()
    }

    /// The group kinds of Microsoft's table (groups-overview, and the support
    /// article on 403s for member adds), with Graph's JSON shapes.
    #[test]
    fn only_cloud_security_groups_can_be_owned() {
        let cases = [
            (
                json!({"securityEnabled": true, "mailEnabled": false, "groupTypes": []}),
                Ok(()),
            ),
            (
                json!({"securityEnabled": false, "mailEnabled": true, "groupTypes": ["Unified"]}),
                Err(NotOwnable::Microsoft365Group),
            ),
            (
                json!({"securityEnabled": true, "mailEnabled": true, "groupTypes": ["Unified"]}),
                Err(NotOwnable::Microsoft365Group),
            ),
            (
                json!({"securityEnabled": true, "mailEnabled": false, "groupTypes": ["DynamicMembership"], "membershipRule": "(user.department -eq \"Sales\")"}),
                Err(NotOwnable::DynamicGroup),
            ),
            (
                json!({"securityEnabled": true, "mailEnabled": true, "groupTypes": []}),
                Err(NotOwnable::MailEnabledSecurityGroup),
            ),
            (
                json!({"securityEnabled": false, "mailEnabled": true, "groupTypes": []}),
                Err(NotOwnable::DistributionGroup),
            ),
            (
                json!({"securityEnabled": true, "mailEnabled": false, "groupTypes": [], "isAssignableToRole": true}),
                Err(NotOwnable::RoleAssignable),
            ),
            (
                json!({"securityEnabled": true, "mailEnabled": false, "groupTypes": [], "onPremisesSyncEnabled": true}),
                Err(NotOwnable::OnPremisesSynced),
            ),
            (
                json!({"securityEnabled": null, "mailEnabled": false, "groupTypes": null}),
                Err(NotOwnable::NotSecurityGroup),
            ),
        ];
        for (props, want) in cases {
            assert_eq!(group(props.clone()).ownership(), want, "{props}");
        }
    }

    #[test]
    fn reasons_read_as_a_clause() {
        assert_eq!(
            NotOwnable::Microsoft365Group.to_string(),
            "it is a Microsoft 365 group"
        );
        assert_eq!(
            NotOwnable::OnPremisesSynced.to_string(),
            "it is synchronised from on-premises"
        );
    }

    #[test]
    fn users_mastered_on_premises_are_not_adoptable() {
        let user = |synced: Value| -> EntraUser {
            serde_json::from_value(json!({"id": "9a3d0000-0000-0000-0000-000000000001", "onPremisesSyncEnabled": synced}))
                .unwrap()
        };
        assert_eq!(
            user(json!(true)).ownership(),
            Err(NotOwnable::OnPremisesSynced)
        );
        assert_eq!(user(json!(null)).ownership(), Ok(()));
        assert_eq!(user(json!(false)).ownership(), Ok(()));
    }

    fn flag() -> impl Strategy<Value = Option<bool>> {
        prop::option::of(any::<bool>())
    }

    proptest! {
        /// A group is owned only if no rule disqualifies it, and breaking any one
        /// rule of an ownable group makes it not ownable.
        #[test]
        fn ownership_follows_every_rule(
            security in flag(),
            mail in flag(),
            unified: bool,
            dynamic: bool,
            role in flag(),
            synced in flag(),
        ) {
            let mut types = Vec::new();
            if unified { types.push("Unified"); }
            if dynamic { types.push("DynamicMembership"); }
            let g = group(json!({
                "securityEnabled": security, "mailEnabled": mail, "groupTypes": types,
                "isAssignableToRole": role, "onPremisesSyncEnabled": synced,
            }));
            let clean = security == Some(true) && mail != Some(true) && !unified && !dynamic
                && role != Some(true) && synced != Some(true);
            prop_assert_eq!(g.ownership().is_ok(), clean);
            if clean {
                for breaking in [
                    json!({"securityEnabled": false}),
                    json!({"mailEnabled": true}),
                    json!({"groupTypes": ["Unified"]}),
                    json!({"groupTypes": ["DynamicMembership"]}),
                    json!({"isAssignableToRole": true}),
                    json!({"onPremisesSyncEnabled": true}),
                ] {
                    let mut broken = serde_json::to_value(&g).unwrap();
                    broken.as_object_mut().unwrap().extend(breaking.as_object().unwrap().clone());
                    let broken: EntraGroup = serde_json::from_value(broken).unwrap();
                    prop_assert!(broken.ownership().is_err(), "{breaking}");
                }
            }
        }
    }
}
