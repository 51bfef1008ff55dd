//! Property mappings: the default mapping plus admin-written Starlark mappings,
//! merged in name order into the Graph body an object should have.

pub mod defaults;
pub mod engine;
pub mod graph_properties;
pub mod merge;
pub mod validate;

use crate::authentik::{AkGroup, AkUser};
use crate::diff::Body;
use crate::ids::EntraObjectId;
pub use engine::CompiledMapping;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which objects a mapping is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppliesTo {
    /// User mappings see `user` and `request.user`.
    User,
    /// Group mappings see `group`.
    Group,
}

/// What a mapping may read about the provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProviderInfo {
    /// Provider name.
    pub name: String,
    /// Entra tenant id.
    pub tenant_id: String,
    /// Entra application (client) id.
    pub client_id: String,
    /// The tenant's verified domains.
    pub domains: Vec<String>,
}

/// The link to the Entra object, as a mapping sees it (`connection`).
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    /// The Entra object id.
    pub entra_id: &'a EntraObjectId,
    /// The attributes we last wrote, with Graph's property names.
    pub attributes: &'a Body,
}

/// The object being mapped.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// An authentik user.
    User(&'a AkUser),
    /// An authentik group.
    Group(&'a AkGroup),
}

impl Subject<'_> {
    /// Which mappings apply.
    pub fn applies_to(&self) -> AppliesTo {
        match self {
            Self::User(_) => AppliesTo::User,
            Self::Group(_) => AppliesTo::Group,
        }
    }
}

/// Everything a mapping can read.
#[derive(Debug, Clone, Copy)]
pub struct MappingInput<'a> {
    /// The user or group.
    pub subject: Subject<'a>,
    /// The provider.
    pub provider: &'a ProviderInfo,
    /// The link, or `None` before the first write.
    pub connection: Option<Connection<'a>>,
}

/// What one mapping returned.
#[derive(Debug, Clone, PartialEq)]
pub enum MappingOutput {
    /// A dict of properties to merge.
    Body(Body),
    /// `None`: the mapping contributes nothing.
    Nothing,
    /// The mapping asked to skip this object (`skip_object()`).
    Skip,
}

/// How a mapping failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MappingErrorKind {
    /// The expression does not parse or compile.
    Compile,
    /// The expression failed while running.
    Runtime,
    /// The expression hit the instruction or memory limit.
    Limit,
    /// The expression returned something that is not a valid Graph body.
    BadResult,
}

impl fmt::Display for MappingErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Compile => "does not compile",
            Self::Runtime => "failed",
            Self::Limit => "exceeded its limit",
            Self::BadResult => "returned an invalid result",
        })
    }
}

/// A mapping error. It is a configuration failure: it names the mapping and,
/// where known, the line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct MappingError {
    /// The mapping's name (`default` for the built-in one).
    pub mapping: String,
    /// What went wrong.
    pub kind: MappingErrorKind,
    /// 1-based line in the mapping's expression, if known.
    pub line: Option<u32>,
    /// 1-based column, if known.
    pub column: Option<u32>,
    /// The engine's message.
    pub message: String,
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "property mapping {:?} {}", self.mapping, self.kind)?;
        if let Some(line) = self.line {
            write!(f, " at line {line}")?;
            if let Some(column) = self.column {
                write!(f, ", column {column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// Why an object could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapFailure {
    /// A mapping is broken: a configuration failure that halts the provider.
    #[error(transparent)]
    Mapping(#[from] MappingError),
    /// The object's data gives a body Graph would refuse: a permanent failure of this object.
    #[error(transparent)]
    Invalid(#[from] validate::InvalidBody),
}

/// The result of mapping one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// The desired Graph body.
    Body(Body),
    /// A mapping skipped the object; its name.
    Skip(String),
}

/// The default mapping followed by the provider's custom mappings, in name order.
#[derive(Debug, Default)]
pub struct Mapper {
    custom: Vec<CompiledMapping>,
}

impl Mapper {
    /// A mapper over compiled custom mappings; they are applied in name order.
    pub fn new(mut custom: Vec<CompiledMapping>) -> Self {
        custom.sort_by(|a, b| a.name().cmp(b.name()));
        Self { custom }
    }

    /// Maps one object: defaults, then each custom mapping that applies, merged
    /// (later values win), then checked against Graph's schema and rules.
    pub fn map(&self, input: &MappingInput<'_>) -> Result<Mapped, MapFailure> {
        let mut merged =
            merge::Merged::new(defaults::body(&input.subject), defaults::DEFAULT_MAPPING);
        for mapping in self
            .custom
            .iter()
            .filter(|m| m.applies_to() == input.subject.applies_to())
        {
            match mapping.evaluate(input)? {
                MappingOutput::Body(body) => {
                    merged.merge(validate::normalise_keys(body), mapping.name())
                }
                MappingOutput::Nothing => {}
                MappingOutput::Skip => return Ok(Mapped::Skip(mapping.name().to_owned())),
            }
        }
        validate::check(input.subject.applies_to(), &merged, &input.provider.domains)?;
        Ok(Mapped::Body(merged.into_body()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn user(v: Value) -> AkUser {
        serde_json::from_value(v).unwrap()
    }

    fn adele() -> AkUser {
        user(json!({
            "pk": 1, "username": "adele", "name": "Adele Vance", "email": "adele@contoso.com",
            "attributes": {"department": "Sales"},
        }))
    }

    fn provider() -> ProviderInfo {
        ProviderInfo {
            name: "entra".into(),
            domains: vec!["contoso.com".into()],
            ..ProviderInfo::default()
        }
    }

    fn mapping(name: &str, expression: &str) -> CompiledMapping {
        CompiledMapping::compile(name, AppliesTo::User, expression).unwrap()
    }

    fn map_user(mapper: &Mapper, u: &AkUser) -> Result<Mapped, MapFailure> {
        mapper.map(&MappingInput {
            subject: Subject::User(u),
            provider: &provider(),
            connection: None,
        })
    }

    fn body(v: Value) -> Body {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn authentik_mapping_ports_verbatim() {
        let mapper = Mapper::new(vec![mapping(
            "department",
            r#"return {"department": user.attributes.get("department"), "display_name": user.name.upper()}"#,
        )]);
        assert_eq!(
            map_user(&mapper, &adele()),
            Ok(Mapped::Body(body(json!({
                "displayName": "ADELE VANCE",
                "accountEnabled": true,
                "mailNickname": "adele",
                "userPrincipalName": "adele@contoso.com",
                "department": "Sales",
            }))))
        );
    }

    #[test]
    fn later_mapping_by_name_wins_and_nested_dicts_merge() {
        // Given out of order: Mapper sorts by name, so "20-b" is applied last.
        let mapper = Mapper::new(vec![
            mapping(
                "20-b",
                r#"return {"job_title": "B", "password_profile": {"password": "from-b"}}"#,
            ),
            mapping(
                "10-a",
                r#"return {"job_title": "A", "department": "A",
    "password_profile": {"password": "from-a", "force_change_password_next_sign_in": True}}"#,
            ),
        ]);
        let Ok(Mapped::Body(b)) = map_user(&mapper, &adele()) else {
            panic!()
        };
        assert_eq!(b["jobTitle"], "B");
        assert_eq!(b["department"], "A");
        assert_eq!(
            b["passwordProfile"],
            json!({"password": "from-b", "forceChangePasswordNextSignIn": true})
        );
    }

    #[test]
    fn a_skip_names_the_mapping_and_group_mappings_do_not_apply_to_users() {
        let group_only =
            CompiledMapping::compile("a-group", AppliesTo::Group, "fail('ran')").unwrap();
        let mapper = Mapper::new(vec![
            group_only,
            mapping("b-none", "return None"),
            mapping(
                "c-skip-sales",
                "if user.attributes.get('department') == 'Sales':\n    skip_object()",
            ),
        ]);
        assert_eq!(
            map_user(&mapper, &adele()),
            Ok(Mapped::Skip("c-skip-sales".into()))
        );
    }

    #[test]
    fn mapping_errors_are_configuration_failures_naming_the_mapping() {
        let mapper = Mapper::new(vec![mapping("broken", "return {'x': user.nme}")]);
        let Err(MapFailure::Mapping(e)) = map_user(&mapper, &adele()) else {
            panic!()
        };
        assert_eq!(
            (e.mapping.as_str(), e.kind),
            ("broken", MappingErrorKind::Runtime)
        );
        let mapper = Mapper::new(vec![mapping("bad-key", "return {'departmnt': 'x'}")]);
        let Err(MapFailure::Mapping(e)) = map_user(&mapper, &adele()) else {
            panic!()
        };
        assert_eq!(
            (e.mapping.as_str(), e.kind),
            ("bad-key", MappingErrorKind::BadResult)
        );
    }

    #[test]
    fn group_mappings_merge_over_the_default_group_body() {
        let group: AkGroup = serde_json::from_value(
            json!({"pk": "00000000-0000-0000-0000-000000000007", "name": "Sales EMEA"}),
        )
        .unwrap();
        let mapper = Mapper::new(vec![
            mapping("user-only", "fail('ran')"),
            CompiledMapping::compile(
                "group-description",
                AppliesTo::Group,
                r#"return {"description": f"authentik group {group.name}",
    "mail_nickname": group.name.lower().replace(" ", ".")}"#,
            )
            .unwrap(),
        ]);
        let mapped = mapper.map(&MappingInput {
            subject: Subject::Group(&group),
            provider: &provider(),
            connection: None,
        });
        assert_eq!(
            mapped,
            Ok(Mapped::Body(body(json!({
                "displayName": "Sales EMEA",
                "mailEnabled": false,
                "securityEnabled": true,
                "mailNickname": "sales.emea",
                "description": "authentik group Sales EMEA",
            }))))
        );
    }

    /// A realistic custom user mapping, as an authentik admin writes one.
    const REALISTIC: &str = include_str!("../../testdata/realistic-user-mapping.py");

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            "\\PC{0,12}".prop_map(Value::String),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        json_leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("\\PC{0,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn ak_user() -> impl Strategy<Value = AkUser> {
        let attributes = prop::collection::btree_map(
            prop_oneof![
                Just("department".to_owned()),
                Just("title".to_owned()),
                "\\PC{0,8}"
            ],
            json_value(),
            0..5,
        );
        (
            any::<i64>(),
            "\\PC{0,24}",
            "\\PC{0,40}",
            "\\PC{0,30}",
            any::<bool>(),
            prop_oneof![
                Just("internal"),
                Just("external"),
                Just("service_account"),
                Just("robot")
            ],
            attributes,
        )
            .prop_map(|(pk, username, name, email, is_active, kind, attributes)| {
                user(json!({
                    "pk": pk, "username": username, "name": name, "email": email,
                    "is_active": is_active, "type": kind, "attributes": attributes,
                }))
            })
    }

    proptest! {
        #[test]
        fn mapping_arbitrary_users_never_panics(u in ak_user()) {
            let mapper = Mapper::new(vec![mapping("50-realistic", REALISTIC)]);
            match map_user(&mapper, &u) {
                Ok(Mapped::Body(b)) => {
                    prop_assert!(u.user_type != crate::authentik::AkUserType::ServiceAccount);
                    prop_assert!(b["userPrincipalName"].as_str().unwrap().ends_with("@contoso.com"));
                    prop_assert_eq!(&b["companyName"], "Contoso");
                }
                Ok(Mapped::Skip(name)) => {
                    prop_assert_eq!(name, "50-realistic");
                    prop_assert_eq!(u.user_type, crate::authentik::AkUserType::ServiceAccount);
                }
                // The data may give a value Graph would refuse; the mapping itself never fails.
                Err(MapFailure::Invalid(_)) => {}
                Err(MapFailure::Mapping(e)) => prop_assert!(false, "{e}"),
            }
        }

        #[test]
        fn compiling_arbitrary_text_never_panics(text in "\\PC{0,60}") {
            let _ = CompiledMapping::compile("any", AppliesTo::User, &text);
        }
    }
}
