//! Diffing: the minimal PATCH between what we last wrote and what the mappings
//! want now, and the membership difference both ways.

use crate::ids::EntraObjectId;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// A JSON object body with Graph's property names.
pub type Body = Map<String, Value>;

/// Properties whose string values Graph compares without regard to case: a
/// value differing only in case is the same value, and never PATCHed.
pub const CASE_INSENSITIVE: &[&str] = &["userPrincipalName", "mail"];

/// Graph accepts at most this many members per `members@odata.bind` PATCH.
pub const MEMBER_ADD_CHUNK: usize = 20;

/// The properties to PATCH so that an object last written as `last` matches `desired`.
///
/// Only changed properties are included and `create_only` ones never are. A
/// property that is `null` or absent counts as unset: a `null` is sent only to
/// clear a value we wrote before, and a property missing from `desired` is left
/// alone (entra-sync only manages what the mappings produce). Values are
/// compared as Graph holds them ([`CASE_INSENSITIVE`]).
pub fn patch(desired: &Body, last: &Body, create_only: &[&str]) -> Body {
    desired
        .iter()
        .filter(|(key, _)| !create_only.contains(&key.as_str()))
        .filter(|(key, value)| !same(key, value, last.get(key.as_str())))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// The attributes to remember after `patch` was written over `last`.
pub fn apply(last: &Body, patch: &Body) -> Body {
    let mut next = last.clone();
    for (key, value) in patch {
        if value.is_null() {
            next.remove(key);
        } else {
            next.insert(key.clone(), value.clone());
        }
    }
    next
}

/// The body of a create: `desired` without `null` values.
pub fn create_body(desired: &Body) -> Body {
    desired
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The attributes to remember after a create: the body without `exclude`
/// (the password is never stored).
pub fn written_attributes(body: &Body, exclude: &[&str]) -> Body {
    body.iter()
        .filter(|(k, v)| !exclude.contains(&k.as_str()) && !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn same(key: &str, desired: &Value, last: Option<&Value>) -> bool {
    match (desired, last) {
        (Value::Null, None) => true,
        (Value::String(d), Some(Value::String(l))) if CASE_INSENSITIVE.contains(&key) => {
            d.to_lowercase() == l.to_lowercase()
        }
        (d, Some(l)) => d == l,
        (_, None) => false,
    }
}

/// The membership changes that turn `current` into `desired`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipDiff {
    /// Members to add, in chunks of at most [`MEMBER_ADD_CHUNK`].
    pub add: Vec<Vec<EntraObjectId>>,
    /// Members to remove, one request each.
    pub remove: Vec<EntraObjectId>,
}

impl MembershipDiff {
    /// Whether nothing needs to change.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// The member changes that make a group's actual Entra members `actual`
/// hold `desired`: every missing desired member is added; a member not
/// desired is removed only if it is one of ours (`linked`, the provider's
/// linked users), or any member when `remove_unlinked` (cloud-only users,
/// devices, service principals, groups) is set.
pub fn member_changes(
    desired: &BTreeSet<EntraObjectId>,
    actual: &BTreeSet<EntraObjectId>,
    linked: &BTreeSet<EntraObjectId>,
    remove_unlinked: bool,
) -> MembershipDiff {
    let to_add: Vec<EntraObjectId> = desired.difference(actual).cloned().collect();
    MembershipDiff {
        add: to_add.chunks(MEMBER_ADD_CHUNK).map(<[_]>::to_vec).collect(),
        remove: actual
            .iter()
            .filter(|m| !desired.contains(*m) && (remove_unlinked || linked.contains(*m)))
            .cloned()
            .collect(),
    }
}

/// Set difference both ways between the members we want and the members we last wrote.
pub fn membership(
    desired: &BTreeSet<EntraObjectId>,
    current: &BTreeSet<EntraObjectId>,
) -> MembershipDiff {
    let to_add: Vec<EntraObjectId> = desired.difference(current).cloned().collect();
    MembershipDiff {
        add: to_add.chunks(MEMBER_ADD_CHUNK).map(<[_]>::to_vec).collect(),
        remove: current.difference(desired).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn body(v: Value) -> Body {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn only_changed_properties_are_patched() {
        let last = body(json!({"displayName": "A", "accountEnabled": true, "department": "x"}));
        let desired = body(
            json!({"displayName": "B", "accountEnabled": true, "passwordProfile": {"password": "p"}}),
        );
        let p = patch(&desired, &last, &["passwordProfile"]);
        assert_eq!(p, body(json!({"displayName": "B"})));
    }

    #[test]
    fn null_clears_only_what_we_wrote() {
        let last = body(json!({"department": "x"}));
        let desired = body(json!({"department": null, "jobTitle": null}));
        assert_eq!(
            patch(&desired, &last, &[]),
            body(json!({"department": null}))
        );
        assert_eq!(apply(&last, &patch(&desired, &last, &[])), Body::new());
    }

    #[test]
    fn membership_diff_both_ways_in_chunks() {
        let ids: Vec<EntraObjectId> = (0..45)
            .map(|i| EntraObjectId::parse(&format!("00000000-0000-0000-0000-{i:012}")).unwrap())
            .collect();
        let desired: BTreeSet<_> = ids[..43].iter().cloned().collect();
        let current: BTreeSet<_> = ids[40..].iter().cloned().collect();
        let d = membership(&desired, &current);
        assert_eq!(d.add.iter().map(Vec::len).collect::<Vec<_>>(), vec![20, 20]);
        assert_eq!(d.remove, ids[43..].to_vec());
        assert!(membership(&desired, &desired).is_empty());
    }

    #[test]
    fn upn_and_mail_case_is_no_change() {
        let last = body(
            json!({"userPrincipalName": "Adele@Contoso.com", "mail": "A@X.COM", "displayName": "a"}),
        );
        let desired = body(
            json!({"userPrincipalName": "adele@contoso.com", "mail": "a@x.com", "displayName": "A"}),
        );
        assert_eq!(
            patch(&desired, &last, &[]),
            body(json!({"displayName": "A"}))
        );
    }

    #[test]
    fn member_changes_leave_unlinked_members_alone_unless_asked() {
        let id =
            |i: u32| EntraObjectId::parse(&format!("00000000-0000-0000-0000-{i:012}")).unwrap();
        let set = |ids: &[u32]| ids.iter().map(|i| id(*i)).collect::<BTreeSet<_>>();
        let desired = set(&[1, 2]);
        let actual = set(&[2, 3, 9]);
        let linked = set(&[1, 2, 3]);
        let d = member_changes(&desired, &actual, &linked, false);
        assert_eq!(d.add, vec![vec![id(1)]]);
        assert_eq!(d.remove, vec![id(3)], "9 is not ours: left alone");
        let d = member_changes(&desired, &actual, &linked, true);
        assert_eq!(d.remove, vec![id(3), id(9)]);
        assert!(member_changes(&desired, &set(&[1, 2, 9]), &linked, false).is_empty());
    }

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            "[a-z]{0,6}".prop_map(Value::String),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        json_leaf().prop_recursive(2, 12, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                prop::collection::btree_map("[a-c]", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn any_body() -> impl Strategy<Value = Body> {
        prop::collection::btree_map("[a-f]", json_value(), 0..6)
            .prop_map(|m| m.into_iter().collect())
    }

    /// The body as Graph holds it: a null property is the same as an absent one.
    fn stored(b: &Body) -> Body {
        b.iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    proptest! {
        #[test]
        fn diff_with_itself_is_empty(a in any_body()) {
            prop_assert!(patch(&a, &stored(&a), &[]).is_empty());
        }

        /// Applying diff(a, b) to a yields b, on the properties b manages.
        #[test]
        fn applying_the_diff_yields_the_target(a in any_body(), b in any_body()) {
            let last = stored(&a);
            let next = apply(&last, &patch(&b, &last, &[]));
            for (key, value) in &b {
                prop_assert_eq!(next.get(key).unwrap_or(&Value::Null), value);
            }
            for (key, value) in &last {
                if !b.contains_key(key) {
                    prop_assert_eq!(next.get(key), Some(value));
                }
            }
        }

        #[test]
        fn create_only_properties_are_never_patched(a in any_body(), b in any_body()) {
            let p = patch(&b, &stored(&a), &["a", "b"]);
            prop_assert!(!p.contains_key("a") && !p.contains_key("b"));
        }
    }
}
