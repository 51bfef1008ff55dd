//! Groups by their alternate key `uniqueName`: the idempotent create, and
//! the soft-deleted groups that may still hold a key.
//!
//! - `PATCH /groups(uniqueName='…')` with `Prefer: create-if-missing` creates
//!   the group (201 with it) or updates the one holding the key (204); sent
//!   again after a lost answer, it updates what the first one created, so a
//!   retried create never makes a second group (group-upsert page).
//! - `uniqueName` is immutable once set, and a deleted group keeps it in
//!   `directory/deletedItems` for 30 days; [`GraphClient::find_deleted_groups`]
//!   finds such a group and [`GraphClient::restore_deleted_item`] brings it back.

use crate::client::{Call, GraphClient, Sent};
use crate::ops::eq_filter;
use crate::outcome::{GraphFailure, Written};
use entra_sync_core::entra::{EntraGroup, GROUP_SELECT};
use entra_sync_core::failure::{FailureContext, Operation, Target};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value};

/// What an upsert did.
#[derive(Debug, Clone, PartialEq)]
pub enum Upserted {
    /// Graph created the group (201).
    Created(EntraGroup),
    /// A group already held the key and was updated (204): an earlier create
    /// whose answer was lost, or a group re-created earlier.
    Updated,
}

/// The path segment `groups(uniqueName='…')`, quotes doubled as OData
/// requires; the URL parser percent-encodes what a path may not hold.
fn by_key(unique_name: &str) -> String {
    format!("/groups(uniqueName='{}')", unique_name.replace('\'', "''"))
}

impl GraphClient {
    /// `PATCH /groups(uniqueName='…')` with `Prefer: create-if-missing` and
    /// `body` as given. Safe to send again when its answer was lost: it then
    /// updates the group the first one created. A 404 can only mean that a
    /// group holding the key has not replicated yet, so it is transient.
    #[tracing::instrument(level = "debug", skip(self, body))]
    pub async fn upsert_group(
        &self,
        unique_name: &str,
        body: &Map<String, Value>,
    ) -> Result<Written<Upserted>, GraphFailure> {
        let action = format!("upsert group with uniqueName '{unique_name}'");
        let call = Call {
            method: Method::PATCH,
            url: self.url(&by_key(unique_name), &[]),
            body: Some(Value::Object(body.clone())),
            context: FailureContext {
                recently_created: true,
                ..FailureContext::new(Operation::Create, Target::Group)
            },
            action: &action,
            cost: None,
            accept: &[],
            prefer: Some("create-if-missing"),
        };
        match self.execute(call).await? {
            Sent::DryRun(record) => Ok(Written::DryRun(record)),
            Sent::Answer(answer) if answer.status == 201 => {
                let group = serde_json::from_slice(&answer.body).map_err(|e| {
                    GraphFailure::transport(
                        Operation::Create,
                        &action,
                        format!("unreadable Graph answer: {e}"),
                    )
                })?;
                Ok(Written::Done {
                    value: Upserted::Created(group),
                    signals: answer.signals,
                })
            }
            Sent::Answer(answer) => Ok(Written::Done {
                value: Upserted::Updated,
                signals: answer.signals,
            }),
        }
    }

    /// `GET /groups(uniqueName='…')`; pass `recently_created` right after an
    /// upsert, so that a replication-delay 404 is transient.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn get_group_by_unique_name(
        &self,
        unique_name: &str,
        recently_created: bool,
    ) -> Result<EntraGroup, GraphFailure> {
        let select = GROUP_SELECT.join(",");
        let url = self.url(&by_key(unique_name), &[("$select", &select)]);
        let context = FailureContext {
            recently_created,
            ..FailureContext::new(Operation::Read, Target::Group)
        };
        let action = format!("get group with uniqueName '{unique_name}'");
        self.get_json(url, context, &action).await
    }

    /// The soft-deleted groups holding `unique_name`
    /// (`GET /directory/deletedItems/microsoft.graph.group?$filter=uniqueName eq '…'`).
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn find_deleted_groups(
        &self,
        unique_name: &str,
    ) -> Result<Vec<EntraGroup>, GraphFailure> {
        #[derive(Deserialize)]
        struct Page {
            value: Vec<EntraGroup>,
        }
        let select = GROUP_SELECT.join(",");
        let filter = eq_filter("uniqueName", unique_name);
        let url = self.url(
            "/directory/deletedItems/microsoft.graph.group",
            &[("$filter", &filter), ("$select", &select)],
        );
        let action = format!("look up deleted groups by uniqueName '{unique_name}'");
        let context = FailureContext::new(Operation::Read, Target::Group);
        let page: Page = self.get_json(url, context, &action).await?;
        Ok(page.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_quoted_and_encoded_in_the_path() {
        assert_eq!(
            by_key("entra-sync-1f0e"),
            "/groups(uniqueName='entra-sync-1f0e')"
        );
        assert_eq!(by_key("o'k"), "/groups(uniqueName='o''k')");
    }
}
