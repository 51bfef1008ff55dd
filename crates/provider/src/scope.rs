//! Scope resolution: a provider's configured scope made concrete on
//! authentik's current facts, and shared through PostgreSQL so that no process
//! acts on a filter-group resolution older than the last run or the last
//! group event (DESIGN invariant 7).
//!
//! - The producer resolves the filter group at the start of every full sync
//!   and whenever an events batch holds a group change, and stores it
//!   ([`SharedScope::refresh`]).
//! - A worker decides each user on the stored resolution ([`SharedScope::user`]);
//!   before it puts a user out of scope for not being in the filter group, it
//!   resolves the group live and reads the user again, so a re-created group
//!   (new pk, same name) never deprovisions its members.
//! - A missing filter group never empties the scope: the provider halts
//!   ([`HaltKind::FilterGroupMissing`]), and the halt clears itself once a
//!   group of that name exists again ([`Provider::lift_filter_group_halt`]).

use crate::Provider;
use crate::runs::{RunRequest, request_full_sync};
use entra_sync_authentik::{AuthentikClient, AuthentikError};
use entra_sync_core::authentik::AkUser;
use entra_sync_core::ids::AkUserPk;
use entra_sync_core::scope::{OutOfScope, Scope};
use entra_sync_store::providers::HaltKind;
use entra_sync_store::runs::RunTrigger;
use entra_sync_store::{Store, StoreError};

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
    /// The filter group does not exist: the provider halts, never an empty scope.
    #[error(
        "providers[{provider}].filter_group: authentik has no group named {group:?}; \
         nothing is deleted or suspended for being out of scope until it exists"
    )]
    NoFilterGroup {
        /// The provider.
        provider: String,
        /// The configured group name.
        group: String,
    },
    /// authentik could not be asked.
    #[error(transparent)]
    Authentik(#[from] AuthentikError),
    /// The shared resolution could not be read or written.
    #[error("providers[{provider}]: cannot share the filter group's resolution: {source}")]
    Store {
        /// The provider.
        provider: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
}

impl ScopeError {
    /// Whether the provider must halt until its configuration (or authentik) is fixed.
    pub fn is_configuration(&self) -> bool {
        match self {
            Self::NoFilterGroup { .. } => true,
            Self::Authentik(e) => e.is_configuration(),
            Self::Store { .. } => false,
        }
    }
}

/// What authentik says of one user, judged on a current scope.
#[derive(Debug, Clone, PartialEq)]
pub enum ScopedUser {
    /// authentik has no such user.
    Gone,
    /// The user exists but is outside the scope, for this reason.
    OutOfScope(OutOfScope),
    /// The user is in scope.
    InScope(Box<AkUser>),
}

/// One provider's scope, resolved in authentik and shared through PostgreSQL
/// with every process ([`Provider::shared_scope`]).
#[derive(Debug, Clone)]
pub struct SharedScope {
    provider: String,
    settings: ScopeSettings,
    authentik: AuthentikClient,
    store: Store,
}

impl Provider {
    /// The provider's scope as every process shares it.
    pub fn shared_scope(&self, authentik: &AuthentikClient, store: &Store) -> SharedScope {
        SharedScope::new(&self.name, self.scope.clone(), authentik, store)
    }

    /// Clears a [`HaltKind::FilterGroupMissing`] halt once authentik has a group
    /// of that name again: shares its resolution, clears the halt and starts a
    /// full sync (`filter_group_restored`). `None`: the provider is not halted
    /// for that, or the group is still missing.
    pub async fn lift_filter_group_halt(
        &self,
        authentik: &AuthentikClient,
        store: &Store,
    ) -> Result<Option<RunRequest>, ScopeError> {
        let scope = self.shared_scope(authentik, store);
        let halt = store
            .halt_of(&self.name)
            .await
            .map_err(|e| scope.store_error(e))?;
        if halt.is_none_or(|h| h.kind != HaltKind::FilterGroupMissing) {
            return Ok(None);
        }
        let Some(resolved) = scope.resolve().await? else {
            return Ok(None);
        };
        scope.share(&resolved).await?;
        let cleared = store
            .clear_halt_of_kind(&self.name, HaltKind::FilterGroupMissing)
            .await
            .map_err(|e| scope.store_error(e))?;
        if !cleared {
            return Ok(None);
        }
        tracing::info!(provider = %self.name, "the filter group exists again: halt cleared");
        let request = request_full_sync(store, self, RunTrigger::FilterGroupRestored)
            .await
            .map_err(|e| scope.store_error(e))?;
        Ok(Some(request))
    }
}

impl SharedScope {
    /// The shared scope of provider `provider` with `settings`.
    pub fn new(
        provider: &str,
        settings: ScopeSettings,
        authentik: &AuthentikClient,
        store: &Store,
    ) -> Self {
        Self {
            provider: provider.to_owned(),
            settings,
            authentik: authentik.clone(),
            store: store.clone(),
        }
    }

    /// Resolves the filter group in authentik now and shares the resolution.
    /// A missing group is shared as missing and halts the provider
    /// ([`HaltKind::FilterGroupMissing`]); the error says so.
    pub async fn refresh(&self) -> Result<Scope, ScopeError> {
        match self.resolve().await? {
            Some(scope) => {
                self.share(&scope).await?;
                Ok(scope)
            }
            None => Err(self.halt_missing().await?),
        }
    }

    /// The scope as last shared; resolved now if it never was, under this
    /// name, or if the group was missing then.
    pub async fn current(&self) -> Result<Scope, ScopeError> {
        let Some(name) = &self.settings.filter_group else {
            return Ok(self.scope_with(None));
        };
        let stored = self
            .store
            .filter_group(&self.provider, name)
            .await
            .map_err(|e| self.store_error(e))?;
        match stored.and_then(|s| s.pk) {
            Some(pk) => Ok(self.scope_with(Some(pk))),
            None => self.refresh().await,
        }
    }

    /// Reads authentik's user `pk` and judges it on the shared scope. Before a
    /// user is put out of scope for not being in the filter group, the group
    /// is resolved live (and shared) and the user read again, so neither fact
    /// is older than the other.
    pub async fn user(&self, pk: AkUserPk) -> Result<ScopedUser, ScopeError> {
        let Some(user) = self.authentik.user(pk).await? else {
            return Ok(ScopedUser::Gone);
        };
        match self.current().await?.check_user(&user) {
            Ok(()) => return Ok(ScopedUser::InScope(Box::new(user))),
            Err(OutOfScope::NotInFilterGroup) => {}
            Err(reason) => return Ok(ScopedUser::OutOfScope(reason)),
        }
        let live = self.refresh().await?;
        let Some(user) = self.authentik.user(pk).await? else {
            return Ok(ScopedUser::Gone);
        };
        Ok(match live.check_user(&user) {
            Ok(()) => ScopedUser::InScope(Box::new(user)),
            Err(reason) => ScopedUser::OutOfScope(reason),
        })
    }

    /// The scope on authentik's facts now; `None` if the filter group is missing.
    async fn resolve(&self) -> Result<Option<Scope>, ScopeError> {
        let Some(name) = &self.settings.filter_group else {
            return Ok(Some(self.scope_with(None)));
        };
        let group = self.authentik.group_by_name(name).await?;
        Ok(group.map(|g| self.scope_with(Some(g.pk))))
    }

    /// Stores a resolved filter group for every process.
    async fn share(&self, scope: &Scope) -> Result<(), ScopeError> {
        let Some(name) = &self.settings.filter_group else {
            return Ok(());
        };
        self.store
            .save_filter_group(&self.provider, name, scope.filter_group)
            .await
            .map_err(|e| self.store_error(e))
    }

    /// Shares the filter group as missing and halts the provider; returns the
    /// error naming the group.
    async fn halt_missing(&self) -> Result<ScopeError, ScopeError> {
        let group = self.settings.filter_group.clone().unwrap_or_default();
        self.store
            .save_filter_group(&self.provider, &group, None)
            .await
            .map_err(|e| self.store_error(e))?;
        let error = ScopeError::NoFilterGroup {
            provider: self.provider.clone(),
            group,
        };
        let reason = error.to_string();
        let halted = self
            .store
            .halt_as(&self.provider, HaltKind::FilterGroupMissing, &reason)
            .await
            .map_err(|e| self.store_error(e))?;
        if halted {
            tracing::error!(provider = %self.provider, %reason, "provider halted");
        }
        Ok(error)
    }

    fn scope_with(&self, filter_group: Option<entra_sync_core::ids::AkGroupPk>) -> Scope {
        Scope {
            filter_group,
            exclude_service_accounts: self.settings.exclude_service_accounts,
        }
    }

    fn store_error(&self, source: StoreError) -> ScopeError {
        ScopeError::Store {
            provider: self.provider.clone(),
            source,
        }
    }
}
