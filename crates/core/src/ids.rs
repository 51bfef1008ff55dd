//! Newtypes that parse: once constructed, a value is valid for Microsoft Graph.
//!
//! The rules follow `microsoft-graph.md` §4.1 and §5.1.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Why a value was refused by one of the parsing constructors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct InvalidValue {
    /// The kind of value, e.g. `userPrincipalName`.
    pub what: &'static str,
    /// The refused value.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidValue {
    fn new(what: &'static str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            what,
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The id of an Entra directory object: a GUID, stored in lower case. Its
/// text is shared, so a clone costs no copy: reconciling a group of 100,000
/// members holds its ids in several sets at once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntraObjectId(Arc<str>);

impl EntraObjectId {
    /// Parses a GUID such as `9a3d…-…`; any case is accepted.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let mut text = uuid::Uuid::encode_buffer();
        uuid::Uuid::parse_str(value)
            .map(|u| Self(Arc::from(&*u.hyphenated().encode_lower(&mut text))))
            .map_err(|_| InvalidValue::new("Entra object id", value, "not a GUID"))
    }

    /// The id as Graph writes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EntraObjectId {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EntraObjectId> for String {
    fn from(id: EntraObjectId) -> Self {
        id.0.to_string()
    }
}

impl fmt::Display for EntraObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters Graph allows in a user principal name besides ASCII letters and digits.
const UPN_SYMBOLS: &[char] = &['\'', '.', '-', '_', '!', '#', '^', '~'];

/// A user principal name, `alias@domain`, valid by Graph's character and length rules.
///
/// Whether the domain is verified in the tenant is a separate check:
/// [`UserPrincipalName::check_domain`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserPrincipalName(String);

impl UserPrincipalName {
    /// Longest UPN Graph accepts.
    pub const MAX_LEN: usize = 113;
    /// Longest alias (the part before `@`).
    pub const MAX_ALIAS_LEN: usize = 64;
    /// Longest domain (the part after `@`).
    pub const MAX_DOMAIN_LEN: usize = 48;

    /// Parses a UPN by Graph's rules: one `@`, allowed characters only, no `.`
    /// right before the `@`, and the length limits.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let bad = |reason: &str| InvalidValue::new("userPrincipalName", value, reason);
        if value.len() > Self::MAX_LEN {
            return Err(bad("longer than 113 characters"));
        }
        let Some((alias, domain)) = value.split_once('@') else {
            return Err(bad("has no '@'"));
        };
        if domain.contains('@') {
            return Err(bad("has more than one '@'"));
        }
        if alias.is_empty() {
            return Err(bad("has an empty alias before '@'"));
        }
        if alias.len() > Self::MAX_ALIAS_LEN {
            return Err(bad("has more than 64 characters before '@'"));
        }
        if domain.len() > Self::MAX_DOMAIN_LEN {
            return Err(bad("has more than 48 characters after '@'"));
        }
        if alias.ends_with('.') {
            return Err(bad("has a '.' right before '@'"));
        }
        if let Some(c) = alias
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || UPN_SYMBOLS.contains(c)))
        {
            return Err(bad(&format!(
                "contains the character {c:?}, which Graph does not allow"
            )));
        }
        let labels_ok = domain.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
        if !labels_ok || !domain.contains('.') {
            return Err(bad("does not end in a valid domain name"));
        }
        Ok(Self(value.to_owned()))
    }

    /// The part after `@`.
    pub fn domain(&self) -> &str {
        self.0.split_once('@').map(|(_, d)| d).unwrap_or_default()
    }

    /// Checks that the domain is one of the tenant's verified domains (case-insensitive).
    pub fn check_domain<S: AsRef<str>>(&self, verified: &[S]) -> Result<(), InvalidValue> {
        let domain = self.domain();
        if verified
            .iter()
            .any(|d| d.as_ref().eq_ignore_ascii_case(domain))
        {
            Ok(())
        } else {
            Err(InvalidValue::new(
                "userPrincipalName",
                &self.0,
                format!("domain {domain:?} is not a verified domain of the tenant"),
            ))
        }
    }

    /// The UPN as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserPrincipalName {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<UserPrincipalName> for String {
    fn from(upn: UserPrincipalName) -> Self {
        upn.0
    }
}

impl fmt::Display for UserPrincipalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters Graph refuses in a `mailNickname`, besides non-ASCII and control characters.
const NICKNAME_FORBIDDEN: &[char] = &[
    '@', '(', ')', '\\', '[', ']', '"', ';', ':', '<', '>', ',', ' ',
];

/// Whether Graph accepts `c` in a `mailNickname`.
pub fn is_mail_nickname_char(c: char) -> bool {
    c.is_ascii() && !c.is_ascii_control() && !NICKNAME_FORBIDDEN.contains(&c)
}

/// A `mailNickname`: 1 to 64 printable ASCII characters without `@ () \ [] " ; : <> ,` or space.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MailNickname(String);

impl MailNickname {
    /// Longest `mailNickname` Graph accepts.
    pub const MAX_LEN: usize = 64;

    /// Parses a `mailNickname` by Graph's rules.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let bad = |reason: String| InvalidValue::new("mailNickname", value, reason);
        if value.is_empty() {
            return Err(bad("is empty".into()));
        }
        if value.len() > Self::MAX_LEN {
            return Err(bad("is longer than 64 characters".into()));
        }
        if let Some(c) = value.chars().find(|c| !is_mail_nickname_char(*c)) {
            return Err(bad(format!(
                "contains the character {c:?}, which Graph does not allow"
            )));
        }
        Ok(Self(value.to_owned()))
    }

    /// The nickname as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MailNickname {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<MailNickname> for String {
    fn from(n: MailNickname) -> Self {
        n.0
    }
}

/// A `displayName`: not empty, at most 256 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    /// Longest `displayName` Graph accepts.
    pub const MAX_LEN: usize = 256;

    /// Parses a display name by Graph's rules.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        if value.trim().is_empty() {
            return Err(InvalidValue::new("displayName", value, "is empty"));
        }
        if value.chars().count() > Self::MAX_LEN {
            return Err(InvalidValue::new(
                "displayName",
                value,
                "is longer than 256 characters",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DisplayName {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DisplayName> for String {
    fn from(n: DisplayName) -> Self {
        n.0
    }
}

/// The primary key of an authentik user (an integer in authentik's API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AkUserPk(pub i64);

impl fmt::Display for AkUserPk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The primary key of an authentik group (a UUID in authentik's API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AkGroupPk(pub uuid::Uuid);

impl fmt::Display for AkGroupPk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl AkGroupPk {
    /// The `uniqueName` of the Entra group entra-sync creates for this
    /// authentik group: derived from its UUID, so that every attempt to create
    /// it names the same group (Graph's upsert by `uniqueName`), and stable
    /// across renames.
    pub fn entra_unique_name(self) -> String {
        format!("entra-sync-{}", self.0.hyphenated())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upn_rules() {
        assert!(UserPrincipalName::parse("adele.vance@contoso.com").is_ok());
        assert!(UserPrincipalName::parse("a'b!c#d^e~f_g-h@contoso.co.uk").is_ok());
        for bad in [
            "no-at-sign",
            "two@@contoso.com",
            "a@b@contoso.com",
            "@contoso.com",
            "dot.@contoso.com",
            "jürgen@contoso.com",
            "space here@contoso.com",
            "x@localhost",
            "x@-bad.com",
        ] {
            assert!(
                UserPrincipalName::parse(bad).is_err(),
                "{bad} must be refused"
            );
        }
        let long_alias = format!("{}@contoso.com", "a".repeat(65));
        assert!(UserPrincipalName::parse(&long_alias).is_err());
        let max_alias = format!("{}@contoso.com", "a".repeat(64));
        assert!(UserPrincipalName::parse(&max_alias).is_ok());
        let long_domain = format!("a@{}.com", "d".repeat(45));
        assert!(UserPrincipalName::parse(&long_domain).is_err());
    }

    #[test]
    fn upn_domain_check_is_case_insensitive() {
        let upn = UserPrincipalName::parse("a@Contoso.com").unwrap();
        assert!(upn.check_domain(&["contoso.com"]).is_ok());
        let err = upn.check_domain(&["fabrikam.com"]).unwrap_err();
        assert!(err.to_string().contains("not a verified domain"), "{err}");
    }

    #[test]
    fn mail_nickname_rules() {
        assert!(MailNickname::parse("adele.vance_1-x").is_ok());
        assert!(MailNickname::parse(&"n".repeat(64)).is_ok());
        for bad in ["", "a b", "a@b", "a(b", "a;b", "ä", "a\u{7}"] {
            assert!(MailNickname::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(MailNickname::parse(&"n".repeat(65)).is_err());
    }

    #[test]
    fn display_name_rules() {
        assert!(DisplayName::parse("Adele").is_ok());
        assert!(DisplayName::parse(&"é".repeat(256)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(257)).is_err());
        assert!(DisplayName::parse("  ").is_err());
    }

    #[test]
    fn object_id_is_normalised() {
        let id = EntraObjectId::parse("9A3D0000-0000-0000-0000-00000000ABCD").unwrap();
        assert_eq!(id.as_str(), "9a3d0000-0000-0000-0000-00000000abcd");
        assert!(EntraObjectId::parse("not-a-guid").is_err());
    }
}
