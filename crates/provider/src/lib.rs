//! The provider room: everything about one provider that both services share,
//! each rule written once. The CLI builds a [`Provider`] from its
//! configuration; the producer and the worker hold it.
//!
//! - [`Provider::from_config`] builds the Graph client behind the tenant's
//!   shared write budget ([`budget::BudgetGate`], DESIGN invariant 5), and
//!   [`Provider::mapper`] compiles the mappings: a mapping that does not
//!   compile is a configuration error naming the provider and the mapping
//!   (invariant 6).
//! - [`Provider::shared_scope`] resolves the filter group in authentik and
//!   shares the resolution with every process through PostgreSQL; a missing
//!   filter group halts the provider until it exists again, never an empty
//!   scope (invariant 7).
//! - [`record_existing_members`] records what an adopted or discovered Entra
//!   group already holds, so those memberships are not sent again (invariant 4).
//! - [`DeletionPolicy`] says what happens to objects gone from authentik or
//!   out of scope, and counts a run's deletions through
//!   `entra_sync_core::reconcile::plan`, the rule every deletion follows.
//! - [`DeletionGuard`] lets every delete and suspension through, from any path
//!   and any worker, up to `deletion_threshold` within `deletion_window`;
//!   past it nothing more is deleted and the provider halts (invariant 7).
//! - [`Provider::check_permissions`] finds a permission the app lacks before
//!   any write, and [`record_refused_write`] tells a permission removed
//!   mid-run (403s on [`REFUSED_OBJECTS_TO_HALT`] objects in a row) from an
//!   object the app may not change, which fails alone (invariant 6).
//! - [`request_full_sync`] starts a full sync for a [`RunTrigger`], unless the
//!   provider is halted (invariant 6: a halted provider waits for [`resume`]).

pub mod budget;
mod deletions;
mod guard;
mod members;
mod permissions;
mod runs;
mod scope;
pub mod testing;

pub use deletions::{AuthentikSide, DeletionPolicy};
pub use entra_sync_store::guard::{DeprovisionAction, GuardLimit};
pub use entra_sync_store::runs::RunTrigger;
pub use guard::{Claim, DeletionGuard, HeldBack, RunCheck};
pub use members::{RecordMembersError, record_existing_members};
pub use permissions::{
    PermissionError, PermissionLost, REFUSAL_WINDOW, REFUSED_OBJECTS_TO_HALT,
    record_accepted_write, record_refused_write,
};
pub use runs::{Resumed, RunRequest, request_full_sync, resume};
pub use scope::{ScopeError, ScopeSettings, ScopedUser, SharedScope};

use budget::BudgetGate;
use entra_sync_config::{MappingConfig, ProviderConfig};
use entra_sync_core::mapping::{CompiledMapping, Mapper, MappingError};
use entra_sync_graph::{BuildError, GraphClient, GraphConfig};
use entra_sync_store::Store;
use std::sync::Arc;

/// One provider as both services see it, built from its configuration.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Name, as configured.
    pub name: String,
    /// The hash of the settings that change what a full sync does.
    pub settings_hash: String,
    /// The provider's Graph client, drawing writes from the tenant's shared
    /// budget (dry run is its setting).
    pub graph: GraphClient,
    /// Scope, before its filter group is resolved.
    pub scope: ScopeSettings,
    /// What happens to objects gone from authentik or out of scope, and how many a run may touch.
    pub deletions: DeletionPolicy,
    /// The custom property mappings, as configured ([`Provider::mapper`] compiles them).
    pub mappings: Vec<MappingConfig>,
    /// The Entra tenant id, as configured (mappings may read it).
    pub tenant_id: String,
    /// The app's client id, as configured (mappings may read it).
    pub client_id: String,
    /// Whether members of managed groups that are not linked users are removed too.
    pub remove_unmanaged_members: bool,
}

/// A provider cannot be built from its configuration; it halts.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The Graph client cannot be built.
    #[error("providers[{provider}]: cannot build the Graph client: {source}")]
    GraphClient {
        /// The provider.
        provider: String,
        /// The cause.
        #[source]
        source: BuildError,
    },
    /// Some mappings do not compile.
    #[error("providers[{provider}]: {}", list(.errors))]
    Mappings {
        /// The provider.
        provider: String,
        /// One error per broken mapping, each naming it.
        errors: Vec<MappingError>,
    },
}

fn list(errors: &[MappingError]) -> String {
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    messages.join("; ")
}

impl Provider {
    /// Builds a provider from its configuration. Its Graph client shares the
    /// tenant's write budget through `store`.
    pub fn from_config(config: &ProviderConfig, store: &Store) -> Result<Self, ProviderError> {
        let gate = BudgetGate::writes(
            store.clone(),
            &config.tenant_id,
            &config.client_id,
            config.write_quota,
            config.write_window,
        );
        let graph =
            GraphClient::with_gate(graph_config(config), Arc::new(gate)).map_err(|source| {
                ProviderError::GraphClient {
                    provider: config.name.clone(),
                    source,
                }
            })?;
        Ok(Self {
            name: config.name.clone(),
            settings_hash: config.settings_hash(),
            graph,
            scope: ScopeSettings {
                filter_group: config.filter_group.clone(),
                exclude_service_accounts: config.exclude_users_service_account,
            },
            deletions: DeletionPolicy {
                users: config.user_delete_action.into(),
                groups: config.group_delete_action.into(),
                threshold: config.deletion_threshold,
                window: config.deletion_window,
            },
            mappings: config.mappings.clone(),
            tenant_id: config.tenant_id.clone(),
            client_id: config.client_id.clone(),
            remove_unmanaged_members: config.remove_unmanaged_members,
        })
    }

    /// The compiled mappings; a mapping that does not compile is a
    /// configuration error naming the provider and the mapping.
    pub fn mapper(&self) -> Result<Mapper, ProviderError> {
        compile_mappings(&self.mappings).map_err(|errors| ProviderError::Mappings {
            provider: self.name.clone(),
            errors,
        })
    }
}

/// Compiles custom mappings; `Err` holds one error per mapping that does not compile.
pub fn compile_mappings(mappings: &[MappingConfig]) -> Result<Mapper, Vec<MappingError>> {
    let (compiled, errors): (Vec<_>, Vec<_>) = mappings
        .iter()
        .map(|m| CompiledMapping::compile(&m.name, m.applies_to, &m.expression))
        .partition(Result::is_ok);
    if errors.is_empty() {
        Ok(Mapper::new(compiled.into_iter().flatten().collect()))
    } else {
        Err(errors.into_iter().filter_map(Result::err).collect())
    }
}

/// The Graph settings of a provider.
fn graph_config(config: &ProviderConfig) -> GraphConfig {
    let mut graph = GraphConfig::new(
        config.tenant_id.clone(),
        config.client_id.clone(),
        config.credential.clone(),
    );
    graph.graph_url = config.graph_url.as_str().trim_end_matches('/').to_owned();
    graph.login_url = config.login_url.as_str().trim_end_matches('/').to_owned();
    graph.dry_run = config.dry_run;
    graph
}

#[cfg(test)]
mod tests {
    use super::*;
    use entra_sync_config::Config;
    use entra_sync_core::reconcile::DeleteAction;
    use std::path::Path;

    fn config(provider: &str) -> ProviderConfig {
        let minimal = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/minimal-config.toml"
        ));
        let text = format!("{minimal}{provider}");
        let env = |name: &str| {
            ["AUTHENTIK_TOKEN", "WEBHOOK_SECRET", "ENTRA_CLIENT_SECRET"]
                .contains(&name)
                .then(|| format!("{name} value"))
        };
        let mut config = Config::parse(&text, Path::new("."), &env).unwrap();
        config.providers.remove(0)
    }

    /// A pool that never connects: building a provider touches no database.
    fn store() -> Store {
        Store::connect("postgres://postgres@127.0.0.1:5432/unused", 1, None).unwrap()
    }

    fn mapping(name: &str, expression: &str) -> String {
        format!(
            "[[providers.mappings]]\nname = {name:?}\napplies_to = \"user\"\nexpression = {expression:?}\n"
        )
    }

    #[test]
    fn a_provider_carries_its_configured_policy() {
        let config = config(
            "filter_group = \"staff\"\nexclude_users_service_account = true\n\
             user_delete_action = \"suspend\"\ngroup_delete_action = \"do_nothing\"\n\
             deletion_threshold = 7\ndeletion_window = \"10m\"\ndry_run = true\n",
        );
        let provider = Provider::from_config(&config, &store()).unwrap();
        assert_eq!(provider.name, "contoso");
        assert_eq!(provider.settings_hash, config.settings_hash());
        assert_eq!(
            provider.scope,
            ScopeSettings {
                filter_group: Some("staff".into()),
                exclude_service_accounts: true,
            }
        );
        assert_eq!(
            provider.deletions,
            DeletionPolicy {
                users: DeleteAction::Suspend,
                groups: DeleteAction::DoNothing,
                threshold: 7,
                window: std::time::Duration::from_secs(600),
            }
        );
        assert!(provider.graph.is_dry_run());
    }

    #[test]
    fn mappings_that_compile_make_the_mapper() {
        let config = config(&mapping("10-title", "return {\"jobTitle\": \"x\"}"));
        let provider = Provider::from_config(&config, &store()).unwrap();
        assert!(provider.mapper().is_ok());
    }

    #[test]
    fn a_mapping_that_does_not_compile_is_an_error_naming_the_provider_and_every_broken_mapping() {
        let config = config(&format!(
            "{}{}{}",
            mapping("10-ok", "return None"),
            mapping("20-typo", "return {"),
            mapping("30-empty", "# nothing"),
        ));
        let provider = Provider::from_config(&config, &store()).unwrap();
        let error = provider.mapper().unwrap_err();
        let ProviderError::Mappings { errors, .. } = &error else {
            panic!("{error}")
        };
        let broken: Vec<&str> = errors.iter().map(|e| e.mapping.as_str()).collect();
        assert_eq!(broken, ["20-typo", "30-empty"]);
        let message = error.to_string();
        assert!(message.starts_with("providers[contoso]: "), "{message}");
        assert!(
            message.contains("20-typo") && message.contains("30-empty"),
            "{message}"
        );
    }
}
