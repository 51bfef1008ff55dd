//! What a task came to, as the provisioning log (`object_outcomes`), `status`
//! and the metrics name it: the [`Action`] taken on the object and the task's
//! [`TaskResult`], and the detail recorded with them. Each failure class of
//! DESIGN invariant 6 ends in its own result.

use crate::memberships::MembershipAction;
use crate::objects::ObjectAction;
use entra_sync_core::ids::AkUserPk;
use entra_sync_graph::RequestRecord;
use serde_json::{Value, json};

/// What was done to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing: the task failed, is retried, was dead-lettered or halted its provider.
    None,
    /// Created in Entra and linked.
    Created,
    /// An existing Entra object was linked instead of creating one.
    Adopted,
    /// The linked Entra object was gone: created again.
    Recreated,
    /// Some properties or members were written.
    Updated,
    /// Entra already held the desired state.
    Unchanged,
    /// A mapping skipped the object.
    Skipped,
    /// Deleted in Entra.
    Deleted,
    /// A user's `accountEnabled` set false.
    Suspended,
    /// The link was dropped, Entra left alone.
    Unlinked,
    /// Memberships wait: the group is not linked (yet).
    GroupNotLinked,
    /// Dry run: the requests were withheld.
    DryRun,
}

impl Action {
    /// Whether Graph accepted a write for it.
    pub fn wrote_to_graph(self) -> bool {
        matches!(
            self,
            Self::Created
                | Self::Adopted
                | Self::Recreated
                | Self::Updated
                | Self::Deleted
                | Self::Suspended
        )
    }

    /// The name stored in the provisioning log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Created => "created",
            Self::Adopted => "adopted",
            Self::Recreated => "recreated",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::Skipped => "skipped",
            Self::Deleted => "deleted",
            Self::Suspended => "suspended",
            Self::Unlinked => "unlinked",
            Self::GroupNotLinked => "group_not_linked",
            Self::DryRun => "dry_run",
        }
    }
}

/// How the task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskResult {
    /// Reconciled.
    Ok,
    /// This object cannot be written as it is (a permanent failure); recorded, not retried.
    Failed,
    /// A transient failure: sent again after a delay, as one attempt more.
    Retrying,
    /// Not the object's fault (throttled, locked, a dependency unreachable):
    /// sent again after a delay without counting an attempt.
    Waiting,
    /// Out of attempts, or unreadable: in the dead-letter queue.
    Dead,
    /// A configuration failure halted the provider.
    Halted,
    /// The deletion guard held the delete or suspension back (not sent) and
    /// halted the provider.
    HeldBack,
    /// The provider is halted: the task was dropped unread.
    Dropped,
}

impl TaskResult {
    /// The name stored in the provisioning log and used as the metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Retrying => "retrying",
            Self::Waiting => "waiting",
            Self::Dead => "dead",
            Self::Halted => "halted",
            Self::HeldBack => "held_back",
            Self::Dropped => "dropped",
        }
    }
}

/// A successful reconcile, as the provisioning log records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    /// What was done.
    pub action: Action,
    /// The properties written, the members changed, the skipping mapping or
    /// the withheld requests.
    pub detail: Option<Value>,
}

impl Done {
    fn plain(action: Action) -> Self {
        Self {
            action,
            detail: None,
        }
    }

    /// What a user's or group's reconcile did. A dry run's withheld request is
    /// logged here, once.
    pub fn of_object(action: &ObjectAction) -> Self {
        match action {
            ObjectAction::Created => Self::plain(Action::Created),
            ObjectAction::Adopted => Self::plain(Action::Adopted),
            ObjectAction::Recreated => Self::plain(Action::Recreated),
            ObjectAction::Updated(properties) => Self {
                action: Action::Updated,
                detail: Some(json!({ "properties": properties })),
            },
            ObjectAction::Unchanged => Self::plain(Action::Unchanged),
            ObjectAction::Skipped(by) => Self {
                action: Action::Skipped,
                detail: Some(json!({ "mapping": by })),
            },
            ObjectAction::Deleted => Self::plain(Action::Deleted),
            ObjectAction::Suspended => Self::plain(Action::Suspended),
            ObjectAction::Unlinked => Self::plain(Action::Unlinked),
            ObjectAction::DryRun(request) => {
                log_dry_run(request);
                Self {
                    action: Action::DryRun,
                    detail: Some(request_detail(request)),
                }
            }
        }
    }

    /// What a group's membership reconcile did. A dry run's withheld requests
    /// are logged here, once.
    pub fn of_memberships(action: &MembershipAction) -> Self {
        match action {
            MembershipAction::Synced {
                added,
                removed,
                waiting,
            } => {
                let pks = |v: &[AkUserPk]| v.iter().map(|p| p.0).collect::<Vec<_>>();
                let action = if added.is_empty() && removed.is_empty() {
                    Action::Unchanged
                } else {
                    Action::Updated
                };
                Self {
                    action,
                    detail: Some(
                        json!({ "added": pks(added), "removed": pks(removed), "waiting_for_user_link": pks(waiting) }),
                    ),
                }
            }
            MembershipAction::GroupNotLinked => Self::plain(Action::GroupNotLinked),
            MembershipAction::DryRun(requests) => {
                requests.iter().for_each(log_dry_run);
                let requests: Vec<Value> = requests.iter().map(request_detail).collect();
                Self {
                    action: Action::DryRun,
                    detail: Some(json!({ "requests": requests })),
                }
            }
        }
    }
}

fn request_detail(request: &RequestRecord) -> Value {
    json!({ "method": request.method, "url": request.url, "body": request.body })
}

/// Logs a request dry run withheld.
fn log_dry_run(request: &RequestRecord) {
    tracing::info!(method = %request.method, url = %request.url, body = ?request.body, "dry run: request not sent");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_keep_their_stored_names() {
        let names: Vec<&str> = [
            Action::None,
            Action::Created,
            Action::Adopted,
            Action::Recreated,
            Action::Updated,
            Action::Unchanged,
            Action::Skipped,
            Action::Deleted,
            Action::Suspended,
            Action::Unlinked,
            Action::GroupNotLinked,
            Action::DryRun,
        ]
        .into_iter()
        .map(Action::as_str)
        .collect();
        assert_eq!(
            names,
            [
                "none",
                "created",
                "adopted",
                "recreated",
                "updated",
                "unchanged",
                "skipped",
                "deleted",
                "suspended",
                "unlinked",
                "group_not_linked",
                "dry_run"
            ]
        );
    }

    #[test]
    fn results_keep_their_stored_names() {
        let names: Vec<&str> = [
            TaskResult::Ok,
            TaskResult::Failed,
            TaskResult::Retrying,
            TaskResult::Waiting,
            TaskResult::Dead,
            TaskResult::Halted,
            TaskResult::HeldBack,
            TaskResult::Dropped,
        ]
        .into_iter()
        .map(TaskResult::as_str)
        .collect();
        assert_eq!(
            names,
            [
                "ok",
                "failed",
                "retrying",
                "waiting",
                "dead",
                "halted",
                "held_back",
                "dropped"
            ]
        );
    }

    #[test]
    fn the_log_detail_names_what_was_written() {
        let updated = Done::of_object(&ObjectAction::Updated(vec!["displayName".into()]));
        assert_eq!(updated.action, Action::Updated);
        assert_eq!(
            updated.detail,
            Some(json!({ "properties": ["displayName"] }))
        );
        let skipped = Done::of_object(&ObjectAction::Skipped("10-skip".into()));
        assert_eq!(skipped.detail, Some(json!({ "mapping": "10-skip" })));
        let synced = Done::of_memberships(&MembershipAction::Synced {
            added: vec![AkUserPk(1)],
            removed: vec![],
            waiting: vec![AkUserPk(2)],
        });
        assert_eq!(synced.action, Action::Updated);
        assert_eq!(
            synced.detail,
            Some(json!({ "added": [1], "removed": [], "waiting_for_user_link": [2] }))
        );
        let nothing = Done::of_memberships(&MembershipAction::Synced {
            added: vec![],
            removed: vec![],
            waiting: vec![],
        });
        assert_eq!(nothing.action, Action::Unchanged);
    }
}
