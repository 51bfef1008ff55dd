//! Whether the app's granted application permissions cover the writes a
//! provider makes (`microsoft-graph.md` §9), so a missing one is found before
//! any write rather than by a 403.
//!
//! The permissions come from the access token's `roles` claim. Microsoft
//! documents access tokens as opaque, so the claim may be unreadable or absent:
//! then nothing can be said, and the 403 classification is what remains.

use std::collections::BTreeSet;
use std::fmt;

/// Grants every write below.
const DIRECTORY_WRITE: &str = "Directory.ReadWrite.All";

/// A kind of write a provider makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WriteKind {
    /// Creating, updating, disabling and deleting users.
    Users,
    /// Creating, updating and deleting groups.
    Groups,
    /// Adding and removing group members.
    Memberships,
}

impl WriteKind {
    /// Every kind of write.
    pub const ALL: [WriteKind; 3] = [Self::Users, Self::Groups, Self::Memberships];

    /// The least privileged permission that covers it, as the operator should grant it.
    pub fn permission(self) -> &'static str {
        match self {
            Self::Users => "User.ReadWrite.All",
            Self::Groups => "Group.ReadWrite.All",
            Self::Memberships => "GroupMember.ReadWrite.All",
        }
    }

    /// Every permission that covers it on its own.
    fn covered_by(self) -> &'static [&'static str] {
        match self {
            Self::Users => &["User.ReadWrite.All", DIRECTORY_WRITE],
            Self::Groups => &["Group.ReadWrite.All", DIRECTORY_WRITE],
            Self::Memberships => &[
                "GroupMember.ReadWrite.All",
                "Group.ReadWrite.All",
                DIRECTORY_WRITE,
            ],
        }
    }

    fn purpose(self) -> &'static str {
        match self {
            Self::Users => "to create, update and delete users",
            Self::Groups => "to create and update groups",
            Self::Memberships => "to add and remove group members",
        }
    }
}

impl fmt::Display for WriteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Users => "users",
            Self::Groups => "groups",
            Self::Memberships => "memberships",
        })
    }
}

/// A kind of write the app's granted permissions leave uncovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the app's token lacks {} (needed {})", .0.permission(), .0.purpose())]
pub struct MissingPermission(pub WriteKind);

/// The writes among `writes` that `roles` (the token's `roles` claim) leave
/// uncovered, in order; empty when all are covered. `None` when `roles` is
/// `None` (the token didn't decode or has no claim): nothing can be said.
pub fn missing_permissions(
    roles: Option<&BTreeSet<String>>,
    writes: impl IntoIterator<Item = WriteKind>,
) -> Option<Vec<MissingPermission>> {
    let roles = roles?;
    let granted = |permission: &&str| roles.iter().any(|r| r.eq_ignore_ascii_case(permission));
    let needed: BTreeSet<WriteKind> = writes.into_iter().collect();
    Some(
        needed
            .into_iter()
            .filter(|write| !write.covered_by().iter().any(granted))
            .map(MissingPermission)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roles(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn roles_without_group_write_name_the_missing_permission() {
        let granted = roles(&["User.ReadWrite.All", "GroupMember.ReadWrite.All"]);
        let missing = missing_permissions(Some(&granted), WriteKind::ALL).unwrap();
        assert_eq!(missing, vec![MissingPermission(WriteKind::Groups)]);
        assert_eq!(
            missing[0].to_string(),
            "the app's token lacks Group.ReadWrite.All (needed to create and update groups)"
        );
    }

    #[test]
    fn directory_read_write_covers_everything() {
        let granted = roles(&["Directory.ReadWrite.All"]);
        assert_eq!(
            missing_permissions(Some(&granted), WriteKind::ALL),
            Some(vec![])
        );
    }

    #[test]
    fn group_read_write_covers_memberships() {
        let granted = roles(&["User.ReadWrite.All", "Group.ReadWrite.All"]);
        assert_eq!(
            missing_permissions(Some(&granted), WriteKind::ALL),
            Some(vec![])
        );
    }

    #[test]
    fn only_the_writes_the_provider_makes_are_checked() {
        let granted = roles(&["User.ReadWrite.All"]);
        assert_eq!(
            missing_permissions(Some(&granted), [WriteKind::Users]),
            Some(vec![])
        );
        assert_eq!(
            missing_permissions(Some(&BTreeSet::new()), [WriteKind::Memberships]),
            Some(vec![MissingPermission(WriteKind::Memberships)])
        );
    }

    #[test]
    fn read_permissions_cover_no_write() {
        let granted = roles(&["User.Read.All", "Group.Read.All", "Directory.Read.All"]);
        assert_eq!(
            missing_permissions(Some(&granted), WriteKind::ALL).map(|m| m.len()),
            Some(3)
        );
    }

    #[test]
    fn no_roles_claim_says_nothing() {
        assert_eq!(missing_permissions(None, WriteKind::ALL), None);
    }

    fn any_role() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("User.ReadWrite.All"),
            Just("Group.ReadWrite.All"),
            Just("GroupMember.ReadWrite.All"),
            Just("Directory.ReadWrite.All"),
            Just("User.Read.All"),
            Just("Group.Create"),
            Just("RoleManagement.ReadWrite.Directory"),
        ]
    }

    proptest! {
        /// Granting the permissions a report names makes the writes covered.
        #[test]
        fn granting_what_is_named_covers_it(granted in prop::collection::btree_set(any_role(), 0..5)) {
            let mut roles: BTreeSet<String> = granted.iter().map(|r| r.to_string()).collect();
            let missing = missing_permissions(Some(&roles), WriteKind::ALL).unwrap();
            roles.extend(missing.iter().map(|m| m.0.permission().to_string()));
            prop_assert_eq!(missing_permissions(Some(&roles), WriteKind::ALL), Some(vec![]));
        }
    }
}
