//! Sending one group's membership changes to Graph: adds in chunks of 20
//! (one by one when a chunk names a member that is gone), one request per
//! removal, each recorded as soon as it succeeds; or, in a dry run, only the
//! requests they would take.

use super::failures::Failures;
use super::{Changes, MembershipAction, MembershipReconciler};
use crate::ReconcileError;
use entra_sync_core::failure::FailureClass;
use entra_sync_core::ids::{AkGroupPk, AkUserPk, EntraObjectId};
use entra_sync_graph::{GraphFailure, MemberAddReport, Written};

impl MembershipReconciler {
    /// Sends the changes, recording each as it succeeds; per-member failures
    /// are reported after every other member was written.
    pub(super) async fn write(
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
                Err(self.group_gone(changes.group, &changes.entra_group).await?)
            }
            Err(f) => Err(whole_request(changes.group, f)),
        }
    }

    /// The requests the changes would take; nothing is sent or recorded.
    pub(super) async fn dry_run(
        &self,
        changes: &Changes,
    ) -> Result<MembershipAction, ReconcileError> {
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
pub(super) fn whole_request(group: AkGroupPk, f: GraphFailure) -> ReconcileError {
    let detail = format!("group {group}: {f}");
    ReconcileError::from(f).with_detail(detail)
}
