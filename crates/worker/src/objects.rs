//! What reconciling a user and a group share: turning the mappings' answer
//! into a [`Desired`] state, and carrying out the [`Plan`] core decided.
//!
//! Only the difference is written, and a linked object gone from Entra is
//! created again (DESIGN invariant 4); deletes and suspensions come only from
//! the plan, which makes them only of objects we linked, and each is claimed
//! from the provider's deletion guard before it is sent (invariant 7). Each
//! write is recorded as soon as Graph accepted it, so a repeated task finds
//! it done (invariants 1 and 3).

use crate::ReconcileError;
use entra_sync_core::diff::{self, Body};
use entra_sync_core::failure::{FailureClass, Target};
use entra_sync_core::ids::EntraObjectId;
use entra_sync_core::mapping::{Connection, MapFailure, Mapped};
use entra_sync_core::reconcile::{Desired, Known, Patch, Plan};
use entra_sync_core::task::ObjectKind;
use entra_sync_graph::{GraphClient, GraphFailure, RequestRecord, Written};
use entra_sync_provider::{Claim, DeletionGuard, DeprovisionAction};
use entra_sync_store::Store;
use entra_sync_store::links::{Link, LinkKey, LinkOrigin, LinkState};
use std::fmt::Display;
use uuid::Uuid;

/// What reconciling a user or a group did.
#[derive(Debug, Clone, PartialEq)]
pub enum ObjectAction {
    /// Created in Entra and linked.
    Created,
    /// An existing Entra object was linked (and patched if needed) instead of
    /// creating a second one: a user whose UPN was taken, or the one unlinked
    /// group with the name.
    Adopted,
    /// The linked Entra object was gone: created again and re-linked.
    Recreated,
    /// These properties were PATCHed.
    Updated(Vec<String>),
    /// Nothing to write.
    Unchanged,
    /// A mapping skipped the object; its name.
    Skipped(String),
    /// Deleted in Entra, link dropped.
    Deleted,
    /// A user's `accountEnabled` set false, link kept as suspended.
    Suspended,
    /// Link dropped, Entra left alone (`do_nothing`, or `suspend` for a group).
    Unlinked,
    /// Dry run: this request would have been sent.
    DryRun(RequestRecord),
}

/// One kind of linked object (users, groups) of one provider: the writes a
/// [`Plan`] needs that differ by kind.
pub(crate) trait LinkedObjects {
    /// The authentik id.
    type Key: LinkKey + Display + Ord;
    /// User or group.
    const KIND: ObjectKind;
    /// The properties sent only on create, never patched.
    const CREATE_ONLY: &'static [&'static str];
    /// The properties a full sync's listing observes of this kind.
    const OBSERVED: &'static [&'static str];
    /// What Graph's failures concern.
    const TARGET: Target;

    /// The provider's Graph client.
    fn graph(&self) -> &GraphClient;

    /// The linked object's properties, read by id.
    async fn fetch(&self, link: &Link<Self::Key>, recent: bool) -> Result<Body, GraphFailure>;

    /// The provider's name.
    fn provider(&self) -> &str;

    /// The state.
    fn store(&self) -> &Store;

    /// The provider's deletion guard, which lets each delete and suspension through.
    fn guard(&self) -> &DeletionGuard;

    /// Whether the linked object may not have replicated in Graph yet: a
    /// "not found" answer to its PATCH is then retried, not taken as a stale link.
    async fn maybe_unreplicated(&self, key: Self::Key) -> Result<bool, ReconcileError>;

    /// Sends a PATCH to the linked object.
    async fn send_patch(&self, patch: &Patch, recent: bool) -> Result<Written<()>, GraphFailure>;

    /// Deletes the Entra object.
    async fn send_delete(&self, entra_id: &EntraObjectId) -> Result<Written<()>, GraphFailure>;

    /// Creates the object with `body` and links it, or links the existing
    /// Entra object that stands in its way.
    async fn create(&self, key: Self::Key, body: &Body) -> Result<ObjectAction, ReconcileError>;

    /// Saves a new or re-pointed link; an Entra object already linked to
    /// another authentik object fails this one.
    async fn save_link(&self, link: &Link<Self::Key>) -> Result<(), ReconcileError> {
        self.store()
            .save_link(self.provider(), link)
            .await?
            .map_err(|taken| {
                ReconcileError::Permanent(format!("{} {}: {taken}", Self::KIND, link.ak_id))
            })
    }
}

/// What we know of a linked object's Entra side.
pub(crate) fn known<K>(link: &Link<K>) -> Known<'_> {
    Known {
        entra_id: &link.entra_id,
        attributes: &link.attributes,
        suspended: link.state == LinkState::Suspended,
    }
}

/// What the mappings see of a linked object.
pub(crate) fn connection<K>(link: &Link<K>) -> Connection<'_> {
    Connection {
        entra_id: &link.entra_id,
        attributes: &link.attributes,
    }
}

/// The desired state the mappings give `object`: a broken mapping is a
/// configuration failure (the provider halts); a value Graph would refuse
/// fails this object only.
pub(crate) fn desired(
    mapped: Result<Mapped, MapFailure>,
    object: impl Display,
) -> Result<Desired, ReconcileError> {
    match mapped {
        Ok(Mapped::Body(body)) => Ok(Desired::Present(body)),
        Ok(Mapped::Skip(by)) => Ok(Desired::Skipped(by)),
        Err(MapFailure::Mapping(e)) => Err(ReconcileError::Configuration(format!("{object}: {e}"))),
        Err(MapFailure::Invalid(e)) => Err(ReconcileError::Permanent(format!("{object}: {e}"))),
    }
}

/// Carries out `plan` for the object `key`, for the task of full sync `run` if any.
pub(crate) async fn carry_out<O: LinkedObjects>(
    objects: &O,
    key: O::Key,
    plan: Plan,
    run: Option<Uuid>,
) -> Result<ObjectAction, ReconcileError> {
    match plan {
        Plan::Unchanged | Plan::Nothing => Ok(ObjectAction::Unchanged),
        Plan::Skipped(by) => Ok(ObjectAction::Skipped(by)),
        Plan::Create(body) => objects.create(key, &body).await,
        Plan::Update { patch, desired } => {
            let recent = objects.maybe_unreplicated(key).await?;
            match objects.send_patch(&patch, recent).await {
                Ok(Written::DryRun(request)) => Ok(ObjectAction::DryRun(request)),
                Ok(_) => {
                    remember(objects, key, &patch, LinkState::Active).await?;
                    Ok(ObjectAction::Updated(patch.properties()))
                }
                Err(f) if f.class == FailureClass::StaleLink => {
                    objects.store().delete_link(objects.provider(), key).await?;
                    match objects.create(key, &desired).await? {
                        ObjectAction::Created => Ok(ObjectAction::Recreated),
                        other => Ok(other),
                    }
                }
                Err(f) => Err(f.into()),
            }
        }
        Plan::Delete(entra_id) => {
            claim(objects, key, DeprovisionAction::Delete, run).await?;
            match objects.send_delete(&entra_id).await? {
                Written::DryRun(request) => Ok(ObjectAction::DryRun(request)),
                _ => {
                    objects.store().delete_link(objects.provider(), key).await?;
                    Ok(ObjectAction::Deleted)
                }
            }
        }
        Plan::Suspend(patch) => {
            claim(objects, key, DeprovisionAction::Suspend, run).await?;
            let recent = objects.maybe_unreplicated(key).await?;
            match objects.send_patch(&patch, recent).await? {
                Written::DryRun(request) => Ok(ObjectAction::DryRun(request)),
                _ => {
                    remember(objects, key, &patch, LinkState::Suspended).await?;
                    Ok(ObjectAction::Suspended)
                }
            }
        }
        Plan::Unlink => {
            objects.store().delete_link(objects.provider(), key).await?;
            Ok(ObjectAction::Unlinked)
        }
    }
}

/// Links the existing Entra object `entra_id`, whose properties are `listed`,
/// after patching it to `body`: a conflict adopts rather than duplicates
/// (DESIGN invariant 6). An object already linked to another authentik
/// object is neither adopted nor written: two authentik objects wanting one
/// Entra object (two users with one e-mail) fail the second as a conflict,
/// instead of each rewriting it in turn on every sync.
pub(crate) async fn adopt<O: LinkedObjects>(
    objects: &O,
    key: O::Key,
    body: &Body,
    entra_id: &EntraObjectId,
    listed: Body,
) -> Result<ObjectAction, ReconcileError> {
    let holders = objects
        .store()
        .link_refs_by_entra_id::<O::Key>(objects.provider(), std::slice::from_ref(entra_id))
        .await?;
    if let Some(holder) = holders.iter().find(|l| l.ak_id != key) {
        return Err(ReconcileError::Permanent(format!(
            "{kind} {key}: conflict: Entra {kind} {entra_id}, which it would adopt, is already linked to authentik {kind} {}; \
             nothing is written (give the two a different userPrincipalName or name)",
            holder.ak_id,
            kind = O::KIND,
        )));
    }
    let changes = diff::patch(body, &listed, O::CREATE_ONLY);
    let attributes = diff::apply(&listed, &changes);
    if !changes.is_empty() {
        let patch = Patch {
            entra_id: entra_id.clone(),
            changes,
            attributes: attributes.clone(),
        };
        if let Written::DryRun(request) = objects.send_patch(&patch, false).await? {
            return Ok(ObjectAction::DryRun(request));
        }
    }
    objects
        .save_link(&Link {
            ak_id: key,
            entra_id: entra_id.clone(),
            attributes,
            origin: LinkOrigin::Adopted,
            state: LinkState::Active,
        })
        .await?;
    Ok(ObjectAction::Adopted)
}

/// Asks the deletion guard to let a delete or suspension of `key` through;
/// held back, it is not sent and the provider is halted.
async fn claim<O: LinkedObjects>(
    objects: &O,
    key: O::Key,
    action: DeprovisionAction,
    run: Option<Uuid>,
) -> Result<(), ReconcileError> {
    match objects
        .guard()
        .claim(O::KIND, &key.to_string(), action, run)
        .await?
    {
        Claim::Granted => Ok(()),
        Claim::HeldBack(held) => Err(ReconcileError::HeldBack(held)),
    }
}

/// Records what a PATCH wrote; the link must still point at the patched object.
async fn remember<O: LinkedObjects>(
    objects: &O,
    key: O::Key,
    patch: &Patch,
    state: LinkState,
) -> Result<(), ReconcileError> {
    let saved = objects
        .store()
        .save_link_attributes(
            objects.provider(),
            key,
            &patch.entra_id,
            &patch.attributes,
            state,
        )
        .await?;
    if saved {
        Ok(())
    } else {
        Err(ReconcileError::Transient {
            detail: format!(
                "{} {key}: no longer linked to Entra object {} once it was written",
                O::KIND,
                patch.entra_id
            ),
            retry_after: None,
        })
    }
}
