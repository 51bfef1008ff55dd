//! Users and groups of each kind Entra holds, with Graph's JSON shapes, to
//! seed with [`GraphSim::seed_user`](super::GraphSim::seed_user) and
//! [`GraphSim::seed_group`](super::GraphSim::seed_group).
//!
//! Group kinds follow Microsoft's table (`groups-overview.md`, and the support
//! article "Troubleshoot 403 error when adding a user to a group"):
//!
//! | kind | `groupTypes` | `mailEnabled` | `securityEnabled` | members through Graph |
//! |---|---|---|---|---|
//! | security | `[]` | false | true | yes |
//! | Microsoft 365 | `["Unified"]` | true | false | yes |
//! | mail-enabled security | `[]` | true | true | no: 403 |
//! | distribution | `[]` | true | false | no: 403 |
//! | dynamic | `["DynamicMembership"]` | false | true | no: 403 |
//! | role-assignable | `[]`, `isAssignableToRole` | false | true | 403 without `RoleManagement.ReadWrite.Directory` |
//! | synchronised from on-premises | `onPremisesSyncEnabled` | | | no: 400 |

use serde_json::{Map, Value, json};

/// A cloud security group: the only kind entra-sync may own.
pub fn security_group(name: &str) -> Value {
    json!({
        "displayName": name,
        "mailNickname": nickname(name),
        "mail": null,
        "mailEnabled": false,
        "securityEnabled": true,
        "groupTypes": [],
        "isAssignableToRole": null,
        "onPremisesSyncEnabled": null,
        "visibility": null,
    })
}

/// A Microsoft 365 group (`Unified`), with its mailbox address.
pub fn microsoft_365_group(name: &str, domain: &str) -> Value {
    with(
        with_mailbox(security_group(name), name, domain),
        json!({
            "securityEnabled": false,
            "groupTypes": ["Unified"],
            "visibility": "Private",
            "resourceProvisioningOptions": [],
        }),
    )
}

/// A security group whose members Entra computes from `rule`.
pub fn dynamic_group(name: &str, rule: &str) -> Value {
    with(
        security_group(name),
        json!({
            "groupTypes": ["DynamicMembership"],
            "membershipRule": rule,
            "membershipRuleProcessingState": "On",
        }),
    )
}

/// A mail-enabled security group (managed in Exchange; read-only through Graph).
pub fn mail_enabled_security_group(name: &str, domain: &str) -> Value {
    with_mailbox(security_group(name), name, domain)
}

/// A distribution group (managed in Exchange; read-only through Graph).
pub fn distribution_group(name: &str, domain: &str) -> Value {
    with(
        mail_enabled_security_group(name, domain),
        json!({"securityEnabled": false}),
    )
}

/// A security group Entra roles can be assigned to.
pub fn role_assignable_group(name: &str) -> Value {
    with(security_group(name), json!({"isAssignableToRole": true}))
}

/// A security group synchronised from on-premises Active Directory.
pub fn on_premises_group(name: &str) -> Value {
    with(
        security_group(name),
        json!({
            "onPremisesSyncEnabled": true,
            "onPremisesSamAccountName": nickname(name),
            "onPremisesDomainName": "corp.contoso.local",
            "onPremisesNetBiosName": "CORP",
            "onPremisesSecurityIdentifier": "S-1-5-21-1004336348-1177238915-682003330-1104",
            "onPremisesLastSyncDateTime": "2026-01-05T08:00:00Z",
        }),
    )
}

/// A user synchronised from on-premises Active Directory.
pub fn on_premises_user(upn: &str) -> Value {
    let alias = upn.split('@').next().unwrap_or(upn);
    json!({
        "userPrincipalName": upn,
        "displayName": alias,
        "mailNickname": alias,
        "mail": upn,
        "accountEnabled": true,
        "onPremisesSyncEnabled": true,
        "onPremisesImmutableId": "mV0mdPlCHEOwHVqXk3hkFA==",
        "onPremisesSamAccountName": alias,
        "onPremisesUserPrincipalName": upn,
        "onPremisesDomainName": "corp.contoso.local",
        "onPremisesDistinguishedName": format!("CN={alias},OU=Staff,DC=corp,DC=contoso,DC=local"),
        "onPremisesLastSyncDateTime": "2026-01-05T08:00:00Z",
    })
}

/// A mail nickname from a name: its ASCII letters and digits.
fn nickname(name: &str) -> String {
    name.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// `base` with `changes` written over it.
/// `group` with a mailbox at `{nickname}@{domain}`.
fn with_mailbox(group: Value, name: &str, domain: &str) -> Value {
    let nick = nickname(name);
    with(
        group,
        json!({
            "mail": format!("{nick}@{domain}"),
            "mailEnabled": true,
            "proxyAddresses": [format!("SMTP:{nick}@{domain}")],
        }),
    )
}

fn with(base: Value, changes: Value) -> Value {
    let mut object: Map<String, Value> = match base {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    if let Value::Object(changes) = changes {
        object.extend(changes);
    }
    Value::Object(object)
}
