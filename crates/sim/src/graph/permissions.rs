//! Application permissions: which granted permissions let an app make a request
//! (`microsoft-graph.md` §4.1, §5.1, §6.5, §9, and the permission tables of the
//! list pages). Graph refuses the rest with 403 `Authorization_RequestDenied`.

use super::error::SimError;
use std::collections::BTreeSet;

/// What a request does, as far as permissions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    ReadUsers,
    ReadGroups,
    CreateUser,
    WriteUser,
    CreateGroup,
    WriteGroup,
    WriteMembers,
    /// Creating a role-assignable group or changing its members: needed on top.
    RoleAssignableGroup,
}

impl Access {
    /// The permissions any one of which allows it.
    fn allowed_by(self) -> &'static [&'static str] {
        match self {
            Access::ReadUsers => &[
                "User.Read.All",
                "User.ReadBasic.All",
                "User.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
            Access::ReadGroups => &[
                "Group.Read.All",
                "Group.ReadWrite.All",
                "GroupMember.Read.All",
                "GroupMember.ReadWrite.All",
                "Directory.Read.All",
                "Directory.ReadWrite.All",
            ],
            Access::CreateUser => &[
                "User.Create",
                "User.ReadWrite.All",
                "Directory.ReadWrite.All",
            ],
            Access::WriteUser => &["User.ReadWrite.All", "Directory.ReadWrite.All"],
            Access::CreateGroup => &[
                "Group.Create",
                "Group.ReadWrite.All",
                "Directory.ReadWrite.All",
            ],
            Access::WriteGroup => &["Group.ReadWrite.All", "Directory.ReadWrite.All"],
            Access::WriteMembers => &[
                "GroupMember.ReadWrite.All",
                "Group.ReadWrite.All",
                "Directory.ReadWrite.All",
            ],
            Access::RoleAssignableGroup => &["RoleManagement.ReadWrite.Directory"],
        }
    }
}

/// Refuses with 403 unless `granted` allows every access in `needed`.
pub(crate) fn authorize(granted: &BTreeSet<String>, needed: &[Access]) -> Result<(), SimError> {
    let allowed = |access: &Access| access.allowed_by().iter().any(|p| granted.contains(*p));
    if needed.iter().all(allowed) {
        Ok(())
    } else {
        Err(SimError::insufficient_privileges())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(roles: &[&str]) -> BTreeSet<String> {
        roles.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn directory_read_write_allows_all_but_role_assignable_groups() {
        let all = granted(&["Directory.ReadWrite.All"]);
        for access in [
            Access::ReadUsers,
            Access::ReadGroups,
            Access::CreateUser,
            Access::WriteUser,
            Access::CreateGroup,
            Access::WriteGroup,
            Access::WriteMembers,
        ] {
            assert_eq!(authorize(&all, &[access]), Ok(()), "{access:?}");
        }
        let e = authorize(&all, &[Access::WriteMembers, Access::RoleAssignableGroup]).unwrap_err();
        assert_eq!((e.status, e.code), (403, "Authorization_RequestDenied"));
    }

    #[test]
    fn member_writes_need_no_group_write() {
        let members = granted(&["GroupMember.ReadWrite.All"]);
        assert_eq!(authorize(&members, &[Access::WriteMembers]), Ok(()));
        assert_eq!(authorize(&members, &[Access::ReadGroups]), Ok(()));
        assert!(authorize(&members, &[Access::WriteGroup]).is_err());
        assert!(authorize(&members, &[Access::ReadUsers]).is_err());
    }
}
