//! The work a direct change causes: after a user or group is reconciled
//! outside a full sync, the memberships it may have changed are checked by
//! membership tasks of their own (each reconciled under its group's lock,
//! DESIGN invariant 2).

use crate::objects::ObjectAction;
use entra_sync_authentik::AuthentikClient;
use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_store::{Store, StoreError};
use std::collections::BTreeSet;

/// Work a successful reconcile may cause outside a full sync.
pub(crate) enum FollowUp {
    /// Nothing to check.
    None,
    /// The user's memberships may differ from what we wrote: check the groups
    /// where they differ, or with `every`, all the user's groups on either side
    /// (a suspended user leaves every group we manage).
    UserGroups {
        /// The user.
        user: AkUserPk,
        /// Check every group, not only those whose membership differs.
        every: bool,
    },
    /// The group was just linked: its memberships can now be written.
    GroupMembers(AkGroupPk),
}

impl FollowUp {
    /// After user `user`'s reconcile did `action`.
    pub(crate) fn of_user(user: AkUserPk, action: &ObjectAction) -> Self {
        match action {
            ObjectAction::Created
            | ObjectAction::Adopted
            | ObjectAction::Recreated
            | ObjectAction::Updated(_)
            | ObjectAction::Unchanged => Self::UserGroups { user, every: false },
            ObjectAction::Suspended => Self::UserGroups { user, every: true },
            ObjectAction::Skipped(_)
            | ObjectAction::Deleted
            | ObjectAction::Unlinked
            | ObjectAction::DryRun(_) => Self::None,
        }
    }

    /// After group `group`'s reconcile did `action`.
    pub(crate) fn of_group(group: AkGroupPk, action: &ObjectAction) -> Self {
        match action {
            ObjectAction::Created | ObjectAction::Adopted | ObjectAction::Recreated => {
                Self::GroupMembers(group)
            }
            _ => Self::None,
        }
    }

    /// The groups whose membership tasks to publish. The user's groups in
    /// authentik are read afresh; if authentik cannot be read, none (the next
    /// full sync checks them).
    pub(crate) async fn groups(
        self,
        authentik: &AuthentikClient,
        store: &Store,
        provider: &str,
    ) -> Result<Vec<AkGroupPk>, StoreError> {
        let (user, every) = match self {
            Self::None => return Ok(Vec::new()),
            Self::GroupMembers(group) => return Ok(vec![group]),
            Self::UserGroups { user, every } => (user, every),
        };
        let wanted: BTreeSet<AkGroupPk> = match authentik.user(user).await {
            Ok(Some(user)) => user.groups.into_iter().collect(),
            Ok(None) => BTreeSet::new(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the user's groups; the next full sync checks them");
                return Ok(Vec::new());
            }
        };
        let written: BTreeSet<AkGroupPk> = store
            .written_groups_of(provider, user)
            .await?
            .into_iter()
            .collect();
        Ok(if every {
            wanted.union(&written).copied().collect()
        } else {
            wanted.symmetric_difference(&written).copied().collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suspended_user_is_checked_in_every_group_and_a_new_group_gets_its_members() {
        let user = AkUserPk(1);
        assert!(matches!(
            FollowUp::of_user(user, &ObjectAction::Suspended),
            FollowUp::UserGroups { every: true, .. }
        ));
        assert!(matches!(
            FollowUp::of_user(user, &ObjectAction::Updated(vec![])),
            FollowUp::UserGroups { every: false, .. }
        ));
        assert!(matches!(
            FollowUp::of_user(user, &ObjectAction::Deleted),
            FollowUp::None
        ));
        let group = AkGroupPk(uuid::Uuid::from_u128(7));
        assert!(matches!(
            FollowUp::of_group(group, &ObjectAction::Recreated),
            FollowUp::GroupMembers(g) if g == group
        ));
        assert!(matches!(
            FollowUp::of_group(group, &ObjectAction::Unchanged),
            FollowUp::None
        ));
    }
}
