//! Reconciling the members of one authentik group with its Entra group.
//!
//! The desired members are the authentik members that have an active user
//! link; the current ones are the Entra group's actual members, listed with
//! `$select=id`. Only the difference is sent, both ways: adds 20 per request,
//! one request per removal. Linked users are authentik's to decide; other
//! members (cloud-only users, devices, service principals) are left alone
//! unless `remove_unmanaged_members` is set. Each write is recorded as soon as it succeeds, so a crash midway
//! neither loses nor repeats anything (DESIGN invariants 3 and 4).

mod failures;
mod write;

use crate::ReconcileError;
use entra_sync_authentik::AuthentikClient;
use entra_sync_core::diff;
use entra_sync_core::failure::FailureClass;
use entra_sync_core::ids::{AkGroupPk, AkUserPk, EntraObjectId};
use entra_sync_graph::{GraphClient, RequestRecord};
use entra_sync_store::Store;
use entra_sync_store::link_refs::LinkRef;
use entra_sync_store::links::LinkState;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

/// How long after a link was made Graph may still answer "not found" for its
/// object (replication delay); such answers are then retried, not taken as a
/// stale link.
pub const REPLICATION_WINDOW: Duration = Duration::from_secs(300);

/// Whether an object linked at `created_at` may not have replicated yet.
pub(crate) fn recently_linked(created_at: SystemTime) -> bool {
    created_at
        .elapsed()
        .is_ok_and(|age| age < REPLICATION_WINDOW)
}

/// What reconciling a group's members did.
#[derive(Debug, Clone, PartialEq)]
pub enum MembershipAction {
    /// The Entra group now has the desired members.
    Synced {
        /// Members added by this reconcile.
        added: Vec<AkUserPk>,
        /// Members removed by this reconcile.
        removed: Vec<AkUserPk>,
        /// authentik members without an active user link (not linked yet, or
        /// suspended): not written; the membership is sent again once they are linked.
        waiting: Vec<AkUserPk>,
    },
    /// The group is gone from authentik or not linked: nothing to do yet.
    GroupNotLinked,
    /// Dry run: these requests would have been sent.
    DryRun(Vec<RequestRecord>),
}

/// Everything needed to reconcile the memberships of one provider.
pub struct MembershipReconciler {
    /// Provider name.
    pub provider: String,
    /// Its Graph client.
    pub graph: GraphClient,
    /// The authentik client.
    pub authentik: AuthentikClient,
    /// The state.
    pub store: Store,
    /// Also remove members that are not linked users (`remove_unmanaged_members`).
    pub remove_unmanaged: bool,
}

/// The membership changes of one group, with both ids of every member involved.
struct Changes {
    group: AkGroupPk,
    entra_group: EntraObjectId,
    /// Every member's authentik id by Entra id (desired and written).
    ak_of: BTreeMap<EntraObjectId, AkUserPk>,
    /// Members whose user link is recent (for replication-delay handling).
    recent: BTreeSet<EntraObjectId>,
    group_recent: bool,
    diff: diff::MembershipDiff,
}

impl MembershipReconciler {
    /// Brings the members of the Entra group linked to authentik group `group`
    /// to the authentik members that are linked users.
    #[tracing::instrument(skip(self), fields(provider = %self.provider))]
    pub async fn reconcile(&self, group: AkGroupPk) -> Result<MembershipAction, ReconcileError> {
        let Some(ak_group) = self.authentik.group(group).await? else {
            return Ok(MembershipAction::GroupNotLinked);
        };
        let Some(group_link) = self.store.link_refs(&self.provider, &[group]).await?.pop() else {
            return Ok(MembershipAction::GroupNotLinked);
        };
        let group_recent = recently_linked(group_link.created_at);
        let actual = self
            .actual_members(group, &group_link.entra_id, group_recent)
            .await?;
        let members: BTreeSet<AkUserPk> = ak_group.users.iter().copied().collect();
        let written = self.store.written_members(&self.provider, group).await?;
        let involved: Vec<AkUserPk> = members.iter().copied().collect();
        let actual_ids: Vec<EntraObjectId> = actual.iter().cloned().collect();
        // The members that are ours: linked users, whatever authentik says of them.
        let ours = self
            .store
            .link_refs_by_entra_id::<AkUserPk>(&self.provider, &actual_ids)
            .await?;
        let links: BTreeMap<AkUserPk, LinkRef<AkUserPk>> = self
            .store
            .link_refs(&self.provider, &involved)
            .await?
            .into_iter()
            .chain(ours)
            .map(|l| (l.ak_id, l))
            .collect();
        let linked: BTreeSet<EntraObjectId> = links.values().map(|l| l.entra_id.clone()).collect();
        let active = |pk: &AkUserPk| {
            links
                .get(pk)
                .filter(|l| l.state == LinkState::Active)
                .map(|l| l.entra_id.clone())
        };
        let desired: BTreeSet<EntraObjectId> = members.iter().filter_map(active).collect();
        let waiting: Vec<AkUserPk> = members
            .iter()
            .filter(|pk| active(pk).is_none())
            .copied()
            .collect();
        // Members Entra already holds count as written.
        let unrecorded: Vec<AkUserPk> = members
            .iter()
            .filter(|pk| !written.contains(pk) && active(pk).is_some_and(|id| actual.contains(&id)))
            .copied()
            .collect();
        if !unrecorded.is_empty() && !self.graph.is_dry_run() {
            self.record(group, &group_link.entra_id, &unrecorded)
                .await?;
        }
        let changes = Changes {
            group,
            entra_group: group_link.entra_id.clone(),
            ak_of: links
                .values()
                .map(|l| (l.entra_id.clone(), l.ak_id))
                .collect(),
            recent: links
                .values()
                .filter(|l| recently_linked(l.created_at))
                .map(|l| l.entra_id.clone())
                .collect(),
            group_recent,
            diff: diff::member_changes(&desired, &actual, &linked, self.remove_unmanaged),
        };
        if changes.diff.is_empty() {
            return Ok(MembershipAction::Synced {
                added: Vec::new(),
                removed: Vec::new(),
                waiting,
            });
        }
        if self.graph.is_dry_run() {
            return self.dry_run(&changes).await;
        }
        let (added, removed) = self.write(&changes).await?;
        Ok(MembershipAction::Synced {
            added,
            removed,
            waiting,
        })
    }

    /// The Entra group's actual members (`$select=id`, paged). A group gone
    /// from Entra fails the reconcile (see [`Self::check_group_exists`]); one
    /// linked a moment ago may not have replicated yet, and is retried.
    async fn actual_members(
        &self,
        group: AkGroupPk,
        entra_group: &EntraObjectId,
        group_recent: bool,
    ) -> Result<BTreeSet<EntraObjectId>, ReconcileError> {
        match self.graph.list_members(entra_group).collect_all().await {
            Ok(members) => Ok(members.into_iter().map(|m| m.id).collect()),
            Err(f) if f.class == FailureClass::StaleLink && !group_recent => {
                Err(self.group_gone(group, entra_group).await?)
            }
            Err(f) if f.class == FailureClass::StaleLink => Err(ReconcileError::Transient {
                detail: format!("group {group}: Entra group {entra_group} not replicated yet"),
                retry_after: None,
            }),
            Err(f) => Err(write::whole_request(group, f)),
        }
    }

    /// Records members as written to `entra_group`, unless authentik group
    /// `group` was re-linked meanwhile (then the task is retried against the
    /// new link).
    async fn record(
        &self,
        group: AkGroupPk,
        entra_group: &EntraObjectId,
        members: &[AkUserPk],
    ) -> Result<(), ReconcileError> {
        if self
            .store
            .add_written_members_to(&self.provider, group, entra_group, members)
            .await?
        {
            Ok(())
        } else {
            Err(ReconcileError::Transient {
                detail: format!(
                    "group {group}: no longer linked to Entra group {entra_group} while its members were written"
                ),
                retry_after: None,
            })
        }
    }

    /// The linked Entra group `entra_group` is gone: its link is dropped (it
    /// is stale), so the group's next sync creates it again; the error fails
    /// this reconcile.
    async fn group_gone(
        &self,
        group: AkGroupPk,
        entra_group: &EntraObjectId,
    ) -> Result<ReconcileError, ReconcileError> {
        self.store.delete_link(&self.provider, group).await?;
        Ok(ReconcileError::Permanent(format!(
            "group {group}: its Entra group {entra_group} is gone; the link was dropped so that the group's next sync creates it again"
        )))
    }
}
