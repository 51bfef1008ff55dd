//! The deletion guard (DESIGN invariant 7): what happens to linked objects
//! gone from authentik or out of scope, and how many a full sync may delete or
//! suspend before it stops. A run counts its deletions with the worker's own
//! rule, `entra_sync_core::reconcile::plan`, so the two can never disagree.

use entra_sync_core::authentik::AkUser;
use entra_sync_core::diff::Body;
use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_core::reconcile::{DeleteAction, Desired, Kind, Known, Plan, plan};
use entra_sync_core::scope::Scope;
use entra_sync_store::links::{Link, LinkState};
use std::collections::{BTreeSet, HashMap};

/// What happens to linked objects gone from authentik or out of scope, and
/// how many one full sync may delete or suspend.
///
/// The threshold counts per full sync; the rolling window of invariant 7
/// (`deletion_window`, over every path) belongs here once configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletionPolicy {
    /// What happens to users.
    pub users: DeleteAction,
    /// What happens to groups (`suspend` acts as `do_nothing`).
    pub groups: DeleteAction,
    /// A run that would delete or suspend more objects than this stops before any write.
    pub threshold: u32,
}

/// A full sync would delete or suspend more objects than the threshold allows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "full sync stopped: it would delete or suspend {count} objects, more than deletion_threshold {threshold}; nothing was changed"
)]
pub struct TooManyDeletions {
    /// How many objects the run would delete or suspend.
    pub count: u64,
    /// The configured threshold.
    pub threshold: u32,
}

/// What a run read of authentik: enough to tell whether a linked object is
/// present, out of scope or deleted.
#[derive(Debug, Clone, Copy)]
pub struct AuthentikSide<'a> {
    /// Every authentik user, by pk.
    pub users: &'a HashMap<AkUserPk, AkUser>,
    /// Every authentik group.
    pub groups: &'a BTreeSet<AkGroupPk>,
    /// The scope, resolved for this run.
    pub scope: &'a Scope,
}

impl AuthentikSide<'_> {
    fn user(&self, pk: AkUserPk) -> Desired {
        match self.users.get(&pk) {
            None => Desired::Deleted,
            Some(user) if !self.scope.includes_user(user) => Desired::OutOfScope,
            Some(_) => present(),
        }
    }

    fn group(&self, pk: AkGroupPk) -> Desired {
        if self.groups.contains(&pk) {
            present()
        } else {
            Desired::Deleted
        }
    }
}

/// A present object. A run does not map objects: their bodies decide what is
/// updated, never whether anything is deleted or suspended.
fn present() -> Desired {
    Desired::Present(Body::new())
}

impl DeletionPolicy {
    /// How many of the linked users and groups a run would delete or suspend;
    /// `Err` when that is more than the threshold.
    pub fn check_run(
        &self,
        authentik: &AuthentikSide<'_>,
        user_links: &[Link<AkUserPk>],
        group_links: &[Link<AkGroupPk>],
    ) -> Result<u64, TooManyDeletions> {
        let users = user_links
            .iter()
            .filter(|l| self.deprovisions(Kind::User, &authentik.user(l.ak_id), l));
        let groups = group_links
            .iter()
            .filter(|l| self.deprovisions(Kind::Group, &authentik.group(l.ak_id), l));
        let count = (users.count() + groups.count()) as u64;
        if count > u64::from(self.threshold) {
            Err(TooManyDeletions {
                count,
                threshold: self.threshold,
            })
        } else {
            Ok(count)
        }
    }

    /// Whether the worker will delete or suspend this linked object.
    fn deprovisions<K>(&self, kind: Kind, desired: &Desired, link: &Link<K>) -> bool {
        let on_delete = match kind {
            Kind::User => self.users,
            Kind::Group => self.groups,
        };
        let known = Known {
            entra_id: &link.entra_id,
            attributes: &link.attributes,
            suspended: link.state == LinkState::Suspended,
        };
        matches!(
            plan(kind, desired, Some(&known), on_delete),
            Plan::Delete(_) | Plan::Suspend(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use entra_sync_core::ids::EntraObjectId;
    use entra_sync_store::links::LinkOrigin;

    fn link<K>(ak_id: K, n: u128, state: LinkState) -> Link<K> {
        Link {
            ak_id,
            entra_id: EntraObjectId::parse(&format!("00000000-0000-0000-0000-{n:012}")).unwrap(),
            attributes: Body::new(),
            origin: LinkOrigin::Created,
            state,
        }
    }

    fn user(pk: i64, groups: Vec<AkGroupPk>) -> AkUser {
        let user: AkUser =
            serde_json::from_value(serde_json::json!({"pk": pk, "username": format!("u{pk}")}))
                .unwrap();
        AkUser { groups, ..user }
    }

    fn policy(users: DeleteAction, groups: DeleteAction, threshold: u32) -> DeletionPolicy {
        DeletionPolicy {
            users,
            groups,
            threshold,
        }
    }

    /// The full-sync threshold test's directory: one user kept in authentik;
    /// three linked users gone from it, one of them already suspended; one
    /// linked group gone.
    struct Gone {
        users: HashMap<AkUserPk, AkUser>,
        groups: BTreeSet<AkGroupPk>,
        scope: Scope,
        user_links: Vec<Link<AkUserPk>>,
        group_links: Vec<Link<AkGroupPk>>,
    }

    impl Gone {
        fn new() -> Self {
            Self {
                users: HashMap::from([(AkUserPk(1), user(1, vec![]))]),
                groups: BTreeSet::new(),
                scope: Scope::default(),
                user_links: vec![
                    link(AkUserPk(901), 1, LinkState::Active),
                    link(AkUserPk(902), 2, LinkState::Active),
                    link(AkUserPk(903), 3, LinkState::Suspended),
                ],
                group_links: vec![link(AkGroupPk(uuid(77)), 77, LinkState::Active)],
            }
        }

        fn check(&self, policy: DeletionPolicy) -> Result<u64, TooManyDeletions> {
            let side = AuthentikSide {
                users: &self.users,
                groups: &self.groups,
                scope: &self.scope,
            };
            policy.check_run(&side, &self.user_links, &self.group_links)
        }
    }

    fn uuid(n: u128) -> uuid::Uuid {
        uuid::Uuid::from_u128(n)
    }

    #[test]
    fn deleting_counts_every_gone_linked_object_suspended_or_not() {
        let gone = Gone::new();
        let delete = |threshold| policy(DeleteAction::Delete, DeleteAction::Delete, threshold);
        assert_eq!(
            gone.check(delete(3)),
            Err(TooManyDeletions {
                count: 4,
                threshold: 3
            })
        );
        assert_eq!(gone.check(delete(4)), Ok(4));
    }

    #[test]
    fn suspending_skips_users_already_suspended_and_groups_are_never_suspended() {
        let gone = Gone::new();
        assert_eq!(
            gone.check(policy(DeleteAction::Suspend, DeleteAction::DoNothing, 1)),
            Err(TooManyDeletions {
                count: 2,
                threshold: 1
            })
        );
        assert_eq!(
            gone.check(policy(DeleteAction::Suspend, DeleteAction::Suspend, 2)),
            Ok(2)
        );
    }

    #[test]
    fn do_nothing_deletes_nothing() {
        let gone = Gone::new();
        assert_eq!(
            gone.check(policy(DeleteAction::DoNothing, DeleteAction::DoNothing, 0)),
            Ok(0)
        );
    }

    #[test]
    fn out_of_scope_users_count_and_present_objects_do_not() {
        let staff = AkGroupPk(uuid(5));
        let mut gone = Gone::new();
        gone.users = HashMap::from([
            (AkUserPk(901), user(901, vec![staff])),
            (AkUserPk(902), user(902, vec![])),
            (AkUserPk(903), user(903, vec![staff])),
        ]);
        gone.groups = BTreeSet::from([AkGroupPk(uuid(77))]);
        gone.scope = Scope {
            filter_group: Some(staff),
            exclude_service_accounts: false,
        };
        // 902 left the filter group; the others and the group are present.
        let delete = policy(DeleteAction::Delete, DeleteAction::Delete, 0);
        assert_eq!(
            gone.check(delete),
            Err(TooManyDeletions {
                count: 1,
                threshold: 0
            })
        );
    }

    #[test]
    fn the_message_says_how_many_were_held_back() {
        let message = TooManyDeletions {
            count: 4,
            threshold: 3,
        }
        .to_string();
        assert!(
            message
                .contains("it would delete or suspend 4 objects, more than deletion_threshold 3"),
            "{message}"
        );
    }
}
