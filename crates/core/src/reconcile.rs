//! What to do with one object: the decision a worker makes once it knows what
//! authentik wants, what the mappings make of it, and what Entra last received.

use crate::diff::{self, Body};
use crate::ids::EntraObjectId;
use crate::mapping::defaults::{GROUP_CREATE_ONLY, USER_CREATE_ONLY};
use serde::{Deserialize, Serialize};

/// What happens in Entra to an object that is gone from authentik or out of scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteAction {
    /// Delete the Entra object.
    Delete,
    /// Users only: set `accountEnabled` false and keep the link.
    Suspend,
    /// Leave the Entra object alone.
    DoNothing,
}

/// What authentik wants of an object.
#[derive(Debug, Clone, PartialEq)]
pub enum Desired {
    /// It should exist with this mapped body.
    Present(Body),
    /// A mapping skipped it: leave Entra alone.
    Skipped,
    /// It was deleted in authentik.
    Deleted,
    /// It exists but is outside the provider's scope.
    OutOfScope,
}

/// What we know of the Entra side: the link, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Known<'a> {
    /// The linked Entra object.
    pub entra_id: &'a EntraObjectId,
    /// The attributes we last wrote.
    pub attributes: &'a Body,
    /// Whether we suspended it.
    pub suspended: bool,
}

/// The writes that bring Entra in line.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Nothing to write.
    Unchanged,
    /// Create the object with this body (create-only properties are added by the caller).
    Create(Body),
    /// PATCH these properties (a suspended user back in scope gets `accountEnabled` back this way).
    Update {
        /// The Entra object.
        entra_id: EntraObjectId,
        /// Only the changed properties.
        patch: Body,
    },
    /// Delete the Entra object and drop the link.
    Delete(EntraObjectId),
    /// Set `accountEnabled` false and mark the link suspended.
    Suspend(EntraObjectId),
    /// Drop the link, touch nothing in Entra.
    Unlink,
    /// Nothing exists on either side that we manage.
    Nothing,
}

/// Which kind of object is planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A user: may be suspended.
    User,
    /// A group: `suspend` acts as `do_nothing`.
    Group,
}

/// Decides the writes for one object. Only objects we linked are ever deleted
/// or suspended (DESIGN invariant 7).
pub fn plan(
    kind: Kind,
    desired: &Desired,
    known: Option<&Known<'_>>,
    on_delete: DeleteAction,
) -> Plan {
    let create_only = match kind {
        Kind::User => USER_CREATE_ONLY,
        Kind::Group => GROUP_CREATE_ONLY,
    };
    match (desired, known) {
        (Desired::Present(body), None) => Plan::Create(body.clone()),
        (Desired::Present(body), Some(k)) => {
            let patch = diff::patch(body, k.attributes, create_only);
            if patch.is_empty() {
                Plan::Unchanged
            } else {
                Plan::Update {
                    entra_id: k.entra_id.clone(),
                    patch,
                }
            }
        }
        (Desired::Skipped, _) => Plan::Unchanged,
        (Desired::Deleted | Desired::OutOfScope, None) => Plan::Nothing,
        (Desired::Deleted | Desired::OutOfScope, Some(k)) => match (on_delete, kind) {
            (DeleteAction::Delete, _) => Plan::Delete(k.entra_id.clone()),
            (DeleteAction::Suspend, Kind::User) if k.suspended => Plan::Unchanged,
            (DeleteAction::Suspend, Kind::User) => Plan::Suspend(k.entra_id.clone()),
            (DeleteAction::Suspend | DeleteAction::DoNothing, _) => {
                if matches!(desired, Desired::Deleted) {
                    Plan::Unlink
                } else {
                    Plan::Unchanged
                }
            }
        },
    }
}

/// The body that suspends a user.
pub fn suspend_patch() -> Body {
    let mut body = Body::new();
    body.insert("accountEnabled".into(), serde_json::Value::Bool(false));
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: serde_json::Value) -> Body {
        v.as_object().cloned().unwrap()
    }

    fn id() -> EntraObjectId {
        EntraObjectId::parse("00000000-0000-0000-0000-000000000001").unwrap()
    }

    #[test]
    fn new_objects_are_created_and_unchanged_ones_left_alone() {
        let desired = Desired::Present(body(json!({"displayName": "A", "accountEnabled": true})));
        assert!(matches!(
            plan(Kind::User, &desired, None, DeleteAction::Delete),
            Plan::Create(_)
        ));
        let attributes = body(json!({"displayName": "A", "accountEnabled": true}));
        let entra_id = id();
        let known = Known {
            entra_id: &entra_id,
            attributes: &attributes,
            suspended: false,
        };
        assert_eq!(
            plan(Kind::User, &desired, Some(&known), DeleteAction::Delete),
            Plan::Unchanged
        );
    }

    #[test]
    fn only_changed_properties_are_patched_never_create_only_ones() {
        let desired = Desired::Present(body(
            json!({"displayName": "B", "passwordProfile": {"password": "x"}, "onPremisesImmutableId": "u"}),
        ));
        let attributes = body(json!({"displayName": "A"}));
        let entra_id = id();
        let known = Known {
            entra_id: &entra_id,
            attributes: &attributes,
            suspended: false,
        };
        assert_eq!(
            plan(Kind::User, &desired, Some(&known), DeleteAction::Delete),
            Plan::Update {
                entra_id: id(),
                patch: body(json!({"displayName": "B"}))
            }
        );
    }

    #[test]
    fn delete_actions_apply_only_to_linked_objects() {
        let attributes = Body::new();
        let entra_id = id();
        let known = Known {
            entra_id: &entra_id,
            attributes: &attributes,
            suspended: false,
        };
        for desired in [Desired::Deleted, Desired::OutOfScope] {
            assert_eq!(
                plan(Kind::User, &desired, None, DeleteAction::Delete),
                Plan::Nothing
            );
            assert_eq!(
                plan(Kind::User, &desired, Some(&known), DeleteAction::Delete),
                Plan::Delete(id())
            );
            assert_eq!(
                plan(Kind::User, &desired, Some(&known), DeleteAction::Suspend),
                Plan::Suspend(id())
            );
            assert_eq!(
                plan(Kind::Group, &desired, Some(&known), DeleteAction::Delete),
                Plan::Delete(id())
            );
        }
        assert_eq!(
            plan(
                Kind::User,
                &Desired::Deleted,
                Some(&known),
                DeleteAction::DoNothing
            ),
            Plan::Unlink
        );
        assert_eq!(
            plan(
                Kind::User,
                &Desired::OutOfScope,
                Some(&known),
                DeleteAction::DoNothing
            ),
            Plan::Unchanged
        );
        assert_eq!(
            plan(
                Kind::Group,
                &Desired::Deleted,
                Some(&known),
                DeleteAction::Suspend
            ),
            Plan::Unlink
        );
        let suspended = Known {
            suspended: true,
            ..known.clone()
        };
        assert_eq!(
            plan(
                Kind::User,
                &Desired::OutOfScope,
                Some(&suspended),
                DeleteAction::Suspend
            ),
            Plan::Unchanged
        );
    }

    #[test]
    fn a_suspended_user_back_in_scope_is_re_enabled() {
        let attributes = body(json!({"displayName": "A", "accountEnabled": false}));
        let entra_id = id();
        let known = Known {
            entra_id: &entra_id,
            attributes: &attributes,
            suspended: true,
        };
        let desired = Desired::Present(body(json!({"displayName": "A", "accountEnabled": true})));
        assert_eq!(
            plan(Kind::User, &desired, Some(&known), DeleteAction::Suspend),
            Plan::Update {
                entra_id: id(),
                patch: body(json!({"accountEnabled": true}))
            }
        );
        assert_eq!(suspend_patch(), body(json!({"accountEnabled": false})));
    }

    #[test]
    fn a_skipped_object_is_never_touched() {
        let attributes = Body::new();
        let entra_id = id();
        let known = Known {
            entra_id: &entra_id,
            attributes: &attributes,
            suspended: false,
        };
        assert_eq!(
            plan(
                Kind::User,
                &Desired::Skipped,
                Some(&known),
                DeleteAction::Delete
            ),
            Plan::Unchanged
        );
        assert_eq!(
            plan(Kind::User, &Desired::Skipped, None, DeleteAction::Delete),
            Plan::Unchanged
        );
    }
}
