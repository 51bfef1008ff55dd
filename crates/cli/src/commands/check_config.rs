//! `entra-sync check-config`: validates the configuration and compiles the mappings.

use entra_sync_provider::compile_mappings;
use std::path::Path;
use std::process::ExitCode;

/// Prints one line per provider; exits 1 if a mapping does not compile.
pub fn run(config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config)?;
    let mut broken = 0;
    for provider in &config.providers {
        let errors: Vec<String> = match compile_mappings(&provider.mappings) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        };
        println!(
            "provider {}: tenant {}, {} custom mapping(s), {}",
            provider.name,
            provider.tenant_id,
            provider.mappings.len(),
            if errors.is_empty() { "ok" } else { "BROKEN" }
        );
        for e in &errors {
            println!("  {e}");
        }
        broken += errors.len();
    }
    Ok(if broken == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
