//! One provider's reconcilers, built from its configuration: the Graph client
//! behind the shared budget, the compiled mappings, the resolved scope.

use crate::ReconcileError;
use crate::budget::BudgetGate;
use crate::groups::GroupReconciler;
use crate::memberships::MembershipReconciler;
use crate::users::UserReconciler;
use entra_sync_authentik::AuthentikClient;
use entra_sync_config::ProviderConfig;
use entra_sync_core::mapping::{CompiledMapping, Mapper, ProviderInfo};
use entra_sync_core::scope::Scope;
use entra_sync_graph::{GraphClient, GraphConfig};
use entra_sync_store::Store;
use std::sync::Arc;

/// The Graph settings of a provider.
pub fn graph_config(config: &ProviderConfig) -> GraphConfig {
    let mut graph = GraphConfig::new(
        config.tenant_id.clone(),
        config.client_id.clone(),
        config.client_secret.clone(),
    );
    graph.graph_url = config.graph_url.as_str().trim_end_matches('/').to_owned();
    graph.login_url = config.login_url.as_str().trim_end_matches('/').to_owned();
    graph.dry_run = config.dry_run;
    graph
}

/// A provider's Graph client, drawing writes from the tenant's shared budget.
pub fn graph_client(config: &ProviderConfig, store: &Store) -> Result<GraphClient, ReconcileError> {
    let gate = BudgetGate::writes(
        store.clone(),
        &config.tenant_id,
        &config.client_id,
        config.write_quota,
        config.write_window,
    );
    GraphClient::with_gate(graph_config(config), Arc::new(gate))
        .map_err(|e| ReconcileError::Configuration(format!("providers[{}]: {e}", config.name)))
}

/// The compiled mappings of a provider; a mapping that does not compile is a
/// configuration error naming it.
pub fn mapper(config: &ProviderConfig) -> Result<Mapper, ReconcileError> {
    let compiled = config
        .mappings
        .iter()
        .map(|m| CompiledMapping::compile(&m.name, m.applies_to, &m.expression))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ReconcileError::Configuration(format!("providers[{}]: {e}", config.name)))?;
    Ok(Mapper::new(compiled))
}

/// The scope of a provider, with its filter group looked up in authentik.
pub async fn scope(
    config: &ProviderConfig,
    authentik: &AuthentikClient,
) -> Result<Scope, ReconcileError> {
    let filter_group = match &config.filter_group {
        None => None,
        Some(name) => match authentik.group_by_name(name).await? {
            Some(group) => Some(group.pk),
            None => {
                return Err(ReconcileError::Configuration(format!(
                    "providers[{}].filter_group: authentik has no group named {name:?}",
                    config.name
                )));
            }
        },
    };
    Ok(Scope {
        filter_group,
        exclude_service_accounts: config.exclude_users_service_account,
    })
}

/// Everything a worker needs to reconcile the objects of one provider.
pub struct ProviderWorker {
    /// Users.
    pub users: UserReconciler,
    /// Groups.
    pub groups: GroupReconciler,
    /// Group memberships.
    pub memberships: MembershipReconciler,
}

impl ProviderWorker {
    /// Builds the reconcilers: reads the tenant's verified domains and the
    /// filter group, compiles the mappings.
    pub async fn build(
        config: &ProviderConfig,
        authentik: &AuthentikClient,
        store: &Store,
    ) -> Result<Self, ReconcileError> {
        // Links reference the provider's row; the producer may not have made it yet.
        store
            .ensure_provider(&config.name, &config.settings_hash())
            .await?;
        let graph = graph_client(config, store)?;
        let domains = graph
            .verified_domains()
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect();
        let info = ProviderInfo {
            name: config.name.clone(),
            tenant_id: config.tenant_id.clone(),
            client_id: config.client_id.clone(),
            domains,
        };
        let scope = scope(config, authentik).await?;
        Ok(Self {
            users: UserReconciler {
                provider: info.clone(),
                graph: graph.clone(),
                authentik: authentik.clone(),
                store: store.clone(),
                mapper: mapper(config)?,
                scope,
                on_delete: config.user_delete_action.into(),
            },
            groups: GroupReconciler {
                provider: info,
                graph: graph.clone(),
                authentik: authentik.clone(),
                store: store.clone(),
                mapper: mapper(config)?,
                on_delete: config.group_delete_action.into(),
            },
            memberships: MembershipReconciler {
                provider: config.name.clone(),
                graph,
                authentik: authentik.clone(),
                store: store.clone(),
            },
        })
    }
}
