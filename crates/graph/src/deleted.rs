//! Deleted items: a user or group deleted in Entra stays restorable, with its
//! id and memberships, for 30 days (`GET /directory/deletedItems/{id}`,
//! `POST /directory/deletedItems/{id}/restore`; `microsoft-graph.md` §4.3).

use crate::client::GraphClient;
use crate::outcome::{GraphFailure, Written};
use entra_sync_core::failure::{FailureClass, FailureContext, Operation, Target};
use entra_sync_core::ids::EntraObjectId;
use reqwest::Method;
use serde_json::{Map, Value};

impl GraphClient {
    /// The deleted user or group `id` (its properties), or `None` if it is
    /// not among the deleted items (deleted for good, or never deleted).
    #[tracing::instrument(level = "debug", skip(self), fields(object = %id))]
    pub async fn deleted_item(
        &self,
        target: Target,
        id: &EntraObjectId,
    ) -> Result<Option<Map<String, Value>>, GraphFailure> {
        let url = self.url(&format!("/directory/deletedItems/{id}"), &[]);
        let context = FailureContext::new(Operation::Read, target);
        match self
            .get_json(url, context, &format!("look for {id} in the deleted items"))
            .await
        {
            Ok(found) => Ok(Some(found)),
            Err(f) if f.class == FailureClass::StaleLink => Ok(None),
            Err(f) => Err(f),
        }
    }

    /// Restores the deleted user or group `id`: it comes back with its id
    /// (a group with its members too); returns its properties as restored.
    #[tracing::instrument(level = "debug", skip(self), fields(object = %id))]
    pub async fn restore_deleted_item(
        &self,
        target: Target,
        id: &EntraObjectId,
    ) -> Result<Written<Map<String, Value>>, GraphFailure> {
        let url = self.url(&format!("/directory/deletedItems/{id}/restore"), &[]);
        self.write(
            Method::POST,
            url,
            None,
            FailureContext::new(Operation::Update, target),
            &format!("restore {id} from the deleted items"),
            |body| serde_json::from_slice(body).map_err(|e| e.to_string()),
        )
        .await
    }
}
