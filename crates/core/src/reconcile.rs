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
    /// It should exist with this mapped body (create-only properties included,
    /// except the initial password, which is made only when it is created).
    Present(Body),
    /// The named mapping skipped it: leave Entra alone.
    Skipped(String),
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

/// A PATCH of a linked object, and what to remember once it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    /// The Entra object.
    pub entra_id: EntraObjectId,
    /// Only the properties that change.
    pub changes: Body,
    /// The attributes last written once the PATCH succeeds: the known ones
    /// with `changes` applied.
    pub attributes: Body,
}

impl Patch {
    fn of(known: &Known<'_>, changes: Body) -> Self {
        Self {
            entra_id: known.entra_id.clone(),
            attributes: diff::apply(known.attributes, &changes),
            changes,
        }
    }

    /// The names of the changed properties.
    pub fn properties(&self) -> Vec<String> {
        self.changes.keys().cloned().collect()
    }
}

/// The writes that bring Entra in line, with everything needed to carry them out.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Nothing to write.
    Unchanged,
    /// The named mapping skipped the object: nothing to write.
    Skipped(String),
    /// Create the object with this body (its initial password is added when it is sent).
    Create(Body),
    /// PATCH the linked object; the link stays or becomes active. A suspended
    /// user back in scope gets `accountEnabled` back this way.
    Update {
        /// The PATCH.
        patch: Patch,
        /// The whole desired body, to create the object again if it is gone from Entra.
        desired: Body,
    },
    /// Delete the Entra object and drop the link.
    Delete(EntraObjectId),
    /// Set `accountEnabled` false and mark the link suspended.
    Suspend(Patch),
    /// Drop the link, touch nothing in Entra.
    Unlink,
    /// Nothing exists on either side that we manage.
    Nothing,
}

impl Plan {
    /// Whether the plan takes an object away from Entra (a delete or a
    /// suspension): what the deletion threshold counts (DESIGN invariant 7).
    pub fn is_deprovisioning(&self) -> bool {
        matches!(self, Self::Delete(_) | Self::Suspend(_))
    }
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
            let changes = diff::patch(body, k.attributes, create_only);
            if changes.is_empty() {
                Plan::Unchanged
            } else {
                Plan::Update {
                    patch: Patch::of(k, changes),
                    desired: body.clone(),
                }
            }
        }
        (Desired::Skipped(by), _) => Plan::Skipped(by.clone()),
        (Desired::Deleted | Desired::OutOfScope, None) => Plan::Nothing,
        (Desired::Deleted | Desired::OutOfScope, Some(k)) => match (on_delete, kind) {
            (DeleteAction::Delete, _) => Plan::Delete(k.entra_id.clone()),
            (DeleteAction::Suspend, Kind::User) if k.suspended => Plan::Unchanged,
            (DeleteAction::Suspend, Kind::User) => Plan::Suspend(Patch::of(k, suspension())),
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

/// The properties that suspend a user.
fn suspension() -> Body {
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

    static LINKED: std::sync::LazyLock<EntraObjectId> = std::sync::LazyLock::new(id);

    fn known(attributes: &Body, suspended: bool) -> Known<'_> {
        Known {
            entra_id: &LINKED,
            attributes,
            suspended,
        }
    }

    #[test]
    fn new_objects_are_created_with_their_body_and_unchanged_ones_left_alone() {
        let wanted = body(json!({"displayName": "A", "accountEnabled": true}));
        let desired = Desired::Present(wanted.clone());
        assert_eq!(
            plan(Kind::User, &desired, None, DeleteAction::Delete),
            Plan::Create(wanted.clone())
        );
        let known = known(&wanted, false);
        assert_eq!(
            plan(Kind::User, &desired, Some(&known), DeleteAction::Delete),
            Plan::Unchanged
        );
    }

    #[test]
    fn an_update_patches_only_changed_properties_and_carries_what_follows() {
        let wanted = body(
            json!({"displayName": "B", "passwordProfile": {"password": "x"}, "onPremisesImmutableId": "u"}),
        );
        let attributes = body(json!({"displayName": "A", "department": "x"}));
        let known = known(&attributes, false);
        let planned = plan(
            Kind::User,
            &Desired::Present(wanted.clone()),
            Some(&known),
            DeleteAction::Delete,
        );
        let Plan::Update { patch, desired } = planned else {
            panic!("a changed user is updated: {planned:?}");
        };
        assert_eq!(patch.entra_id, id());
        assert_eq!(
            patch.changes,
            body(json!({"displayName": "B"})),
            "never a create-only property"
        );
        assert_eq!(patch.properties(), vec!["displayName".to_owned()]);
        assert_eq!(
            patch.attributes,
            body(json!({"displayName": "B", "department": "x"})),
            "what is remembered once written"
        );
        assert_eq!(
            desired, wanted,
            "the whole body, to re-create a gone object"
        );
    }

    #[test]
    fn delete_actions_apply_only_to_linked_objects() {
        let attributes = body(json!({"displayName": "A", "accountEnabled": true}));
        let known = known(&attributes, false);
        let suspension = Plan::Suspend(Patch {
            entra_id: id(),
            changes: body(json!({"accountEnabled": false})),
            attributes: body(json!({"displayName": "A", "accountEnabled": false})),
        });
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
                suspension
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
    fn only_deletes_and_suspensions_are_deprovisioning() {
        let attributes = Body::new();
        let known = known(&attributes, false);
        let planned = |desired: &Desired, action| plan(Kind::User, desired, Some(&known), action);
        assert!(planned(&Desired::Deleted, DeleteAction::Delete).is_deprovisioning());
        assert!(planned(&Desired::OutOfScope, DeleteAction::Suspend).is_deprovisioning());
        assert!(!planned(&Desired::Deleted, DeleteAction::DoNothing).is_deprovisioning());
        let present = Desired::Present(body(json!({"displayName": "A"})));
        assert!(!planned(&present, DeleteAction::Delete).is_deprovisioning());
    }

    #[test]
    fn a_suspended_user_back_in_scope_is_re_enabled() {
        let attributes = body(json!({"displayName": "A", "accountEnabled": false}));
        let known = known(&attributes, true);
        let wanted = body(json!({"displayName": "A", "accountEnabled": true}));
        assert_eq!(
            plan(
                Kind::User,
                &Desired::Present(wanted.clone()),
                Some(&known),
                DeleteAction::Suspend
            ),
            Plan::Update {
                patch: Patch {
                    entra_id: id(),
                    changes: body(json!({"accountEnabled": true})),
                    attributes: wanted.clone(),
                },
                desired: wanted,
            }
        );
    }

    #[test]
    fn a_skipped_object_is_never_touched() {
        let attributes = Body::new();
        let known = known(&attributes, false);
        let skipped = Desired::Skipped("10-skip".into());
        for known in [Some(&known), None] {
            assert_eq!(
                plan(Kind::User, &skipped, known, DeleteAction::Delete),
                Plan::Skipped("10-skip".into())
            );
        }
    }
}
