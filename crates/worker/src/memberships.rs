//! Reconciling the members of one authentik group with its Entra group.
//!
//! The desired members are the authentik members that have an active user
//! link; the current ones are the Entra group's actual members, listed with
//! `$select=id`. Only the difference is sent, both ways: adds 20 per request,
//! one request per removal. Linked users are authentik's to decide; other
//! members (cloud-only users, devices, service principals) are left alone
//! unless `remove_unmanaged_members` is set. Each write is recorded as soon as it succeeds, so a crash midway
//! neither loses nor repeats anything (DESIGN invariants 3 and 4).

use crate::ReconcileError;
use entra_sync_authentik::AuthentikClient;
use entra_sync_core::diff;
use entra_sync_core::failure::FailureClass;
use entra_sync_core::ids::{AkGroupPk, AkUserPk, EntraObjectId};
use entra_sync_graph::{GraphClient, GraphFailure, MemberAddReport, RequestRecord, Written};
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

/// Per-member failures collected while the other members are written.
#[derive(Default)]
struct Failures(Vec<(AkUserPk, GraphFailure)>);

impl Failures {
    /// The error to report: a configuration failure halts the provider; else a
    /// transient one retries the task (which re-sends only what is still
    /// missing); else the members cannot be written.
    fn into_result(self, group: AkGroupPk) -> Result<(), ReconcileError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let list = self
            .0
            .iter()
            .map(|(pk, f)| format!("user {pk}: {f}"))
            .collect::<Vec<_>>()
            .join("; ");
        let detail = format!(
            "group {group}: {} member changes failed: {list}",
            self.0.len()
        );
        let classes: Vec<FailureClass> = self.0.iter().map(|(_, f)| f.class).collect();
        if classes.contains(&FailureClass::Configuration) {
            Err(ReconcileError::Configuration(detail))
        } else if classes.contains(&FailureClass::Forbidden) {
            Err(ReconcileError::Forbidden(detail))
        } else if classes.contains(&FailureClass::Transient) {
            let retry_after = self.0.iter().filter_map(|(_, f)| f.retry_after).max();
            let throttled = self
                .0
                .iter()
                .filter(|(_, f)| f.class == FailureClass::Transient)
                .all(|(_, f)| crate::is_throttle(f));
            if throttled {
                Err(ReconcileError::Waiting {
                    wait: crate::waiting::Wait::Throttled,
                    detail,
                    retry_after,
                })
            } else {
                Err(ReconcileError::Transient {
                    detail,
                    retry_after,
                })
            }
        } else {
            Err(ReconcileError::Permanent(detail))
        }
    }
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
                self.store.delete_link(&self.provider, group).await?;
                Err(ReconcileError::Permanent(format!(
                    "group {group}: its Entra group {entra_group} is gone; the link was dropped so that the group's next sync creates it again"
                )))
            }
            Err(f) if f.class == FailureClass::StaleLink => Err(ReconcileError::Transient {
                detail: format!("group {group}: Entra group {entra_group} not replicated yet"),
                retry_after: None,
            }),
            Err(f) => Err(whole_request(group, f)),
        }
    }

    /// Sends the changes, recording each as it succeeds; per-member failures
    /// are reported after every other member was written.
    async fn write(
        &self,
        changes: &Changes,
    ) -> Result<(Vec<AkUserPk>, Vec<AkUserPk>), ReconcileError> {
        let ak = |id: &EntraObjectId| changes.ak_of[id];
        let mut failures = Failures::default();
        let mut added = Vec::new();
        for chunk in &changes.diff.add {
            let report = self.add_chunk(changes, chunk).await?;
            let done: Vec<AkUserPk> = report
                .added
                .iter()
                .chain(&report.already_present)
                .map(ak)
                .collect();
            self.record(changes.group, &changes.entra_group, &done)
                .await?;
            added.extend(done);
            failures
                .0
                .extend(report.failed.into_iter().map(|(m, f)| (ak(&m), f)));
        }
        let mut removed = Vec::new();
        for member in &changes.diff.remove {
            let pk = changes.ak_of.get(member).copied();
            match self.graph.remove_member(&changes.entra_group, member).await {
                Ok(Written::DryRun(_)) => unreachable!("dry run is handled before writing"),
                Ok(_) => match pk {
                    Some(pk) => {
                        self.store
                            .remove_written_members(&self.provider, changes.group, &[pk])
                            .await?;
                        removed.push(pk);
                    }
                    None => {
                        tracing::info!(group = %changes.group, member = %member, "removed a member that is not a linked user (remove_unmanaged_members)");
                    }
                },
                Err(f) if matches!(f.class, FailureClass::Permanent | FailureClass::Forbidden) => {
                    match pk {
                        Some(pk) => failures.0.push((pk, f)),
                        None => return Err(whole_request(changes.group, f)),
                    }
                }
                Err(f) => return Err(whole_request(changes.group, f)),
            }
        }
        failures.into_result(changes.group)?;
        Ok((added, removed))
    }

    /// Records members as written to `entra_group`.
    async fn record(
        &self,
        group: AkGroupPk,
        entra_group: &EntraObjectId,
        members: &[AkUserPk],
    ) -> Result<(), ReconcileError> {
        record(&self.store, &self.provider, group, entra_group, members).await
    }

    /// Adds up to 20 members with one request. If Graph answers "not found"
    /// for the whole request, either the group or some members are gone: a
    /// gone group fails the reconcile (see [`Self::check_group_exists`]),
    /// otherwise the members are added one by one so that the gone ones are
    /// named and the others still written.
    async fn add_chunk(
        &self,
        changes: &Changes,
        chunk: &[EntraObjectId],
    ) -> Result<MemberAddReport, ReconcileError> {
        let recent = changes.group_recent || chunk.iter().any(|m| changes.recent.contains(m));
        let group = &changes.entra_group;
        match self.graph.add_members(group, chunk, recent).await {
            Ok(written) => Ok(report_of(written, chunk)),
            Err(f) if f.class == FailureClass::StaleLink => {
                self.check_group_exists(changes).await?;
                let mut report = MemberAddReport::default();
                for member in chunk {
                    let one = std::slice::from_ref(member);
                    let recent = changes.group_recent || changes.recent.contains(member);
                    match self.graph.add_members(group, one, recent).await {
                        Ok(written) => {
                            let r = report_of(written, one);
                            report.added.extend(r.added);
                            report.already_present.extend(r.already_present);
                            report.failed.extend(r.failed);
                        }
                        Err(f) => report.failed.push((member.clone(), f)),
                    }
                }
                Ok(report)
            }
            Err(f) => Err(whole_request(changes.group, f)),
        }
    }

    /// Fails if the linked Entra group is gone; its link is then dropped (it
    /// is stale), so the group's next sync creates it again.
    async fn check_group_exists(&self, changes: &Changes) -> Result<(), ReconcileError> {
        match self
            .graph
            .get_group(&changes.entra_group, changes.group_recent)
            .await
        {
            Ok(_) => Ok(()),
            Err(f) if f.class == FailureClass::StaleLink => {
                self.store
                    .delete_link(&self.provider, changes.group)
                    .await?;
                Err(ReconcileError::Permanent(format!(
                    "group {}: its Entra group {} is gone; the link was dropped so that the group's next sync creates it again",
                    changes.group, changes.entra_group
                )))
            }
            Err(f) => Err(whole_request(changes.group, f)),
        }
    }

    /// The requests the changes would take; nothing is sent or recorded.
    async fn dry_run(&self, changes: &Changes) -> Result<MembershipAction, ReconcileError> {
        let failed = |f| whole_request(changes.group, f);
        let mut requests = Vec::new();
        for chunk in &changes.diff.add {
            if let Written::DryRun(r) = self
                .graph
                .add_members(&changes.entra_group, chunk, false)
                .await
                .map_err(failed)?
            {
                requests.push(r);
            }
        }
        for member in &changes.diff.remove {
            if let Written::DryRun(r) = self
                .graph
                .remove_member(&changes.entra_group, member)
                .await
                .map_err(failed)?
            {
                requests.push(r);
            }
        }
        Ok(MembershipAction::DryRun(requests))
    }
}

/// What an add of `members` did.
fn report_of(written: Written<MemberAddReport>, members: &[EntraObjectId]) -> MemberAddReport {
    match written {
        Written::Done { value, .. } => value,
        Written::AlreadyDone { .. } => MemberAddReport {
            already_present: members.to_vec(),
            ..MemberAddReport::default()
        },
        Written::DryRun(_) => unreachable!("dry run is handled before writing"),
    }
}

/// A failure of a whole request, which stops the reconcile: what was written
/// before it is recorded, the rest is sent again on retry.
fn whole_request(group: AkGroupPk, f: GraphFailure) -> ReconcileError {
    let detail = format!("group {group}: {f}");
    ReconcileError::from(f).with_detail(detail)
}

/// Records members as written to `entra_group`, unless authentik group `group`
/// was re-linked meanwhile (then the task is retried against the new link).
async fn record(
    store: &Store,
    provider: &str,
    group: AkGroupPk,
    entra_group: &EntraObjectId,
    members: &[AkUserPk],
) -> Result<(), ReconcileError> {
    if store
        .add_written_members_to(provider, group, entra_group, members)
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
