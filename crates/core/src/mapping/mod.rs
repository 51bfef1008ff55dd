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
