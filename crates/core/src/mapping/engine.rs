//! The Starlark engine for custom property mappings.

use super::{AppliesTo, MappingError, MappingErrorKind, MappingInput, MappingOutput};

/// A custom mapping, compiled once and evaluated many times.
#[derive(Debug)]
pub struct CompiledMapping {
    name: String,
    applies_to: AppliesTo,
}

impl CompiledMapping {
    /// Compiles `expression`, a function body in authentik's style.
    pub fn compile(
        name: &str,
        applies_to: AppliesTo,
        expression: &str,
    ) -> Result<Self, MappingError> {
        let _ = expression;
        Err(MappingError {
            mapping: name.to_owned(),
            kind: MappingErrorKind::Compile,
            line: None,
            column: None,
            message: format!("custom mappings for {applies_to:?} are not supported yet"),
        })
    }

    /// The mapping's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which objects it applies to.
    pub fn applies_to(&self) -> AppliesTo {
        self.applies_to
    }

    /// Runs the mapping for one object.
    pub fn evaluate(&self, input: &MappingInput<'_>) -> Result<MappingOutput, MappingError> {
        let _ = input;
        Ok(MappingOutput::Nothing)
    }
}
