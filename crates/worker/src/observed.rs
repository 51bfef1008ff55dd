//! What Entra holds of a linked object, for the worker's diff (DESIGN
//! invariant 4): the attributes last written or, when newer, what the last
//! full sync's listing observed ([`entra_sync_core::drift`]). The task names
//! only the object; what was observed is read here, from the link.
//!
//! An object the listing missed is not re-created on that alone: Graph's
//! lists are eventually consistent. The observation counts only while
//! nothing was written to the object since the listing began; then a GET by
//! id must answer 404; then the object is restored from the deleted items if
//! it is there (it keeps its id, licences and memberships), and only
//! otherwise is the link dropped, so that the plan creates it again.

use crate::ReconcileError;
use crate::objects::LinkedObjects;
use entra_sync_core::diff::Body;
use entra_sync_core::drift::{Observed, holds, observed_body};
use entra_sync_core::failure::FailureClass;
use entra_sync_graph::Written;
use entra_sync_store::links::Link;

/// The object's link with its attributes replaced by what Entra holds (both
/// read at once), or `None` if it has no link or the linked object is gone for
/// good (its link was then dropped).
pub(crate) async fn current<O: LinkedObjects>(
    objects: &O,
    key: O::Key,
) -> Result<Option<Link<O::Key>>, ReconcileError> {
    let provider = objects.provider();
    let Some((mut link, observed)) = objects.store().link_observed(provider, key).await? else {
        return Ok(None);
    };
    match observed {
        None => Ok(Some(link)),
        Some(Observed::Listed(body)) => {
            link.attributes = holds(&link.attributes, &body);
            Ok(Some(link))
        }
        Some(Observed::Missing) => match confirm_gone(objects, &link).await? {
            Some(found) => {
                link.attributes = holds(&link.attributes, &observed_body(&found, O::OBSERVED));
                // What Entra holds now supersedes the observation.
                objects
                    .store()
                    .save_link_attributes(
                        provider,
                        link.ak_id,
                        &link.entra_id,
                        &link.attributes,
                        link.state,
                    )
                    .await?;
                Ok(Some(link))
            }
            None => {
                tracing::warn!(object = %link.ak_id, entra_id = %link.entra_id, "the linked Entra object is gone and not among the deleted items; it is created again");
                objects.store().delete_link(provider, link.ak_id).await?;
                Ok(None)
            }
        },
    }
}

/// The properties of an object the listing missed: read by id, or restored
/// from the deleted items; `None` when it is gone for good, or can't be
/// restored because its name was taken meanwhile (the create then adopts the
/// object holding it).
async fn confirm_gone<O: LinkedObjects>(
    objects: &O,
    link: &Link<O::Key>,
) -> Result<Option<Body>, ReconcileError> {
    let recent = objects.maybe_unreplicated(link.ak_id).await?;
    match objects.fetch(link, recent).await {
        Ok(found) => return Ok(Some(found)),
        Err(f) if f.class == FailureClass::StaleLink => {}
        Err(f) => return Err(f.into()),
    }
    let graph = objects.graph();
    if graph
        .deleted_item(O::TARGET, &link.entra_id)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    match graph.restore_deleted_item(O::TARGET, &link.entra_id).await {
        Ok(Written::Done { value, .. }) => {
            tracing::info!(object = %link.ak_id, entra_id = %link.entra_id, "restored the linked Entra object from the deleted items");
            Ok(Some(value))
        }
        // Dry run: it would be restored as it was.
        Ok(_) => Ok(Some(link.attributes.clone())),
        Err(f) if matches!(f.class, FailureClass::Conflict | FailureClass::StaleLink) => Ok(None),
        Err(f) => Err(f.into()),
    }
}
