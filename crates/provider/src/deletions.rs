//! The deletion policy (DESIGN invariant 7): what happens to linked objects
//! gone from authentik or out of scope, and how many may be deleted or
//! suspended within a rolling window ([`crate::DeletionGuard`] enforces it).
//! A run counts its deletions with the worker's own rule,
//! `entra_sync_core::reconcile::plan`, so the two can never disagree.

use entra_sync_core::diff::Body;
use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_core::reconcile::{DeleteAction, Desired, Kind, Known, Plan, plan};
use entra_sync_store::guard::GuardLimit;
use entra_sync_store::link_refs::LinkRef;
use entra_sync_store::links::LinkState;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// What happens to linked objects gone from authentik or out of scope, and
/// how many may be deleted or suspended, on every path together, within a
/// rolling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletionPolicy {
    /// What happens to users.
    pub users: DeleteAction,
    /// What happens to groups (`suspend` acts as `do_nothing`).
    pub groups: DeleteAction,
    /// At most this many deletes and suspends (`deletion_threshold`) …
    pub threshold: u32,
    /// … within this rolling window (`deletion_window`).
    pub window: Duration,
}

/// What a run knows of authentik: enough to tell a linked object that is
/// present from one gone or out of scope, without holding every user.
#[derive(Debug, Clone, Copy)]
pub struct AuthentikSide<'a> {
    /// Every authentik user by pk, with whether it is in scope for this run.
    pub users: &'a HashMap<AkUserPk, bool>,
    /// Every authentik group.
    pub groups: &'a BTreeSet<AkGroupPk>,
}

impl AuthentikSide<'_> {
    fn user(&self, pk: AkUserPk) -> Desired {
        match self.users.get(&pk) {
            None => Desired::Deleted,
            Some(false) => Desired::OutOfScope,
            Some(true) => present(),
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
    /// The limit the store holds claims to.
    pub fn limit(&self) -> GuardLimit {
        GuardLimit {
            threshold: self.threshold,
            window: self.window,
        }
    }

    /// How many of the linked users and groups a run would delete or suspend.
    pub fn count_run(
        &self,
        authentik: &AuthentikSide<'_>,
        user_links: &[LinkRef<AkUserPk>],
        group_links: &[LinkRef<AkGroupPk>],
    ) -> u64 {
        let users = user_links
            .iter()
            .filter(|l| self.deprovisions(Kind::User, &authentik.user(l.ak_id), l));
        let groups = group_links
            .iter()
            .filter(|l| self.deprovisions(Kind::Group, &authentik.group(l.ak_id), l));
        (users.count() + groups.count()) as u64
    }

    /// Whether the worker will delete or suspend this linked object (which
    /// never depends on what was written to it).
    fn deprovisions<K>(&self, kind: Kind, desired: &Desired, link: &LinkRef<K>) -> bool {
        let on_delete = match kind {
            Kind::User => self.users,
            Kind::Group => self.groups,
        };
        let known = Known {
            entra_id: &link.entra_id,
            attributes: &Body::new(),
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
    use std::time::SystemTime;

    fn link<K>(ak_id: K, n: u128, state: LinkState) -> LinkRef<K> {
        LinkRef {
            ak_id,
            entra_id: EntraObjectId::parse(&format!("00000000-0000-0000-0000-{n:012}")).unwrap(),
            state,
            created_at: SystemTime::UNIX_EPOCH,
        }
    }

    fn policy(users: DeleteAction, groups: DeleteAction) -> DeletionPolicy {
        DeletionPolicy {
            users,
            groups,
            threshold: 500,
            window: Duration::from_secs(3600),
        }
    }

    /// A directory: one user kept in authentik; three linked users gone from
    /// it, one of them already suspended; one linked group gone.
    struct Gone {
        users: HashMap<AkUserPk, bool>,
        groups: BTreeSet<AkGroupPk>,
        user_links: Vec<LinkRef<AkUserPk>>,
        group_links: Vec<LinkRef<AkGroupPk>>,
    }

    impl Gone {
        fn new() -> Self {
            Self {
                users: HashMap::from([(AkUserPk(1), true)]),
                groups: BTreeSet::new(),
                user_links: vec![
                    link(AkUserPk(901), 1, LinkState::Active),
                    link(AkUserPk(902), 2, LinkState::Active),
                    link(AkUserPk(903), 3, LinkState::Suspended),
                ],
                group_links: vec![link(AkGroupPk(uuid(77)), 77, LinkState::Active)],
            }
        }

        fn count(&self, policy: DeletionPolicy) -> u64 {
            let side = AuthentikSide {
                users: &self.users,
                groups: &self.groups,
            };
            policy.count_run(&side, &self.user_links, &self.group_links)
        }
    }

    fn uuid(n: u128) -> uuid::Uuid {
        uuid::Uuid::from_u128(n)
    }

    #[test]
    fn deleting_counts_every_gone_linked_object_suspended_or_not() {
        let gone = Gone::new();
        assert_eq!(
            gone.count(policy(DeleteAction::Delete, DeleteAction::Delete)),
            4
        );
    }

    #[test]
    fn suspending_skips_users_already_suspended_and_groups_are_never_suspended() {
        let gone = Gone::new();
        assert_eq!(
            gone.count(policy(DeleteAction::Suspend, DeleteAction::DoNothing)),
            2
        );
        assert_eq!(
            gone.count(policy(DeleteAction::Suspend, DeleteAction::Suspend)),
            2
        );
    }

    #[test]
    fn do_nothing_deletes_nothing() {
        let gone = Gone::new();
        assert_eq!(
            gone.count(policy(DeleteAction::DoNothing, DeleteAction::DoNothing)),
            0
        );
    }

    #[test]
    fn out_of_scope_users_count_and_present_objects_do_not() {
        let mut gone = Gone::new();
        gone.users = HashMap::from([
            (AkUserPk(901), true),
            (AkUserPk(902), false),
            (AkUserPk(903), true),
        ]);
        gone.groups = BTreeSet::from([AkGroupPk(uuid(77))]);
        // 902 left the scope; the others and the group are present.
        assert_eq!(
            gone.count(policy(DeleteAction::Delete, DeleteAction::Delete)),
            1
        );
    }

    #[test]
    fn the_limit_is_the_threshold_within_the_window() {
        let policy = policy(DeleteAction::Delete, DeleteAction::Delete);
        assert_eq!(
            policy.limit(),
            GuardLimit {
                threshold: 500,
                window: Duration::from_secs(3600)
            }
        );
    }
}
