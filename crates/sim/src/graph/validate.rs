//! Validation of user and group bodies, with Graph's statuses and messages
//! (`microsoft-graph.md` §3.2, §4.1, §5.1). An independent implementation: the
//! simulator does not share code with the product it tests.

use super::error::SimError;
use super::properties::{GROUP_PROPERTIES, Kind, USER_PROPERTIES};
use serde_json::{Map, Value};

/// Properties required on `POST /users`.
const USER_REQUIRED: &[&str] = &[
    "accountEnabled",
    "displayName",
    "mailNickname",
    "passwordProfile",
    "userPrincipalName",
];
/// Properties required on `POST /groups`.
const GROUP_REQUIRED: &[&str] = &[
    "displayName",
    "mailEnabled",
    "mailNickname",
    "securityEnabled",
];
/// The properties of the complex type `passwordProfile`.
const PASSWORD_PROFILE: &[&str] = &[
    "forceChangePasswordNextSignIn",
    "forceChangePasswordNextSignInWithMfa",
    "password",
];
/// Maximum lengths of user string properties (user.md).
const USER_MAX_LEN: &[(&str, usize)] = &[
    ("displayName", 256),
    ("givenName", 64),
    ("surname", 64),
    ("jobTitle", 128),
    ("department", 64),
    ("companyName", 64),
    ("city", 128),
    ("state", 128),
    ("country", 128),
    ("postalCode", 40),
    ("streetAddress", 1024),
    ("employeeId", 16),
    ("mobilePhone", 64),
];
/// Properties Graph computes; a client may not write them.
const READ_ONLY: &[&str] = &["id", "createdDateTime", "deletedDateTime"];

/// Which directory type a body is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    User,
    Group,
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Resource::User => "User",
            Resource::Group => "Group",
        }
    }

    fn odata_type(self) -> &'static str {
        match self {
            Resource::User => "microsoft.graph.user",
            Resource::Group => "microsoft.graph.group",
        }
    }

    fn properties(self) -> &'static [(&'static str, Kind)] {
        match self {
            Resource::User => USER_PROPERTIES,
            Resource::Group => GROUP_PROPERTIES,
        }
    }
}

/// Checks a create (`create = true`) or PATCH body of a user.
pub(crate) fn user(
    body: &Map<String, Value>,
    create: bool,
    domains: &[String],
) -> Result<(), SimError> {
    known_properties(body, Resource::User)?;
    if create {
        required(body, USER_REQUIRED, Resource::User)?;
    }
    for (property, max) in USER_MAX_LEN {
        if let Some(Value::String(s)) = body.get(*property)
            && s.chars().count() > *max
        {
            return Err(SimError::invalid_value(property, "User"));
        }
    }
    if let Some(v) = body.get("displayName")
        && v.as_str().is_none_or(|s| s.trim().is_empty())
    {
        return Err(SimError::invalid_value("displayName", "User"));
    }
    if let Some(v) = body.get("mailNickname") {
        mail_nickname(v, Resource::User)?;
    }
    if let Some(v) = body.get("userPrincipalName") {
        upn(v, domains)?;
    }
    if let Some(v) = body.get("passwordProfile") {
        password_profile(v, create)?;
    }
    Ok(())
}

/// Checks a create (`create = true`) or PATCH body of a group, without `members@odata.bind`.
pub(crate) fn group(body: &Map<String, Value>, create: bool) -> Result<(), SimError> {
    known_properties(body, Resource::Group)?;
    if create {
        required(body, GROUP_REQUIRED, Resource::Group)?;
    }
    if let Some(v) = body.get("displayName")
        && v.as_str()
            .is_none_or(|s| s.trim().is_empty() || s.chars().count() > 256)
    {
        return Err(SimError::invalid_value("displayName", "Group"));
    }
    if let Some(v) = body.get("mailNickname") {
        mail_nickname(v, Resource::Group)?;
    }
    if create {
        let unified = body
            .get("groupTypes")
            .and_then(Value::as_array)
            .is_some_and(|types| types.iter().any(|t| t.as_str() == Some("Unified")));
        if body.get("mailEnabled") == Some(&Value::Bool(true)) && !unified {
            return Err(SimError::bad_request(
                "The service does not currently support writes of mail-enabled groups. Please ensure that the mail-enablement property is unset or is set to false.",
            ));
        }
    }
    Ok(())
}

fn known_properties(body: &Map<String, Value>, resource: Resource) -> Result<(), SimError> {
    let table = resource.properties();
    for (name, value) in body {
        if name == "@odata.type" {
            continue;
        }
        let Ok(i) = table.binary_search_by(|(p, _)| p.cmp(&name.as_str())) else {
            return Err(SimError::bad_request(format!(
                "Property '{name}' does not exist on type '{}'. Make sure to only use property names that are defined by the type.",
                resource.odata_type()
            )));
        };
        if READ_ONLY.contains(&name.as_str()) {
            return Err(SimError::bad_request(format!(
                "Property '{name}' is read-only and cannot be set."
            )));
        }
        let ok = matches!(
            (table[i].1, value),
            (_, Value::Null)
                | (Kind::Any, _)
                | (Kind::Bool, Value::Bool(_))
                | (Kind::String, Value::String(_))
                | (Kind::Number, Value::Number(_))
                | (Kind::Object, Value::Object(_))
                | (Kind::List, Value::Array(_))
        );
        if !ok {
            return Err(SimError::bad_request(format!(
                "Cannot convert the literal '{value}' to the expected type of property '{name}'."
            )));
        }
    }
    Ok(())
}

fn required(body: &Map<String, Value>, names: &[&str], resource: Resource) -> Result<(), SimError> {
    for name in names {
        if body.get(*name).is_none_or(Value::is_null) {
            return Err(SimError::bad_request(format!(
                "A value is required for property '{name}' of resource '{}'.",
                resource.name()
            )));
        }
    }
    Ok(())
}

/// ASCII 0–127 except `@ ( ) \ [ ] " ; : < > ,` and space; 1 to 64 characters.
fn mail_nickname(value: &Value, resource: Resource) -> Result<(), SimError> {
    const FORBIDDEN: &[char] = &[
        '@', '(', ')', '\\', '[', ']', '"', ';', ':', '<', '>', ',', ' ',
    ];
    let ok = value.as_str().is_some_and(|s| {
        !s.is_empty()
            && s.chars().count() <= 64
            && s.chars()
                .all(|c| c.is_ascii() && !c.is_ascii_control() && !FORBIDDEN.contains(&c))
    });
    if ok {
        Ok(())
    } else {
        Err(SimError::invalid_value("mailNickname", resource.name()))
    }
}

/// `alias@domain`: allowed characters, lengths 64 / 48 / 113, no `.` before `@`,
/// and a verified domain.
fn upn(value: &Value, domains: &[String]) -> Result<(), SimError> {
    const SYMBOLS: &[char] = &['\'', '.', '-', '_', '!', '#', '^', '~'];
    let invalid = || SimError::bad_request("Property userPrincipalName is invalid.");
    let s = value.as_str().ok_or_else(invalid)?;
    let (alias, domain) = s.split_once('@').ok_or_else(invalid)?;
    let alias_ok = !alias.is_empty()
        && alias.len() <= 64
        && !alias.ends_with('.')
        && alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || SYMBOLS.contains(&c));
    let domain_ok = !domain.is_empty()
        && domain.len() <= 48
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    if !alias_ok || !domain_ok || s.len() > 113 {
        return Err(invalid());
    }
    if !domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
        return Err(SimError::bad_request(
            "The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization.",
        ));
    }
    Ok(())
}

fn password_profile(value: &Value, create: bool) -> Result<(), SimError> {
    let Some(profile) = value.as_object() else {
        return Err(SimError::invalid_value("passwordProfile", "User"));
    };
    if let Some(name) = profile
        .keys()
        .find(|k| !PASSWORD_PROFILE.contains(&k.as_str()))
    {
        return Err(SimError::bad_request(format!(
            "Property '{name}' does not exist on type 'microsoft.graph.passwordProfile'."
        )));
    }
    match profile.get("password") {
        Some(Value::String(p)) if password_complex(p) => Ok(()),
        None if !create => Ok(()),
        _ => Err(SimError::bad_request(
            "The specified password does not comply with password complexity requirements. Please provide a different password.",
        )),
    }
}

/// 8–256 ASCII characters from at least three of: lower case, upper case, digits, symbols.
fn password_complex(p: &str) -> bool {
    let len = p.chars().count();
    if !(8..=256).contains(&len) || !p.is_ascii() {
        return false;
    }
    let classes = [
        p.chars().any(|c| c.is_ascii_lowercase()),
        p.chars().any(|c| c.is_ascii_uppercase()),
        p.chars().any(|c| c.is_ascii_digit()),
        p.chars().any(|c| c.is_ascii_punctuation() || c == ' '),
    ];
    classes.iter().filter(|c| **c).count() >= 3
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn domains() -> Vec<String> {
        vec!["contoso.com".into()]
    }

    fn valid_user() -> Map<String, Value> {
        json!({
            "accountEnabled": true,
            "displayName": "Adele Vance",
            "mailNickname": "AdeleV",
            "userPrincipalName": "AdeleV@contoso.com",
            "passwordProfile": {"forceChangePasswordNextSignIn": true, "password": "xWwvJ]6NMw+bWH-d"}
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    fn with(mut body: Map<String, Value>, key: &str, value: Value) -> Map<String, Value> {
        body.insert(key.into(), value);
        body
    }

    fn message(r: Result<(), SimError>) -> String {
        r.expect_err("should be rejected").message
    }

    #[test]
    fn property_tables_are_sorted_for_binary_search() {
        for table in [USER_PROPERTIES, GROUP_PROPERTIES] {
            assert!(table.windows(2).all(|w| w[0].0 < w[1].0));
        }
    }

    /// Microsoft's property names and types, extracted into the repository
    /// (`testdata/graph-schema/README.md` says from where).
    const SCHEMA: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/graph-schema/user-group-v1.0.json"
    ));

    /// The JSON kind of an EDM type; `complex` names the complex types.
    fn kind_of(edm: &str, complex: &[&str]) -> Kind {
        match edm {
            _ if edm.starts_with("Collection(") => Kind::List,
            "Edm.Boolean" => Kind::Bool,
            "Edm.String" | "Edm.DateTimeOffset" | "Edm.Guid" | "Edm.Binary" | "Edm.Date" => {
                Kind::String
            }
            _ if edm.starts_with("Edm.Int") || edm == "Edm.Double" => Kind::Number,
            _ if complex.contains(&edm) => Kind::Object,
            _ => Kind::Any,
        }
    }

    /// The simulator's property lists agree with Microsoft's schema, names and kinds.
    #[test]
    fn property_lists_match_the_reference_schema() {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        let complex: Vec<&str> = schema["complexTypes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for (entity, list) in [("user", USER_PROPERTIES), ("group", GROUP_PROPERTIES)] {
            let want: Vec<(&str, Kind)> = schema[entity]
                .as_object()
                .unwrap()
                .iter()
                .map(|(name, edm)| (name.as_str(), kind_of(edm.as_str().unwrap(), &complex)))
                .collect();
            assert_eq!(list, want.as_slice(), "{entity}");
        }
        let profile = schema["passwordProfile"].as_object().unwrap();
        assert_eq!(
            profile.keys().map(String::as_str).collect::<Vec<_>>(),
            PASSWORD_PROFILE
        );
    }

    #[test]
    fn a_valid_user_passes_create_and_patch() {
        assert_eq!(user(&valid_user(), true, &domains()), Ok(()));
        let patch = json!({"displayName": "New"}).as_object().cloned().unwrap();
        assert_eq!(user(&patch, false, &domains()), Ok(()));
    }

    #[test]
    fn every_required_user_property_is_required_on_create_only() {
        for name in USER_REQUIRED {
            let mut body = valid_user();
            body.remove(*name);
            let m = message(user(&body, true, &domains()));
            assert_eq!(
                m,
                format!("A value is required for property '{name}' of resource 'User'.")
            );
            assert_eq!(user(&body, false, &domains()), Ok(()));
        }
    }

    #[test]
    fn every_required_group_property_is_required() {
        let valid = json!({"displayName": "G", "mailEnabled": false, "mailNickname": "g", "securityEnabled": true});
        let valid = valid.as_object().cloned().unwrap();
        assert_eq!(group(&valid, true), Ok(()));
        for name in GROUP_REQUIRED {
            let mut body = valid.clone();
            body.remove(*name);
            assert!(message(group(&body, true)).contains(&format!("'{name}'")));
        }
    }

    #[test]
    fn upn_rules() {
        let bad = [
            "no-at-sign",
            "two@@contoso.com",
            "dot.@contoso.com",
            "spa ce@contoso.com",
            "accént@contoso.com",
            "@contoso.com",
        ];
        for upn in bad {
            let e = user(
                &with(valid_user(), "userPrincipalName", json!(upn)),
                true,
                &domains(),
            )
            .unwrap_err();
            assert_eq!(
                (e.status, e.message.as_str()),
                (400, "Property userPrincipalName is invalid."),
                "{upn}"
            );
        }
        let long_alias = format!("{}@contoso.com", "a".repeat(65));
        assert!(
            user(
                &with(valid_user(), "userPrincipalName", json!(long_alias)),
                true,
                &domains()
            )
            .is_err()
        );
        let ok = format!("{}@contoso.com", "a".repeat(64));
        assert_eq!(
            user(
                &with(valid_user(), "userPrincipalName", json!(ok)),
                true,
                &domains()
            ),
            Ok(())
        );
        let long_domain = format!("a@{}.com", "d".repeat(45));
        let long_domains = vec![long_domain.split_once('@').unwrap().1.to_string()];
        assert!(
            user(
                &with(valid_user(), "userPrincipalName", json!(long_domain)),
                true,
                &long_domains
            )
            .is_err()
        );
        let symbols = "o'neil.x-y_z!#^~@contoso.com";
        assert_eq!(
            user(
                &with(valid_user(), "userPrincipalName", json!(symbols)),
                true,
                &domains()
            ),
            Ok(())
        );
        let m = message(user(
            &with(valid_user(), "userPrincipalName", json!("a@fabrikam.com")),
            true,
            &domains(),
        ));
        assert!(m.contains("verified domain"), "{m}");
    }

    #[test]
    fn mail_nickname_rules() {
        for bad in ["has space", "a@b", "(x)", "semi;colon", "é", ""] {
            let m = message(user(
                &with(valid_user(), "mailNickname", json!(bad)),
                true,
                &domains(),
            ));
            assert_eq!(
                m,
                "Invalid value specified for property 'mailNickname' of resource 'User'."
            );
        }
        let long = "n".repeat(65);
        assert!(
            user(
                &with(valid_user(), "mailNickname", json!(long)),
                true,
                &domains()
            )
            .is_err()
        );
        assert_eq!(
            user(
                &with(valid_user(), "mailNickname", json!("n".repeat(64))),
                true,
                &domains()
            ),
            Ok(())
        );
        let g = json!({"mailNickname": "bad nick"})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(
            message(group(&g, false)),
            "Invalid value specified for property 'mailNickname' of resource 'Group'."
        );
    }

    #[test]
    fn display_name_rules() {
        assert!(
            user(
                &with(valid_user(), "displayName", json!("d".repeat(257))),
                true,
                &domains()
            )
            .is_err()
        );
        assert_eq!(
            user(
                &with(valid_user(), "displayName", json!("d".repeat(256))),
                true,
                &domains()
            ),
            Ok(())
        );
        let clear = json!({"displayName": null}).as_object().cloned().unwrap();
        assert!(user(&clear, false, &domains()).is_err());
        let g = json!({"displayName": "g".repeat(257)})
            .as_object()
            .cloned()
            .unwrap();
        assert!(group(&g, false).is_err());
        assert!(
            user(
                &with(valid_user(), "givenName", json!("g".repeat(65))),
                true,
                &domains()
            )
            .is_err()
        );
    }

    #[test]
    fn password_complexity() {
        for bad in ["short1A", "alllowercase", "nouppercase1", "ÄÖÜäöü123abc"] {
            let body = with(valid_user(), "passwordProfile", json!({"password": bad}));
            assert!(
                message(user(&body, true, &domains())).contains("password complexity"),
                "{bad}"
            );
        }
        for good in ["Abcdefg1", "abcdefg1!", "ABCDEFG1!"] {
            let body = with(valid_user(), "passwordProfile", json!({"password": good}));
            assert_eq!(user(&body, true, &domains()), Ok(()), "{good}");
        }
        let body = with(
            valid_user(),
            "passwordProfile",
            json!({"password": "Abcdefg1", "pin": 1}),
        );
        assert!(user(&body, true, &domains()).is_err());
    }

    #[test]
    fn unknown_and_mistyped_properties_are_rejected() {
        let m = message(user(
            &with(valid_user(), "favouriteColour", json!("red")),
            true,
            &domains(),
        ));
        assert!(m.starts_with(
            "Property 'favouriteColour' does not exist on type 'microsoft.graph.user'"
        ));
        assert!(
            user(
                &with(valid_user(), "accountEnabled", json!("yes")),
                true,
                &domains()
            )
            .is_err()
        );
        assert!(user(&with(valid_user(), "id", json!("x")), true, &domains()).is_err());
        let g = json!({"members": []}).as_object().cloned().unwrap();
        assert!(message(group(&g, false)).contains("microsoft.graph.group"));
    }

    #[test]
    fn mail_enabled_security_and_distribution_groups_are_refused() {
        for (mail, security) in [(true, true), (true, false)] {
            let g = json!({"displayName": "G", "mailEnabled": mail, "mailNickname": "g", "securityEnabled": security});
            assert!(message(group(g.as_object().unwrap(), true)).contains("mail-enabled"));
        }
        let unified = json!({"displayName": "G", "mailEnabled": true, "mailNickname": "g", "securityEnabled": false, "groupTypes": ["Unified"]});
        assert_eq!(group(unified.as_object().unwrap(), true), Ok(()));
    }
}
