//! Scope resolution: a provider's configured scope made concrete on
//! authentik's current facts (DESIGN invariant 7).

use crate::Provider;
use entra_sync_authentik::{AuthentikClient, AuthentikError};
use entra_sync_core::scope::Scope;

/// A provider's scope as configured, before its filter group is resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSettings {
    /// The name of the authentik group whose direct members are in scope, if any.
    pub filter_group: Option<String>,
    /// Leave out service accounts (`exclude_users_service_account`).
    pub exclude_service_accounts: bool,
}

/// The scope cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    /// The filter group does not exist: a configuration error, never an empty scope.
    #[error("providers[{provider}].filter_group: authentik has no group named {group:?}")]
    NoFilterGroup {
        /// The provider.
        provider: String,
        /// The configured group name.
        group: String,
    },
    /// authentik could not be asked.
    #[error(transparent)]
    Authentik(#[from] AuthentikError),
}

impl ScopeError {
    /// Whether the provider must halt until its configuration is fixed.
    pub fn is_configuration(&self) -> bool {
        match self {
            Self::NoFilterGroup { .. } => true,
            Self::Authentik(e) => e.is_configuration(),
        }
    }
}

impl Provider {
    /// The provider's scope, with its filter group looked up in authentik now.
    /// Nothing is cached: call it again whenever the scope must be current
    /// (every run, and after a change to the filter group).
    pub async fn resolve_scope(&self, authentik: &AuthentikClient) -> Result<Scope, ScopeError> {
        let filter_group = match &self.scope.filter_group {
            None => None,
            Some(name) => match authentik.group_by_name(name).await? {
                Some(group) => Some(group.pk),
                None => {
                    return Err(ScopeError::NoFilterGroup {
                        provider: self.name.clone(),
                        group: name.clone(),
                    });
                }
            },
        };
        Ok(Scope {
            filter_group,
            exclude_service_accounts: self.scope.exclude_service_accounts,
        })
    }
}
