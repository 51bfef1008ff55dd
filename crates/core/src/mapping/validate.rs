//! Checks a merged body against Graph's schema and rules before anything is sent.
//!
//! A property Graph doesn't know, or a value of the wrong JSON type, is the
//! mapping's fault: a [`MappingError`] naming it. A value Graph would refuse
//! (an over-long name, a UPN on an unverified domain) is the object's fault: an
//! [`InvalidBody`], a permanent failure of that object only.

use super::graph_properties::{GROUP_PROPERTIES, JsonKind, USER_PROPERTIES};
use super::merge::Merged;
use super::{AppliesTo, MappingError, MappingErrorKind};
use crate::diff::Body;
use crate::ids::{DisplayName, MailNickname, UserPrincipalName};
use serde_json::Value;

/// A property value Graph would refuse for this object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("property {property} is invalid: {reason}")]
pub struct InvalidBody {
    /// The Graph property at fault.
    pub property: String,
    /// What is wrong.
    pub reason: String,
}

/// Properties Graph sets itself; a mapping may not.
const READ_ONLY: &[&str] = &["id", "createdDateTime", "deletedDateTime"];

/// Turns authentik-style snake_case keys (`display_name`) into Graph's camelCase
/// (`displayName`), recursively; camelCase keys and `@odata` keys pass unchanged.
pub fn normalise_keys(body: Body) -> Body {
    body.into_iter()
        .map(|(k, v)| (camel_case(&k), normalise_value(v)))
        .collect()
}

fn normalise_value(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(normalise_keys(map)),
        other => other,
    }
}

fn camel_case(key: &str) -> String {
    if !key.contains('_') || key.starts_with('@') || key.contains('.') {
        return key.to_owned();
    }
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn kind_matches(kind: JsonKind, value: &Value) -> bool {
    matches!(
        (kind, value),
        (_, Value::Null)
            | (JsonKind::Any, _)
            | (JsonKind::Bool, Value::Bool(_))
            | (JsonKind::String, Value::String(_))
            | (JsonKind::Number, Value::Number(_))
            | (JsonKind::Object, Value::Object(_))
            | (JsonKind::List, Value::Array(_))
    )
}

/// Checks every property of a merged body; see the module docs for who is at fault.
pub fn check(
    applies_to: AppliesTo,
    merged: &Merged,
    verified_domains: &[String],
) -> Result<(), super::MapFailure> {
    let (schema, what) = match applies_to {
        AppliesTo::User => (USER_PROPERTIES, "user"),
        AppliesTo::Group => (GROUP_PROPERTIES, "group"),
    };
    let body = merged.body();
    for (key, value) in body {
        let mapping_error = |message: String| MappingError {
            mapping: merged.origin(key).to_owned(),
            kind: MappingErrorKind::BadResult,
            line: None,
            column: None,
            message,
        };
        if READ_ONLY.contains(&key.as_str()) {
            return Err(
                mapping_error(format!("{key} is read-only in Graph and cannot be set")).into(),
            );
        }
        let Ok(i) = schema.binary_search_by(|(name, _)| name.cmp(&key.as_str())) else {
            return Err(mapping_error(format!("{key} is not a property of a Graph {what}")).into());
        };
        let kind = schema[i].1;
        if !kind_matches(kind, value) {
            return Err(mapping_error(format!("{key} must be {kind:?}, not {value}")).into());
        }
    }
    check_values(applies_to, body, verified_domains).map_err(Into::into)
}

fn check_values(
    applies_to: AppliesTo,
    body: &Body,
    verified_domains: &[String],
) -> Result<(), InvalidBody> {
    let invalid = |property: &str, reason: String| InvalidBody {
        property: property.to_owned(),
        reason,
    };
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    if let Some(name) = text("displayName") {
        DisplayName::parse(name).map_err(|e| invalid("displayName", e.reason))?;
    }
    if let Some(nick) = text("mailNickname") {
        MailNickname::parse(nick).map_err(|e| invalid("mailNickname", e.reason))?;
    }
    if applies_to == AppliesTo::User
        && let Some(upn) = body.get("userPrincipalName")
    {
        let upn = upn.as_str().unwrap_or_default();
        let parsed =
            UserPrincipalName::parse(upn).map_err(|e| invalid("userPrincipalName", e.reason))?;
        if !verified_domains.is_empty() {
            parsed
                .check_domain(verified_domains)
                .map_err(|e| invalid("userPrincipalName", e.reason))?;
        }
    }
    if applies_to == AppliesTo::Group && body.get("mailEnabled") == Some(&Value::Bool(true)) {
        let unified = body
            .get("groupTypes")
            .and_then(Value::as_array)
            .is_some_and(|t| t.iter().any(|t| t == "Unified"));
        if !unified {
            return Err(invalid(
                "mailEnabled",
                "mail-enabled security and distribution groups cannot be managed through Graph"
                    .into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::MapFailure;
    use super::*;
    use serde_json::json;

    fn merged(v: Value, by: &str) -> Merged {
        Merged::new(v.as_object().cloned().unwrap(), by)
    }

    #[test]
    fn snake_case_keys_become_graph_names() {
        let b = normalise_keys(
            json!({"display_name": "x", "password_profile": {"force_change_password_next_sign_in": true}, "mailNickname": "m", "@odata.type": "t"})
                .as_object()
                .cloned()
                .unwrap(),
        );
        assert_eq!(
            Value::Object(b),
            json!({"displayName": "x", "passwordProfile": {"forceChangePasswordNextSignIn": true}, "mailNickname": "m", "@odata.type": "t"})
        );
    }

    #[test]
    fn unknown_property_names_the_mapping() {
        let err = check(
            AppliesTo::User,
            &merged(json!({"departmnt": "x"}), "20-department"),
            &[],
        )
        .unwrap_err();
        let MapFailure::Mapping(e) = err else {
            panic!("{err:?}")
        };
        assert_eq!(e.mapping, "20-department");
        assert!(
            e.to_string()
                .contains("departmnt is not a property of a Graph user"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_names_the_mapping() {
        let err = check(
            AppliesTo::User,
            &merged(json!({"accountEnabled": "yes"}), "m1"),
            &[],
        )
        .unwrap_err();
        assert!(
            matches!(err, MapFailure::Mapping(ref e) if e.mapping == "m1"),
            "{err:?}"
        );
    }

    #[test]
    fn bad_values_are_the_objects_fault() {
        let domains = vec!["contoso.com".to_owned()];
        for (body, property) in [
            (json!({"displayName": "x".repeat(257)}), "displayName"),
            (json!({"mailNickname": "a b"}), "mailNickname"),
            (
                json!({"userPrincipalName": "a@fabrikam.com"}),
                "userPrincipalName",
            ),
            (json!({"userPrincipalName": ""}), "userPrincipalName"),
        ] {
            let err = check(AppliesTo::User, &merged(body, "default"), &domains).unwrap_err();
            assert!(
                matches!(err, MapFailure::Invalid(ref e) if e.property == property),
                "{err:?}"
            );
        }
        let err = check(
            AppliesTo::Group,
            &merged(
                json!({"mailEnabled": true, "securityEnabled": true}),
                "default",
            ),
            &[],
        )
        .unwrap_err();
        assert!(
            matches!(err, MapFailure::Invalid(ref e) if e.property == "mailEnabled"),
            "{err:?}"
        );
    }

    /// Microsoft's property names and types, extracted into the repository
    /// (`testdata/graph-schema/README.md` says from where).
    const SCHEMA: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/graph-schema/user-group-v1.0.json"
    ));

    /// The JSON kind of an EDM type; `complex` names the complex types.
    fn kind_of(edm: &str, complex: &[&str]) -> JsonKind {
        match edm {
            _ if edm.starts_with("Collection(") => JsonKind::List,
            "Edm.Boolean" => JsonKind::Bool,
            "Edm.String" | "Edm.DateTimeOffset" | "Edm.Guid" | "Edm.Binary" | "Edm.Date" => {
                JsonKind::String
            }
            _ if edm.starts_with("Edm.Int") || edm == "Edm.Double" => JsonKind::Number,
            _ if complex.contains(&edm) => JsonKind::Object,
            _ => JsonKind::Any,
        }
    }

    /// The committed property tables agree with Microsoft's schema, names and kinds.
    #[test]
    fn property_list_matches_the_reference_schema() {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        let complex: Vec<&str> = schema["complexTypes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for (entity, list) in [("user", USER_PROPERTIES), ("group", GROUP_PROPERTIES)] {
            let want: Vec<(&str, JsonKind)> = schema[entity]
                .as_object()
                .unwrap()
                .iter()
                .map(|(name, edm)| (name.as_str(), kind_of(edm.as_str().unwrap(), &complex)))
                .collect();
            assert_eq!(list, want.as_slice(), "{entity}");
        }
    }
}
