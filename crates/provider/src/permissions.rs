//! Whether the app may make the writes a provider makes, found before any
//! write rather than by a 403 ([`Provider::check_permissions`]), and the rule
//! that tells a permission removed mid-run from objects the app may not change
//! ([`record_refused_write`]): DESIGN invariants 6 and 7.

use crate::Provider;
use entra_sync_core::permissions::{MissingPermission, WriteKind, missing_permissions};
use entra_sync_core::task::ObjectRef;
use entra_sync_graph::GraphFailure;
use entra_sync_store::{Store, StoreError};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

/// How many distinct objects Graph must refuse with 403 …
pub const REFUSED_OBJECTS_TO_HALT: u64 = 5;
/// … within this window, with no successful write in between, to halt the
/// provider: one refusal is an object the app may not change (a privileged
/// admin, a role-assignable group); many in a row mean a permission was removed.
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(10 * 60);

/// The app cannot make the writes the provider makes.
#[derive(Debug, thiserror::Error)]
pub enum PermissionError {
    /// The token's `roles` claim leaves some writes uncovered: halt.
    #[error("providers[{provider}]: {}; grant it in Entra (with admin consent), then run entra-sync resume --provider {provider}", list(.missing))]
    Missing {
        /// The provider.
        provider: String,
        /// The uncovered writes.
        missing: Vec<MissingPermission>,
    },
    /// No token could be fetched; Graph's failure says what to do.
    #[error(transparent)]
    Graph(#[from] GraphFailure),
}

fn list(missing: &[MissingPermission]) -> String {
    let messages: Vec<String> = missing.iter().map(ToString::to_string).collect();
    messages.join("; ")
}

impl Provider {
    /// Checks the app's granted permissions (the access token's `roles`
    /// claim) against the writes the provider makes: users, groups and
    /// memberships, none in dry run. A permission found missing is checked
    /// again on a new token, so one granted since (and `resume`) takes
    /// effect. A token that does not tell logs one warning per provider and
    /// process, and passes: the 403 classification is what remains.
    pub async fn check_permissions(&self) -> Result<(), PermissionError> {
        if self.graph.is_dry_run() {
            return Ok(());
        }
        let mut missing =
            missing_permissions(self.graph.granted_roles().await?.as_ref(), WriteKind::ALL);
        if missing.as_ref().is_some_and(|m| !m.is_empty()) {
            self.graph.renew_token().await?;
            missing =
                missing_permissions(self.graph.granted_roles().await?.as_ref(), WriteKind::ALL);
        }
        match missing {
            None => {
                warn_once_unknown(&self.name);
                Ok(())
            }
            Some(missing) if missing.is_empty() => Ok(()),
            Some(missing) => Err(PermissionError::Missing {
                provider: self.name.clone(),
                missing,
            }),
        }
    }
}

/// Logs, once per provider and process, that the token does not tell its permissions.
fn warn_once_unknown(provider: &str) {
    static WARNED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let first = WARNED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(provider.to_owned());
    if first {
        tracing::warn!(
            provider,
            "the app's access token does not list its permissions (no readable roles claim): they cannot be checked before writing; a missing one shows as 403 refusals"
        );
    }
}

/// Graph refused writes to many objects in a row: a permission was likely removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Graph refused writes to {objects} different objects with 403 within {} min and none succeeded: the app may have lost a permission (last: {last}); check the app's API permissions in Entra, then run entra-sync resume --provider {provider}", REFUSAL_WINDOW.as_secs() / 60)]
pub struct PermissionLost {
    /// The provider.
    pub provider: String,
    /// How many distinct objects were refused.
    pub objects: u64,
    /// The last refusal, with Graph's message.
    pub last: String,
}

/// Records that Graph refused, with 403, a write to `object` (which then
/// fails alone), and says whether the provider must halt: when
/// [`REFUSED_OBJECTS_TO_HALT`] distinct objects were refused within
/// [`REFUSAL_WINDOW`] with no successful write in between, counted in
/// PostgreSQL across all workers.
pub async fn record_refused_write(
    store: &Store,
    provider: &str,
    object: ObjectRef,
    refusal: &str,
) -> Result<Option<PermissionLost>, StoreError> {
    let objects = store
        .record_forbidden_write(provider, object.kind(), &object.id_string(), REFUSAL_WINDOW)
        .await?;
    Ok(
        (objects >= REFUSED_OBJECTS_TO_HALT).then(|| PermissionLost {
            provider: provider.to_owned(),
            objects,
            last: refusal.to_owned(),
        }),
    )
}

/// Records that Graph accepted a write of `provider`: the refusals so far
/// were objects the app may not change, not a lost permission.
pub async fn record_accepted_write(store: &Store, provider: &str) -> Result<(), StoreError> {
    store.clear_forbidden_writes(provider).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_permission_says_how_many_objects_were_refused_and_what_to_do() {
        let lost = PermissionLost {
            provider: "contoso".into(),
            objects: 5,
            last: "update user 'x' failed: Insufficient privileges".into(),
        };
        assert_eq!(
            lost.to_string(),
            "Graph refused writes to 5 different objects with 403 within 10 min and none succeeded: \
             the app may have lost a permission (last: update user 'x' failed: Insufficient privileges); \
             check the app's API permissions in Entra, then run entra-sync resume --provider contoso"
        );
    }
}
