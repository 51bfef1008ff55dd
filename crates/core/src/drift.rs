//! Drift: what Entra holds, as far as entra-sync knows it. That is the
//! attributes last written, or what a full sync's listing observed when that
//! observation is newer; the same comparison serves the full sync (which
//! publishes a task only for an object that differs) and the worker (which
//! PATCHes only what differs).

use crate::diff::{self, Body};
use crate::ids::EntraObjectId;
use crate::reconcile::{DeleteAction, Desired, Kind, Known, Plan, plan};
use serde_json::Value;

/// The user properties a listing observes: those entra-sync manages by
/// default and may PATCH. A property a custom mapping adds beyond these is
/// compared with its last written value.
pub const USER_OBSERVED: &[&str] = &[
    "displayName",
    "accountEnabled",
    "mailNickname",
    "userPrincipalName",
];

/// The group properties a listing observes (see [`USER_OBSERVED`]).
pub const GROUP_OBSERVED: &[&str] = &[
    "displayName",
    "mailNickname",
    "mailEnabled",
    "securityEnabled",
];

/// What a full sync's listing saw of a linked object.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// Listed, with the values of the selected properties (`null` for one it
    /// does not hold).
    Listed(Body),
    /// Not in the listing: gone, or not yet listed (Graph's lists are
    /// eventually consistent, so this alone never re-creates anything).
    Missing,
}

/// The selected properties of a listed object (`id` aside), each present,
/// `null` where Graph holds no value, so that an observation clears a value
/// the portal removed.
pub fn observed_body(listed: &Body, selected: &[&str]) -> Body {
    selected
        .iter()
        .filter(|p| **p != "id")
        .map(|p| {
            (
                (*p).to_owned(),
                listed.get(*p).cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// What Entra holds: `written` with each property of `observed` in its place
/// (a `null` there clears it). Properties the listing did not select keep
/// their last written value.
pub fn holds(written: &Body, observed: &Body) -> Body {
    diff::apply(written, observed)
}

/// Whether `observed` tells anything new about an object believed to hold
/// `believed`: only then is it worth storing.
pub fn is_news(observed: &Body, believed: &Body) -> bool {
    !diff::patch(observed, believed, &[]).is_empty()
}

/// A linked object as the full sync knows it before its listing.
#[derive(Debug, Clone, Copy)]
pub struct Linked<'a> {
    /// The Entra object.
    pub entra_id: &'a EntraObjectId,
    /// The attributes last written.
    pub written: &'a Body,
    /// Whether we suspended it.
    pub suspended: bool,
    /// The stored observation, if newer than the last write.
    pub stored: Option<&'a Observed>,
}

/// What the full sync makes of one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Whether the object needs a task: what authentik wants differs from
    /// what Entra holds, or the object is not linked yet, or is missing.
    pub task: bool,
    /// The observation to store, if it tells something new.
    pub record: Option<Observed>,
}

/// Compares what authentik wants of an object with what Entra holds: the
/// last write, or the stored observation, overlaid with `observed` (this
/// listing's, for a linked object). The decision is [`plan`]'s, the one the
/// worker makes: no task when it would write nothing.
pub fn judge(
    kind: Kind,
    desired: &Desired,
    linked: Option<Linked<'_>>,
    observed: Observed,
    on_delete: DeleteAction,
) -> Verdict {
    let Some(linked) = linked else {
        let planned = plan(kind, desired, None, on_delete);
        return Verdict {
            task: needs_work(&planned),
            record: None,
        };
    };
    let believed = match linked.stored {
        Some(Observed::Listed(body)) => holds(linked.written, body),
        _ => linked.written.clone(),
    };
    let was_missing = linked.stored == Some(&Observed::Missing);
    match observed {
        Observed::Missing => Verdict {
            task: true,
            record: (!was_missing).then_some(Observed::Missing),
        },
        Observed::Listed(body) => {
            let now = holds(&believed, &body);
            let known = Known {
                entra_id: linked.entra_id,
                attributes: &now,
                suspended: linked.suspended,
            };
            let planned = plan(kind, desired, Some(&known), on_delete);
            let news = was_missing || is_news(&body, &believed);
            Verdict {
                task: needs_work(&planned),
                record: news.then_some(Observed::Listed(body)),
            }
        }
    }
}

/// Whether a plan writes (or unlinks) anything.
fn needs_work(planned: &Plan) -> bool {
    !matches!(planned, Plan::Unchanged | Plan::Nothing | Plan::Skipped(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Body {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn an_observation_overrides_only_what_it_selected() {
        let listed = body(json!({"id": "x", "displayName": "Renamed", "accountEnabled": false}));
        let observed = observed_body(&listed, &["id", "displayName", "accountEnabled", "mail"]);
        assert_eq!(
            observed,
            body(json!({"displayName": "Renamed", "accountEnabled": false, "mail": null}))
        );
        let written = body(
            json!({"displayName": "A", "accountEnabled": true, "mail": "a@x.com", "jobTitle": "t"}),
        );
        assert_eq!(
            holds(&written, &observed),
            body(json!({"displayName": "Renamed", "accountEnabled": false, "jobTitle": "t"}))
        );
    }

    fn id() -> EntraObjectId {
        EntraObjectId::parse("00000000-0000-0000-0000-000000000001").unwrap()
    }

    #[test]
    fn only_objects_whose_entra_side_differs_get_a_task() {
        let wanted = body(json!({"displayName": "A", "accountEnabled": true}));
        let desired = Desired::Present(wanted.clone());
        let entra_id = id();
        let linked = Linked {
            entra_id: &entra_id,
            written: &wanted,
            suspended: false,
            stored: None,
        };
        let listed = |v: Value| Observed::Listed(observed_body(&body(v), USER_OBSERVED));
        let judged = |observed| {
            judge(
                Kind::User,
                &desired,
                Some(linked),
                observed,
                DeleteAction::Delete,
            )
        };
        let same = judged(listed(json!({"displayName": "A", "accountEnabled": true})));
        assert_eq!(
            same,
            Verdict {
                task: false,
                record: None
            }
        );
        let disabled = judged(listed(json!({"displayName": "A", "accountEnabled": false})));
        assert!(disabled.task && disabled.record.is_some(), "{disabled:?}");
        assert_eq!(
            judged(Observed::Missing),
            Verdict {
                task: true,
                record: Some(Observed::Missing)
            }
        );
        let unlinked = judge(
            Kind::User,
            &desired,
            None,
            Observed::Missing,
            DeleteAction::Delete,
        );
        assert!(unlinked.task, "not linked yet: created by its task");
        let out = judge(
            Kind::User,
            &Desired::OutOfScope,
            None,
            Observed::Missing,
            DeleteAction::Delete,
        );
        assert!(!out.task, "nothing of ours to deprovision");
    }

    #[test]
    fn a_stored_observation_stands_until_the_listing_tells_otherwise() {
        let wanted = body(json!({"displayName": "A"}));
        let desired = Desired::Present(wanted.clone());
        let entra_id = id();
        let renamed = Observed::Listed(body(json!({"displayName": "B"})));
        let linked = Linked {
            entra_id: &entra_id,
            written: &wanted,
            suspended: false,
            stored: Some(&renamed),
        };
        let again = judge(
            Kind::Group,
            &desired,
            Some(linked),
            renamed.clone(),
            DeleteAction::Delete,
        );
        assert_eq!(
            again,
            Verdict {
                task: true,
                record: None
            },
            "already recorded"
        );
        let back = Observed::Listed(body(json!({"displayName": "A"})));
        let fixed = judge(
            Kind::Group,
            &desired,
            Some(linked),
            back.clone(),
            DeleteAction::Delete,
        );
        assert_eq!(
            fixed,
            Verdict {
                task: false,
                record: Some(back)
            }
        );
    }

    #[test]
    fn an_observation_equal_to_what_is_believed_is_no_news() {
        let believed = body(json!({"userPrincipalName": "A@x.com", "displayName": "A"}));
        let same = body(json!({"userPrincipalName": "a@X.com", "displayName": "A", "mail": null}));
        assert!(!is_news(&same, &believed));
        let renamed = body(json!({"userPrincipalName": "a@x.com", "displayName": "B"}));
        assert!(is_news(&renamed, &believed));
    }
}
