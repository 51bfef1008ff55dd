//! Matching for discovery: which Entra object is the counterpart of an authentik one.
//!
//! Users match by authentik e-mail, case-insensitively, against Entra `mail`
//! *or* `userPrincipalName` (authentik looks only at `mail`, so it never
//! matches unlicensed users). Groups match by `displayName` (authentik wrongly
//! uses `uniqueName`). An ambiguous match is reported, never guessed.

use crate::authentik::{AkGroup, AkUser};
use crate::entra::{EntraGroup, EntraUser};
use crate::ids::EntraObjectId;
use std::collections::HashMap;

/// The result of matching one authentik object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// No Entra object matches.
    None,
    /// Exactly one Entra object matches and no other authentik object claimed it.
    One(EntraObjectId),
    /// Several Entra objects match; none is linked.
    Ambiguous(Vec<EntraObjectId>),
    /// The one matching Entra object was already matched to another authentik object.
    AlreadyClaimed(EntraObjectId),
}

/// An index of Entra objects by match key, which remembers what it handed out.
#[derive(Debug, Default)]
pub struct Matcher {
    by_key: HashMap<String, Vec<EntraObjectId>>,
    claimed: HashMap<EntraObjectId, ()>,
}

impl Matcher {
    fn add(&mut self, key: Option<&str>, id: &EntraObjectId) {
        let Some(key) = key.map(str::trim).filter(|k| !k.is_empty()) else {
            return;
        };
        let ids = self.by_key.entry(key.to_lowercase()).or_default();
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }

    /// Indexes Entra users by `mail` and `userPrincipalName`.
    pub fn for_users<'a>(users: impl IntoIterator<Item = &'a EntraUser>) -> Self {
        let mut m = Self::default();
        for u in users {
            m.add(u.mail.as_deref(), &u.id);
            m.add(u.user_principal_name.as_deref(), &u.id);
        }
        m
    }

    /// Indexes Entra groups by `displayName`.
    pub fn for_groups<'a>(groups: impl IntoIterator<Item = &'a EntraGroup>) -> Self {
        let mut m = Self::default();
        for g in groups {
            m.add(g.display_name.as_deref(), &g.id);
        }
        m
    }

    /// Adds one Entra user to the index.
    pub fn add_user(&mut self, user: &EntraUser) {
        self.add(user.mail.as_deref(), &user.id);
        self.add(user.user_principal_name.as_deref(), &user.id);
    }

    /// Adds one Entra group to the index.
    pub fn add_group(&mut self, group: &EntraGroup) {
        self.add(group.display_name.as_deref(), &group.id);
    }

    fn claim(&mut self, key: &str) -> Match {
        let key = key.trim();
        if key.is_empty() {
            return Match::None;
        }
        match self.by_key.get(&key.to_lowercase()).map(Vec::as_slice) {
            None | Some([]) => Match::None,
            Some([id]) => {
                if self.claimed.insert(id.clone(), ()).is_some() {
                    Match::AlreadyClaimed(id.clone())
                } else {
                    Match::One(id.clone())
                }
            }
            Some(ids) => Match::Ambiguous(ids.to_vec()),
        }
    }

    /// Matches an authentik user by e-mail; a user without e-mail matches nothing.
    pub fn match_user(&mut self, user: &AkUser) -> Match {
        self.claim(&user.email)
    }

    /// Matches an authentik group by name.
    pub fn match_group(&mut self, group: &AkGroup) -> Match {
        self.claim(&group.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(n: u128) -> EntraObjectId {
        EntraObjectId::parse(&uuid::Uuid::from_u128(n).to_string()).unwrap()
    }

    fn entra_user(n: u128, upn: &str, mail: Option<&str>) -> EntraUser {
        serde_json::from_value(json!({"id": id(n), "userPrincipalName": upn, "mail": mail}))
            .unwrap()
    }

    fn ak_user(pk: i64, email: &str) -> AkUser {
        serde_json::from_value(json!({"pk": pk, "username": format!("u{pk}"), "email": email}))
            .unwrap()
    }

    fn ak_group(name: &str) -> AkGroup {
        serde_json::from_value(json!({"pk": uuid::Uuid::from_u128(9), "name": name})).unwrap()
    }

    #[test]
    fn users_match_upn_of_unlicensed_users_case_insensitively() {
        let users = [entra_user(1, "Adele@Contoso.com", None)];
        let mut m = Matcher::for_users(&users);
        assert_eq!(
            m.match_user(&ak_user(1, "adele@contoso.COM")),
            Match::One(id(1))
        );
    }

    #[test]
    fn users_match_mail_too() {
        let users = [entra_user(
            1,
            "x1@contoso.onmicrosoft.com",
            Some("adele@contoso.com"),
        )];
        let mut m = Matcher::for_users(&users);
        assert_eq!(
            m.match_user(&ak_user(1, "Adele@contoso.com")),
            Match::One(id(1))
        );
        assert_eq!(
            Matcher::for_users(&users).match_user(&ak_user(2, "")),
            Match::None
        );
    }

    #[test]
    fn same_user_by_mail_and_upn_is_one_match() {
        let users = [entra_user(1, "a@contoso.com", Some("a@contoso.com"))];
        assert_eq!(
            Matcher::for_users(&users).match_user(&ak_user(1, "a@contoso.com")),
            Match::One(id(1))
        );
    }

    #[test]
    fn two_entra_users_for_one_email_is_ambiguous() {
        let users = [
            entra_user(1, "a@contoso.com", None),
            entra_user(2, "b@contoso.com", Some("A@contoso.com")),
        ];
        let mut m = Matcher::for_users(&users);
        assert_eq!(
            m.match_user(&ak_user(1, "a@contoso.com")),
            Match::Ambiguous(vec![id(1), id(2)])
        );
    }

    #[test]
    fn two_authentik_users_for_one_entra_user_are_reported() {
        let users = [entra_user(1, "a@contoso.com", None)];
        let mut m = Matcher::for_users(&users);
        assert_eq!(
            m.match_user(&ak_user(1, "a@contoso.com")),
            Match::One(id(1))
        );
        assert_eq!(
            m.match_user(&ak_user(2, "A@contoso.com")),
            Match::AlreadyClaimed(id(1))
        );
    }

    #[test]
    fn groups_match_display_name_not_unique_name() {
        let groups: Vec<EntraGroup> = vec![
            serde_json::from_value(
                json!({"id": id(1), "displayName": "Sales", "uniqueName": "grp-sales"}),
            )
            .unwrap(),
            serde_json::from_value(
                json!({"id": id(2), "displayName": "grp-ops", "uniqueName": "Ops"}),
            )
            .unwrap(),
        ];
        let mut m = Matcher::for_groups(&groups);
        assert_eq!(m.match_group(&ak_group("Sales")), Match::One(id(1)));
        assert_eq!(m.match_group(&ak_group("Ops")), Match::None);
    }
}
