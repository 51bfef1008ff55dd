//! The default mappings, with authentik's meaning:
//! user `displayName` = name, `accountEnabled` = is_active, `mailNickname` =
//! username made valid for Graph, `userPrincipalName` = email; on create only,
//! a random `passwordProfile` and `onPremisesImmutableId` = uid. Group
//! `displayName` = name, a security group, `mailNickname` = a slug of the name.

use super::Subject;
use crate::authentik::{AkGroup, AkUser};
use crate::diff::Body;
use crate::ids::{MailNickname, is_mail_nickname_char};
use crate::password::random_password;
use rand::Rng;
use serde_json::{Value, json};

/// The name under which the default mapping reports errors.
pub const DEFAULT_MAPPING: &str = "default";

/// User properties sent only when the user is created, never patched.
pub const USER_CREATE_ONLY: &[&str] = &["passwordProfile", "onPremisesImmutableId"];

/// Group properties sent only when the group is created, never patched.
pub const GROUP_CREATE_ONLY: &[&str] = &["uniqueName", "isAssignableToRole", "groupTypes"];

/// The default body for an object, before custom mappings.
pub fn body(subject: &Subject<'_>) -> Body {
    match subject {
        Subject::User(user) => user_body(user),
        Subject::Group(group) => group_body(group),
    }
}

/// The default user body (without the create-only properties).
pub fn user_body(user: &AkUser) -> Body {
    let display_name = if user.name.trim().is_empty() {
        &user.username
    } else {
        &user.name
    };
    let body = json!({
        "displayName": display_name,
        "accountEnabled": user.is_active,
        "mailNickname": user_mail_nickname(&user.username),
        "userPrincipalName": user.email,
    });
    into_body(body)
}

/// The default group body.
pub fn group_body(group: &AkGroup) -> Body {
    into_body(json!({
        "displayName": group.name,
        "mailEnabled": false,
        "securityEnabled": true,
        "mailNickname": slug(&group.name, "group"),
    }))
}

/// Adds `onPremisesImmutableId` = authentik `uid` unless the mappings set it:
/// a create-only property, so it is part of the desired body but never patched.
pub fn add_user_immutable_id(body: &mut Body, user: &AkUser) {
    const KEY: &str = "onPremisesImmutableId";
    if !user.uid.is_empty() && body.get(KEY).is_none_or(Value::is_null) {
        body.insert(KEY.into(), Value::String(user.uid.clone()));
    }
}

/// Adds a random initial password meeting Entra's rules unless the mappings
/// set one: made for a create only, and never stored.
pub fn add_initial_password(body: &mut Body, rng: &mut impl Rng) {
    let profile = body.entry("passwordProfile").or_insert_with(|| json!({}));
    if let Value::Object(profile) = profile {
        profile
            .entry("password")
            .or_insert_with(|| Value::String(random_password(rng)));
        profile
            .entry("forceChangePasswordNextSignIn")
            .or_insert(Value::Bool(false));
    }
}

/// A username made valid as a `mailNickname`: transliterated to ASCII, with
/// refused characters replaced by `_`, at most 64 characters.
pub fn user_mail_nickname(username: &str) -> String {
    let ascii = deunicode::deunicode(username);
    let cleaned: String = ascii
        .chars()
        .map(|c| if is_mail_nickname_char(c) { c } else { '_' })
        .take(MailNickname::MAX_LEN)
        .collect();
    if cleaned.trim_matches('_').is_empty() {
        "user".to_owned()
    } else {
        cleaned
    }
}

/// A slug as Django's `slugify` makes it: ASCII, lower case, runs of spaces
/// and dashes become one `-`, only letters, digits, `_` and `-` kept; at most
/// 64 characters. `fallback` when nothing is left.
pub fn slug(text: &str, fallback: &str) -> String {
    let ascii = deunicode::deunicode(text).to_lowercase();
    let mut out = String::with_capacity(ascii.len());
    for c in ascii.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else if (c.is_whitespace() || c == '-') && !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed: String = out
        .trim_matches(|c| c == '-' || c == '_')
        .chars()
        .take(MailNickname::MAX_LEN)
        .collect();
    let trimmed = trimmed.trim_end_matches('-').to_owned();
    if trimmed.is_empty() {
        fallback.to_owned()
    } else {
        trimmed
    }
}

fn into_body(value: Value) -> Body {
    match value {
        Value::Object(map) => map,
        _ => Body::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::meets_complexity;
    use rand::SeedableRng;

    fn user(v: Value) -> AkUser {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn default_user_body_has_authentiks_meaning() {
        let u = user(
            json!({"pk": 1, "username": "adele", "name": "Adele Vance", "email": "adele@contoso.com", "is_active": false, "uid": "abc"}),
        );
        assert_eq!(
            Value::Object(user_body(&u)),
            json!({"displayName": "Adele Vance", "accountEnabled": false, "mailNickname": "adele", "userPrincipalName": "adele@contoso.com"})
        );
    }

    #[test]
    fn create_adds_a_random_password_never_the_hash() {
        let u = user(
            json!({"pk": 1, "username": "adele", "uid": "f00d", "password": "pbkdf2_sha256$600000$x"}),
        );
        let mut body = user_body(&u);
        add_user_immutable_id(&mut body, &u);
        add_initial_password(&mut body, &mut rand::rngs::StdRng::seed_from_u64(1));
        let password = body["passwordProfile"]["password"].as_str().unwrap();
        assert!(meets_complexity(password));
        assert!(!password.contains("pbkdf2"));
        assert_eq!(body["onPremisesImmutableId"], "f00d");
    }

    #[test]
    fn create_only_properties_the_mappings_set_are_kept() {
        let u = user(json!({"pk": 1, "username": "adele", "uid": "f00d"}));
        let mut body = into_body(json!({
            "onPremisesImmutableId": "mapped",
            "passwordProfile": {"password": "Mapped-1234"},
        }));
        add_user_immutable_id(&mut body, &u);
        add_initial_password(&mut body, &mut rand::rngs::StdRng::seed_from_u64(1));
        assert_eq!(body["onPremisesImmutableId"], "mapped");
        assert_eq!(body["passwordProfile"]["password"], "Mapped-1234");
        let mut unset = into_body(json!({"onPremisesImmutableId": null}));
        add_user_immutable_id(&mut unset, &u);
        assert_eq!(
            unset["onPremisesImmutableId"], "f00d",
            "null counts as unset"
        );
    }

    #[test]
    fn nickname_is_made_valid() {
        assert_eq!(user_mail_nickname("jürgen müller"), "jurgen_muller");
        assert_eq!(user_mail_nickname("a@b(c)"), "a_b_c_");
        assert_eq!(user_mail_nickname("李"), "Li");
        assert_eq!(user_mail_nickname("@@@"), "user");
        assert_eq!(user_mail_nickname(&"x".repeat(100)).len(), 64);
        for name in ["jürgen müller", "a@b(c)", "🦀", "Ǆemal \"q\" <x>"] {
            assert!(
                MailNickname::parse(&user_mail_nickname(name)).is_ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn group_body_is_a_security_group_with_a_slug() {
        let g: AkGroup = serde_json::from_value(
            json!({"pk": uuid::Uuid::from_u128(1), "name": "Sales & Marketing — EMEA"}),
        )
        .unwrap();
        assert_eq!(
            Value::Object(group_body(&g)),
            json!({"displayName": "Sales & Marketing — EMEA", "mailEnabled": false, "securityEnabled": true, "mailNickname": "sales-marketing-emea"})
        );
        assert_eq!(slug("!!!", "group"), "group");
        assert!(slug(&"long name ".repeat(20), "group").len() <= 64);
    }
}
