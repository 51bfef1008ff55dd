//! Matching for discovery and conflict adoption: which Entra object is the
//! counterpart of an authentik one.
//!
//! Users match by authentik e-mail, case-insensitively, against Entra `mail`
//! *or* `userPrincipalName` (authentik looks only at `mail`, so it never
//! matches unlicensed users). Groups match by `displayName` (authentik wrongly
//! uses `uniqueName`). An ambiguous match is reported, never guessed, and an
//! object entra-sync may not own ([`Ownable::ownership`]) is never picked.

use crate::authentik::AkGroup;
use crate::entra::{EntraGroup, EntraUser, NotOwnable, Ownable};
use crate::ids::EntraObjectId;
use std::collections::{HashMap, HashSet};

/// The result of matching one authentik object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// No Entra object matches.
    None,
    /// Exactly one ownable Entra object matches and no other authentik object claimed it.
    One(EntraObjectId),
    /// Several ownable Entra objects match; none is linked.
    Ambiguous(Vec<EntraObjectId>),
    /// The one matching Entra object was already matched to another authentik object.
    AlreadyClaimed(EntraObjectId),
    /// Only Entra objects entra-sync may not own match (the first is named). The
    /// authentik object fails as a conflict with the reason: creating it would
    /// make a duplicate, and adopting it would change what is not ours.
    NotOwnable {
        /// The matching Entra object.
        id: EntraObjectId,
        /// Why it can't be owned.
        reason: NotOwnable,
    },
}

/// Decides among the Entra objects that carry an authentik object's match key
/// and that no other authentik object holds: the one policy of discovery and
/// conflict adoption.
pub fn choose<'a, T: Ownable + 'a>(candidates: impl IntoIterator<Item = &'a T>) -> Match {
    let mut ownable: Vec<EntraObjectId> = Vec::new();
    let mut refused = None;
    for candidate in candidates {
        match candidate.ownership() {
            Ok(()) if !ownable.contains(candidate.id()) => ownable.push(candidate.id().clone()),
            Ok(()) => {}
            Err(reason) => {
                refused.get_or_insert_with(|| Match::NotOwnable {
                    id: candidate.id().clone(),
                    reason,
                });
            }
        }
    }
    match ownable.len() {
        0 => refused.unwrap_or(Match::None),
        1 => Match::One(ownable.remove(0)),
        _ => Match::Ambiguous(ownable),
    }
}

/// An indexed Entra object: its id and whether it may be owned.
#[derive(Debug, Clone)]
struct Candidate {
    id: EntraObjectId,
    ownership: Result<(), NotOwnable>,
}

impl Candidate {
    fn of(object: &impl Ownable) -> Self {
        Self {
            id: object.id().clone(),
            ownership: object.ownership(),
        }
    }
}

impl Ownable for Candidate {
    fn id(&self) -> &EntraObjectId {
        &self.id
    }

    fn ownership(&self) -> Result<(), NotOwnable> {
        self.ownership
    }
}

/// What a match compares: trimmed, case-insensitive; nothing when blank.
fn match_key(key: &str) -> Option<String> {
    let key = key.trim();
    (!key.is_empty()).then(|| key.to_lowercase())
}

/// An index of Entra objects by match key, which remembers what it handed out.
#[derive(Debug, Default)]
pub struct Matcher {
    by_key: HashMap<String, Vec<Candidate>>,
    claimed: HashSet<EntraObjectId>,
}

impl Matcher {
    fn add(&mut self, key: Option<&str>, candidate: &Candidate) {
        let Some(key) = key.and_then(match_key) else {
            return;
        };
        let candidates = self.by_key.entry(key).or_default();
        if !candidates.iter().any(|c| c.id == candidate.id) {
            candidates.push(candidate.clone());
        }
    }

    /// Indexes only the Entra users that one of `emails` could match: what
    /// matching the few unlinked users of a large directory needs. They match
    /// exactly as against the whole index.
    pub fn for_users_matching<'a, 'e>(
        users: impl IntoIterator<Item = &'a EntraUser>,
        emails: impl IntoIterator<Item = &'e str>,
    ) -> Self {
        let wanted: HashSet<String> = emails.into_iter().filter_map(match_key).collect();
        let wanted_key =
            |key: Option<&str>| key.and_then(match_key).is_some_and(|k| wanted.contains(&k));
        let mut m = Self::default();
        for u in users {
            if wanted_key(u.mail.as_deref()) || wanted_key(u.user_principal_name.as_deref()) {
                m.add_user(u);
            }
        }
        m
    }

    /// Indexes Entra groups by `displayName`.
    pub fn for_groups<'a>(groups: impl IntoIterator<Item = &'a EntraGroup>) -> Self {
        let mut m = Self::default();
        for g in groups {
            m.add_group(g);
        }
        m
    }

    /// Adds one Entra user to the index.
    pub fn add_user(&mut self, user: &EntraUser) {
        let candidate = Candidate::of(user);
        self.add(user.mail.as_deref(), &candidate);
        self.add(user.user_principal_name.as_deref(), &candidate);
    }

    /// Adds one Entra group to the index.
    pub fn add_group(&mut self, group: &EntraGroup) {
        self.add(group.display_name.as_deref(), &Candidate::of(group));
    }

    fn claim(&mut self, key: &str) -> Match {
        let Some(candidates) = match_key(key).and_then(|k| self.by_key.get(&k)) else {
            return Match::None;
        };
        match choose(candidates) {
            Match::One(id) if !self.claimed.insert(id.clone()) => Match::AlreadyClaimed(id),
            found => found,
        }
    }

    /// Matches an authentik user by its e-mail; a user without e-mail matches nothing.
    pub fn match_user(&mut self, email: &str) -> Match {
        self.claim(email)
    }

    /// Matches an authentik group by name.
    pub fn match_group(&mut self, group: &AkGroup) -> Match {
        self.claim(&group.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authentik::AkUser;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn id(n: u128) -> EntraObjectId {
        EntraObjectId::parse(&uuid::Uuid::from_u128(n).to_string()).unwrap()
    }

    fn entra_user(n: u128, upn: &str, mail: Option<&str>) -> EntraUser {
        serde_json::from_value(json!({"id": id(n), "userPrincipalName": upn, "mail": mail}))
            .unwrap()
    }

    /// Every one of `users` indexed, as when all of them are wanted.
    fn index<'a>(users: impl IntoIterator<Item = &'a EntraUser>) -> Matcher {
        let mut m = Matcher::default();
        for u in users {
            m.add_user(u);
        }
        m
    }

    fn ak_user(pk: i64, email: &str) -> AkUser {
        serde_json::from_value(json!({"pk": pk, "username": format!("u{pk}"), "email": email}))
            .unwrap()
    }

    fn ak_group(name: &str) -> AkGroup {
        serde_json::from_value(json!({"pk": uuid::Uuid::from_u128(9), "name": name})).unwrap()
    }

    /// A group as Graph lists it: a cloud security group plus `kind`'s properties.
    fn entra_group(n: u128, name: &str, kind: Value) -> EntraGroup {
        let mut body = json!({"id": id(n), "displayName": name, "securityEnabled": true,
            "mailEnabled": false, "groupTypes": []});
        body.as_object_mut()
            .unwrap()
            .extend(kind.as_object().unwrap().clone());
        serde_json::from_value(body).unwrap()
    }

    fn microsoft_365() -> Value {
        json!({"groupTypes": ["Unified"], "mailEnabled": true, "securityEnabled": false})
    }

    #[test]
    fn users_match_upn_of_unlicensed_users_case_insensitively() {
        let users = [entra_user(1, "Adele@Contoso.com", None)];
        let mut m = index(&users);
        assert_eq!(
            m.match_user(&ak_user(1, "adele@contoso.COM").email),
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
        let mut m = index(&users);
        assert_eq!(
            m.match_user(&ak_user(1, "Adele@contoso.com").email),
            Match::One(id(1))
        );
        assert_eq!(index(&users).match_user(&ak_user(2, "").email), Match::None);
    }

    #[test]
    fn an_index_of_the_wanted_emails_matches_them_as_the_whole_index_does() {
        let users = [
            entra_user(1, "a@contoso.com", None),
            entra_user(2, "x2@contoso.com", Some("A@contoso.com")),
            entra_user(3, "b@contoso.com", None),
            entra_user(4, "c@contoso.com", Some("c@contoso.com")),
            entra_user(5, "d@contoso.com", None),
        ];
        let wanted = [" A@Contoso.com", "c@contoso.com", "b@contoso.com"];
        let mut whole = index(&users);
        let mut part = Matcher::for_users_matching(&users, wanted);
        for (pk, email) in [
            (1, "a@contoso.com"),
            (2, "C@contoso.com"),
            (3, "b@contoso.com"),
            (4, "b@contoso.com"),
        ] {
            let user = ak_user(pk, email);
            assert_eq!(
                part.match_user(&user.email),
                whole.match_user(&user.email),
                "{email}"
            );
        }
        assert!(whole.by_key.contains_key("d@contoso.com"));
        assert!(
            !part.by_key.contains_key("d@contoso.com"),
            "a user no wanted e-mail matches is not indexed"
        );
        assert_eq!(
            Matcher::for_users_matching(&users, [""]).by_key.len(),
            0,
            "a blank e-mail wants nothing"
        );
    }

    #[test]
    fn same_user_by_mail_and_upn_is_one_match() {
        let users = [entra_user(1, "a@contoso.com", Some("a@contoso.com"))];
        assert_eq!(
            index(&users).match_user(&ak_user(1, "a@contoso.com").email),
            Match::One(id(1))
        );
    }

    #[test]
    fn two_entra_users_for_one_email_is_ambiguous() {
        let users = [
            entra_user(1, "a@contoso.com", None),
            entra_user(2, "b@contoso.com", Some("A@contoso.com")),
        ];
        let mut m = index(&users);
        assert_eq!(
            m.match_user(&ak_user(1, "a@contoso.com").email),
            Match::Ambiguous(vec![id(1), id(2)])
        );
    }

    #[test]
    fn two_authentik_users_for_one_entra_user_are_reported() {
        let users = [entra_user(1, "a@contoso.com", None)];
        let mut m = index(&users);
        assert_eq!(
            m.match_user(&ak_user(1, "a@contoso.com").email),
            Match::One(id(1))
        );
        assert_eq!(
            m.match_user(&ak_user(2, "A@contoso.com").email),
            Match::AlreadyClaimed(id(1))
        );
    }

    #[test]
    fn users_synchronised_from_on_premises_are_not_adopted() {
        let mut synced = entra_user(1, "a@contoso.com", None);
        synced.on_premises_sync_enabled = Some(true);
        assert_eq!(
            index([&synced]).match_user(&ak_user(1, "a@contoso.com").email),
            Match::NotOwnable {
                id: id(1),
                reason: NotOwnable::OnPremisesSynced
            }
        );
    }

    #[test]
    fn groups_match_display_name_not_unique_name() {
        let groups = vec![
            entra_group(1, "Sales", json!({"uniqueName": "grp-sales"})),
            entra_group(2, "grp-ops", json!({"uniqueName": "Ops"})),
        ];
        let mut m = Matcher::for_groups(&groups);
        assert_eq!(m.match_group(&ak_group("Sales")), Match::One(id(1)));
        assert_eq!(m.match_group(&ak_group("Ops")), Match::None);
    }

    #[test]
    fn a_microsoft_365_group_of_the_same_name_is_never_adopted() {
        let groups = [entra_group(1, "Sales", microsoft_365())];
        assert_eq!(
            Matcher::for_groups(&groups).match_group(&ak_group("Sales")),
            Match::NotOwnable {
                id: id(1),
                reason: NotOwnable::Microsoft365Group
            }
        );
    }

    #[test]
    fn an_ownable_group_is_chosen_beside_unownable_ones() {
        let groups = [
            entra_group(1, "Sales", json!({"groupTypes": ["DynamicMembership"]})),
            entra_group(2, "Sales", json!({})),
            entra_group(3, "Sales", json!({"mailEnabled": true})),
        ];
        assert_eq!(choose(&groups), Match::One(id(2)));
        assert_eq!(
            Matcher::for_groups(&groups).match_group(&ak_group("sales")),
            Match::One(id(2))
        );
    }

    #[test]
    fn conflict_adoption_chooses_like_discovery() {
        let none: [EntraGroup; 0] = [];
        assert_eq!(choose(&none), Match::None);
        let two = [
            entra_group(1, "Sales", json!({})),
            entra_group(2, "Sales", json!({})),
        ];
        assert_eq!(choose(&two), Match::Ambiguous(vec![id(1), id(2)]));
        let refused = [
            entra_group(1, "Sales", json!({"isAssignableToRole": true})),
            entra_group(2, "Sales", microsoft_365()),
        ];
        assert_eq!(
            choose(&refused),
            Match::NotOwnable {
                id: id(1),
                reason: NotOwnable::RoleAssignable
            }
        );
    }

    fn any_kind() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!({})),
            Just(microsoft_365()),
            Just(json!({"groupTypes": ["DynamicMembership"]})),
            Just(json!({"mailEnabled": true})),
            Just(json!({"mailEnabled": true, "securityEnabled": false})),
            Just(json!({"isAssignableToRole": true})),
            Just(json!({"onPremisesSyncEnabled": true})),
        ]
    }

    proptest! {
        /// Whatever groups share a name, matching never links one that can't be
        /// owned, and reports `NotOwnable` exactly when only such groups match.
        #[test]
        fn matching_never_picks_a_group_that_cannot_be_owned(kinds in prop::collection::vec(any_kind(), 0..6)) {
            let groups: Vec<EntraGroup> = kinds
                .into_iter()
                .enumerate()
                .map(|(i, kind)| entra_group(i as u128 + 1, "Sales", kind))
                .collect();
            let ownable: Vec<&EntraGroup> = groups.iter().filter(|g| g.ownership().is_ok()).collect();
            let found = Matcher::for_groups(&groups).match_group(&ak_group("Sales"));
            match &found {
                Match::One(id) | Match::AlreadyClaimed(id) => {
                    prop_assert!(ownable.iter().any(|g| &g.id == id));
                }
                Match::Ambiguous(ids) => {
                    prop_assert!(ids.iter().all(|id| ownable.iter().any(|g| &g.id == id)));
                }
                Match::NotOwnable { id, .. } => {
                    prop_assert!(ownable.is_empty());
                    prop_assert!(groups.iter().any(|g| &g.id == id && g.ownership().is_err()));
                }
                Match::None => prop_assert!(groups.is_empty()),
            }
        }
    }
}
