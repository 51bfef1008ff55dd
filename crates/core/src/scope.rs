//! Scope: which authentik users a provider syncs.

use crate::authentik::AkUser;
use crate::ids::AkGroupPk;

/// A provider's scope rules, with the filter group already resolved to its pk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Only direct members of this group are in scope, when set.
    pub filter_group: Option<AkGroupPk>,
    /// Leave out `service_account` and `internal_service_account` users.
    pub exclude_service_accounts: bool,
}

/// Why a user is outside the scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutOfScope {
    /// Not a direct member of the filter group.
    NotInFilterGroup,
    /// A service account, and the provider excludes them.
    ServiceAccount,
}

impl Scope {
    /// Whether `user` is synced; `Err` says why not.
    pub fn check_user(&self, user: &AkUser) -> Result<(), OutOfScope> {
        if self.exclude_service_accounts && user.user_type.is_service_account() {
            return Err(OutOfScope::ServiceAccount);
        }
        if let Some(group) = self.filter_group
            && !user.groups.contains(&group)
        {
            return Err(OutOfScope::NotInFilterGroup);
        }
        Ok(())
    }

    /// Whether `user` is synced.
    pub fn includes_user(&self, user: &AkUser) -> bool {
        self.check_user(user).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authentik::AkUserType;

    fn user(user_type: AkUserType, groups: Vec<AkGroupPk>) -> AkUser {
        serde_json::from_value::<AkUser>(serde_json::json!({"pk": 1, "username": "u"}))
            .map(|u| AkUser {
                user_type,
                groups,
                ..u
            })
            .unwrap()
    }

    #[test]
    fn everyone_is_in_an_empty_scope() {
        assert!(Scope::default().includes_user(&user(AkUserType::ServiceAccount, vec![])));
    }

    #[test]
    fn service_accounts_of_both_kinds_are_excluded() {
        let scope = Scope {
            exclude_service_accounts: true,
            ..Default::default()
        };
        assert_eq!(
            scope.check_user(&user(AkUserType::ServiceAccount, vec![])),
            Err(OutOfScope::ServiceAccount)
        );
        assert_eq!(
            scope.check_user(&user(AkUserType::InternalServiceAccount, vec![])),
            Err(OutOfScope::ServiceAccount)
        );
        assert!(scope.includes_user(&user(AkUserType::External, vec![])));
    }

    #[test]
    fn filter_group_needs_direct_membership() {
        let g = AkGroupPk(uuid::Uuid::from_u128(1));
        let other = AkGroupPk(uuid::Uuid::from_u128(2));
        let scope = Scope {
            filter_group: Some(g),
            ..Default::default()
        };
        assert!(scope.includes_user(&user(AkUserType::Internal, vec![other, g])));
        assert_eq!(
            scope.check_user(&user(AkUserType::Internal, vec![other])),
            Err(OutOfScope::NotInFilterGroup)
        );
    }
}
