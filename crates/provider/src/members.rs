//! The members an Entra group already holds when we link it (adopted by a
//! worker or discovered by a full sync), recorded as written so they are never
//! sent again (DESIGN invariant 4; authentik re-adds them, its defect D9).

use entra_sync_core::ids::{AkGroupPk, AkUserPk, EntraObjectId};
use entra_sync_graph::{GraphClient, GraphFailure};
use entra_sync_store::{Store, StoreError};

/// The existing members of a linked group could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordMembersError {
    /// Graph did not list the Entra group's members.
    #[error("group {group}: cannot list the members of Entra group {entra_group}: {source}")]
    Graph {
        /// The authentik group.
        group: AkGroupPk,
        /// Its Entra group.
        entra_group: EntraObjectId,
        /// The cause.
        #[source]
        source: Box<GraphFailure>,
    },
    /// PostgreSQL failed.
    #[error("group {group}: cannot record its existing members: {source}")]
    Store {
        /// The authentik group.
        group: AkGroupPk,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// The authentik group was linked to another Entra group meanwhile (a
    /// worker re-created it); nothing was recorded.
    #[error(
        "group {group}: no longer linked to Entra group {entra_group} while its members were recorded"
    )]
    Relinked {
        /// The authentik group.
        group: AkGroupPk,
        /// The Entra group it was linked to.
        entra_group: EntraObjectId,
    },
}

/// Records as written the members of Entra group `entra_group` that are linked
/// users of `provider`, for authentik group `group` just linked to it. Entra
/// members that are not linked users are left alone. `graph` decides the
/// priority of the listing. Returns the recorded members.
pub async fn record_existing_members(
    store: &Store,
    graph: &GraphClient,
    provider: &str,
    group: AkGroupPk,
    entra_group: &EntraObjectId,
) -> Result<Vec<AkUserPk>, RecordMembersError> {
    let stored = |source| RecordMembersError::Store { group, source };
    let members: Vec<EntraObjectId> = graph
        .list_members(entra_group)
        .collect_all()
        .await
        .map_err(|source| RecordMembersError::Graph {
            group,
            entra_group: entra_group.clone(),
            source: Box::new(source),
        })?
        .into_iter()
        .map(|m| m.id)
        .collect();
    let mut linked: Vec<AkUserPk> = store
        .link_refs_by_entra_id::<AkUserPk>(provider, &members)
        .await
        .map_err(stored)?
        .into_iter()
        .map(|l| l.ak_id)
        .collect();
    linked.sort();
    // Only while the group is still linked to this Entra group: a group
    // re-created meanwhile must not inherit these members.
    if store
        .add_written_members_to(provider, group, entra_group, &linked)
        .await
        .map_err(stored)?
    {
        Ok(linked)
    } else {
        Err(RecordMembersError::Relinked {
            group,
            entra_group: entra_group.clone(),
        })
    }
}
