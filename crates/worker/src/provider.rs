//! One provider's reconcilers, built from its configuration through the
//! provider room ([`entra_sync_provider`]): the Graph client behind the
//! tenant's shared budget (DESIGN invariant 5), the compiled mappings, the
//! delete actions, and the scope resolved in authentik (invariant 7). A room
//! error that needs an operator is a configuration error, which halts the
//! provider (invariant 6).

use crate::ReconcileError;
use crate::groups::GroupReconciler;
use crate::memberships::MembershipReconciler;
use crate::users::UserReconciler;
use entra_sync_authentik::AuthentikClient;
use entra_sync_config::ProviderConfig;
use entra_sync_core::mapping::ProviderInfo;
use entra_sync_provider::{
    PermissionError, Provider, ProviderError, RecordMembersError, ScopeError,
};
use entra_sync_store::Store;

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
    /// Builds the reconcilers: checks the app's permissions before any write,
    /// reads the tenant's verified domains and the filter group, compiles the
    /// mappings.
    pub async fn build(
        config: &ProviderConfig,
        authentik: &AuthentikClient,
        store: &Store,
    ) -> Result<Self, ReconcileError> {
        // Links reference the provider's row; the producer may not have made it yet.
        store
            .ensure_provider(&config.name, &config.settings_hash())
            .await?;
        let provider = Provider::from_config(config, store)?;
        provider.check_permissions().await?;
        let domains = provider
            .graph
            .verified_domains()
            .await?
            .into_iter()
            .map(|d| d.name)
            .collect();
        let info = ProviderInfo {
            name: provider.name.clone(),
            tenant_id: config.tenant_id.clone(),
            client_id: config.client_id.clone(),
            domains,
        };
        let scope = provider.resolve_scope(authentik).await?;
        Ok(Self {
            users: UserReconciler {
                provider: info.clone(),
                graph: provider.graph.clone(),
                authentik: authentik.clone(),
                store: store.clone(),
                mapper: provider.mapper()?,
                scope,
                on_delete: provider.deletions.users,
            },
            groups: GroupReconciler {
                provider: info,
                graph: provider.graph.clone(),
                authentik: authentik.clone(),
                store: store.clone(),
                mapper: provider.mapper()?,
                on_delete: provider.deletions.groups,
            },
            memberships: MembershipReconciler {
                provider: provider.name,
                graph: provider.graph,
                authentik: authentik.clone(),
                store: store.clone(),
            },
        })
    }
}

impl From<ProviderError> for ReconcileError {
    fn from(e: ProviderError) -> Self {
        Self::Configuration(e.to_string())
    }
}

impl From<PermissionError> for ReconcileError {
    fn from(e: PermissionError) -> Self {
        match e {
            e @ PermissionError::Missing { .. } => Self::Configuration(e.to_string()),
            PermissionError::Graph(failure) => failure.into(),
        }
    }
}

impl From<ScopeError> for ReconcileError {
    fn from(e: ScopeError) -> Self {
        match e {
            ScopeError::Authentik(e) => e.into(),
            e @ ScopeError::NoFilterGroup { .. } => Self::Configuration(e.to_string()),
        }
    }
}

impl From<RecordMembersError> for ReconcileError {
    fn from(e: RecordMembersError) -> Self {
        let detail = e.to_string();
        match e {
            // Graph's failure decides the class; the message names the group.
            RecordMembersError::Graph { source, .. } => match Self::from(*source) {
                Self::Transient { retry_after, .. } => Self::Transient {
                    detail,
                    retry_after,
                },
                Self::Permanent(_) => Self::Permanent(detail),
                Self::Forbidden(_) => Self::Forbidden(detail),
                Self::Configuration(_) => Self::Configuration(detail),
            },
            RecordMembersError::Store { .. } | RecordMembersError::Relinked { .. } => {
                Self::Transient {
                    detail,
                    retry_after: None,
                }
            }
        }
    }
}
