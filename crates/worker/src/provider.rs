//! One provider's reconcilers, built from its configuration through the
//! provider room ([`entra_sync_provider`]): the Graph client behind the
//! tenant's shared budget (DESIGN invariant 5), the compiled mappings, the
//! delete actions, and the scope shared through PostgreSQL (invariant 7). A
//! room error that needs an operator is a configuration error, which halts the
//! provider (invariant 6).
//!
//! The tenant's verified domains are read when the reconcilers are built; a
//! worker builds them again for each newer full sync
//! ([`ProviderWorker::is_older_than`]), so a domain verified later is used from
//! the next full sync on.

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
use uuid::Uuid;

/// Everything a worker needs to reconcile the objects of one provider.
pub struct ProviderWorker {
    /// Users.
    pub users: UserReconciler,
    /// Groups.
    pub groups: GroupReconciler,
    /// Group memberships.
    pub memberships: MembershipReconciler,
    /// The full sync whose task built them, if a full sync's task did.
    built_for_run: Option<Uuid>,
}

impl ProviderWorker {
    /// Builds the reconcilers for a task of full sync `run` (or of none):
    /// checks the app's permissions before any write, reads the tenant's
    /// verified domains, compiles the mappings.
    pub async fn build(
        config: &ProviderConfig,
        authentik: &AuthentikClient,
        store: &Store,
        run: Option<Uuid>,
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
        let scope = provider.shared_scope(authentik, store);
        let guard = provider.deletion_guard(store);
        Ok(Self {
            users: UserReconciler {
                provider: info.clone(),
                graph: provider.graph.clone(),
                store: store.clone(),
                mapper: provider.mapper()?,
                scope,
                on_delete: provider.deletions.users,
                guard: guard.clone(),
            },
            groups: GroupReconciler {
                provider: info,
                graph: provider.graph.clone(),
                authentik: authentik.clone(),
                store: store.clone(),
                mapper: provider.mapper()?,
                on_delete: provider.deletions.groups,
                guard,
            },
            memberships: MembershipReconciler {
                remove_unmanaged: provider.remove_unmanaged_members,
                provider: provider.name,
                graph: provider.graph,
                authentik: authentik.clone(),
                store: store.clone(),
            },
            built_for_run: run,
        })
    }

    /// Whether a task of full sync `run` needs them built again: run ids are
    /// time-ordered (UUID v7), and each newer full sync reads the verified
    /// domains afresh.
    pub fn is_older_than(&self, run: Option<Uuid>) -> bool {
        run > self.built_for_run
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
            ScopeError::Store { ref source, .. } => Self::of_store(source, e.to_string()),
        }
    }
}

impl From<RecordMembersError> for ReconcileError {
    fn from(e: RecordMembersError) -> Self {
        let detail = e.to_string();
        match e {
            // Graph's failure decides the class; the message names the group.
            RecordMembersError::Graph { source, .. } => Self::from(*source).with_detail(detail),
            RecordMembersError::Store { source, .. } => Self::of_store(&source, detail),
            RecordMembersError::Relinked { .. } => Self::Transient {
                detail,
                retry_after: None,
            },
        }
    }
}
