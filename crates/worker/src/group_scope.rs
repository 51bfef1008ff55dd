//! Scope changes made from a group's side.
//!
//! authentik's admin UI changes membership through the group
//! (`POST /core/groups/{pk}/add_user/`, `…/remove_user/`), and the event it
//! records names only the group (`model_updated` on the group; see
//! `reference/authentik-versions.md` §3). When that group is the provider's
//! filter group, the users who joined or left it have changed scope, yet no
//! event names them. So a group event's task compares the filter group's
//! members in authentik now with the users we last provisioned (the active
//! user links: in scope as last decided) and publishes a direct user task for
//! each that differs. Each user's reconcile then decides on current facts: a
//! newcomer is created; one who left is deprovisioned per
//! `user_delete_action`, through the deletion guard (DESIGN invariant 7).
//!
//! authentik's event diff (`context.diff.users`) is not used: it exists only
//! with an enterprise licence from 2025.2 on. The comparison needs nothing but
//! the group and our links, so a missed or repeated event changes nothing.

use crate::ReconcileError;
use crate::provider::ProviderWorker;
use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use std::collections::BTreeSet;

/// The users whose scope a change of group `group` may have changed: if it
/// is the provider's filter group, its members without an active link and
/// the actively linked users no longer in it; otherwise none (scope depends
/// on no other group).
pub(crate) async fn users_to_check(
    worker: &ProviderWorker,
    group: AkGroupPk,
) -> Result<Vec<AkUserPk>, ReconcileError> {
    let users = &worker.users;
    if users.scope.current().await?.filter_group != Some(group) {
        return Ok(Vec::new());
    }
    // A filter group gone from authentik halts the provider (the producer
    // shares that before it publishes this task): nobody changes scope.
    let Some(filter_group) = worker.groups.authentik.group(group).await? else {
        return Ok(Vec::new());
    };
    let members: BTreeSet<AkUserPk> = filter_group.users.into_iter().collect();
    let provisioned: BTreeSet<AkUserPk> = users
        .store
        .active_links::<AkUserPk>(&users.provider.name)
        .await?
        .into_iter()
        .collect();
    let changed: Vec<AkUserPk> = members
        .symmetric_difference(&provisioned)
        .copied()
        .collect();
    if !changed.is_empty() {
        tracing::info!(provider = %users.provider.name, %group, users = changed.len(), "the filter group changed: checking the scope of these members");
    }
    Ok(changed)
}
