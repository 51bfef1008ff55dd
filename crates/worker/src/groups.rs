//! Reconciling one authentik group with its Entra counterpart (the group
//! itself; its members are [`crate::memberships`]).

use crate::ReconcileError;
use crate::memberships::recently_linked;
use entra_sync_authentik::AuthentikClient;
use entra_sync_core::authentik::AkGroup;
use entra_sync_core::diff::{self, Body};
use entra_sync_core::entra::{EntraGroup, listed_attributes};
use entra_sync_core::failure::FailureClass;
use entra_sync_core::ids::AkGroupPk;
use entra_sync_core::mapping::defaults::GROUP_CREATE_ONLY;
use entra_sync_core::mapping::{
    Connection, MapFailure, Mapped, Mapper, MappingInput, ProviderInfo, Subject,
};
use entra_sync_core::reconcile::{DeleteAction, Desired, Kind, Known, Plan, plan};
use entra_sync_graph::{GraphClient, GroupLookup, RequestRecord, Written};
use entra_sync_provider::record_existing_members;
use entra_sync_store::Store;
use entra_sync_store::links::{GroupLink, Link, LinkOrigin, LinkState};
use std::collections::BTreeSet;

/// What reconciling a group did.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupAction {
    /// Created in Entra and linked.
    Created,
    /// One unlinked Entra group already had the name: it was linked (and
    /// patched if needed) instead of creating a second one.
    Adopted,
    /// The linked Entra group was gone: created again and re-linked.
    Recreated,
    /// These properties were PATCHed.
    Updated(Vec<String>),
    /// Nothing to write.
    Unchanged,
    /// A mapping skipped the group; its name.
    Skipped(String),
    /// Deleted in Entra, link dropped.
    Deleted,
    /// Link dropped, Entra left alone (`do_nothing`, or `suspend`, which groups do not have).
    Unlinked,
    /// Dry run: this request would have been sent.
    DryRun(RequestRecord),
}

/// Everything needed to reconcile the groups of one provider. Every group is
/// in scope; a mapping may skip one.
pub struct GroupReconciler {
    /// The provider.
    pub provider: ProviderInfo,
    /// Its Graph client.
    pub graph: GraphClient,
    /// The authentik client.
    pub authentik: AuthentikClient,
    /// The state.
    pub store: Store,
    /// Compiled mappings.
    pub mapper: Mapper,
    /// What to do with deleted groups (`suspend` acts as `do_nothing`).
    pub on_delete: DeleteAction,
}

impl GroupReconciler {
    /// Brings the Entra counterpart of authentik group `pk` to its desired state.
    #[tracing::instrument(skip(self), fields(provider = %self.provider.name))]
    pub async fn reconcile(&self, pk: AkGroupPk) -> Result<GroupAction, ReconcileError> {
        let group = self.authentik.group(pk).await?;
        let link: Option<GroupLink> = self.store.link(&self.provider.name, pk).await?;
        let desired = match self.desired(group.as_ref(), link.as_ref())? {
            Ok(desired) => desired,
            Err(skipped_by) => return Ok(GroupAction::Skipped(skipped_by)),
        };
        let known = link.as_ref().map(|l| Known {
            entra_id: &l.entra_id,
            attributes: &l.attributes,
            suspended: false,
        });
        let decided = plan(Kind::Group, &desired, known.as_ref(), self.on_delete);
        match (decided, desired, link) {
            (Plan::Unchanged | Plan::Nothing, _, _) => Ok(GroupAction::Unchanged),
            (Plan::Create(body), _, _) => self.create(pk, &body).await,
            (Plan::Update { entra_id, patch }, Desired::Present(body), Some(link)) => {
                let recent = self
                    .store
                    .link_refs(&self.provider.name, &[pk])
                    .await?
                    .first()
                    .is_some_and(|l| recently_linked(l.created_at));
                match self.graph.update_group(&entra_id, &patch, recent).await {
                    Ok(Written::DryRun(request)) => Ok(GroupAction::DryRun(request)),
                    Ok(_) => {
                        let attributes = diff::apply(&link.attributes, &patch);
                        self.save(Link { attributes, ..link }).await?;
                        Ok(GroupAction::Updated(patch.keys().cloned().collect()))
                    }
                    Err(f) if f.class == FailureClass::StaleLink => {
                        self.store.delete_link(&self.provider.name, pk).await?;
                        match self.create(pk, &body).await? {
                            GroupAction::Created => Ok(GroupAction::Recreated),
                            other => Ok(other),
                        }
                    }
                    Err(f) => Err(f.into()),
                }
            }
            (Plan::Delete(entra_id), _, _) => match self.graph.delete_group(&entra_id).await? {
                Written::DryRun(request) => Ok(GroupAction::DryRun(request)),
                _ => {
                    self.store.delete_link(&self.provider.name, pk).await?;
                    Ok(GroupAction::Deleted)
                }
            },
            (Plan::Unlink, _, _) => {
                self.store.delete_link(&self.provider.name, pk).await?;
                Ok(GroupAction::Unlinked)
            }
            (Plan::Update { .. }, _, _) => unreachable!("updates are of present, linked groups"),
            (Plan::Suspend(_), _, _) => unreachable!("groups are never suspended"),
        }
    }

    /// What authentik wants, or the name of the mapping that skipped the group.
    fn desired(
        &self,
        group: Option<&AkGroup>,
        link: Option<&GroupLink>,
    ) -> Result<Result<Desired, String>, ReconcileError> {
        let Some(group) = group else {
            return Ok(Ok(Desired::Deleted));
        };
        let connection = link.map(|l| Connection {
            entra_id: &l.entra_id,
            attributes: &l.attributes,
        });
        let input = MappingInput {
            subject: Subject::Group(group),
            provider: &self.provider,
            connection,
        };
        match self.mapper.map(&input) {
            Ok(Mapped::Body(body)) => Ok(Ok(Desired::Present(body))),
            Ok(Mapped::Skip(by)) => Ok(Err(by)),
            Err(MapFailure::Mapping(e)) => Err(ReconcileError::Configuration(format!(
                "group {} ({}): {e}",
                group.pk, group.name
            ))),
            Err(MapFailure::Invalid(e)) => Err(ReconcileError::Permanent(format!(
                "group {} ({}): {e}",
                group.pk, group.name
            ))),
        }
    }

    /// Creates the group, unless exactly one unlinked Entra group already has
    /// its name. Graph allows duplicate names, so a create whose answer was
    /// lost would otherwise make a second group on retry.
    async fn create(&self, pk: AkGroupPk, body: &Body) -> Result<GroupAction, ReconcileError> {
        let Some(name) = body.get("displayName").and_then(|v| v.as_str()) else {
            return Err(ReconcileError::Permanent(format!(
                "group {pk}: the mappings give no displayName to create it with"
            )));
        };
        let found = self
            .graph
            .find_groups(GroupLookup::DisplayName, name)
            .await?;
        let ids: Vec<_> = found.iter().map(|g| g.id.clone()).collect();
        let taken: BTreeSet<_> = self
            .store
            .link_refs_by_entra_id::<AkGroupPk>(&self.provider.name, &ids)
            .await?
            .into_iter()
            .filter(|l| l.ak_id != pk)
            .map(|l| l.entra_id)
            .collect();
        let free: Vec<&EntraGroup> = found.iter().filter(|g| !taken.contains(&g.id)).collect();
        match free.as_slice() {
            [] => self.post(pk, body).await,
            [existing] => self.adopt(pk, body, existing).await,
            several => Err(ReconcileError::Permanent(format!(
                "group {pk}: {} unlinked Entra groups are named '{name}'; not guessing which one to adopt",
                several.len()
            ))),
        }
    }

    async fn post(&self, pk: AkGroupPk, body: &Body) -> Result<GroupAction, ReconcileError> {
        let create = diff::create_body(body);
        match self.graph.create_group(&create).await? {
            Written::Done { value, .. } => {
                self.save(Link {
                    ak_id: pk,
                    entra_id: value.id,
                    attributes: diff::written_attributes(&create, &[]),
                    origin: LinkOrigin::Created,
                    state: LinkState::Active,
                })
                .await?;
                Ok(GroupAction::Created)
            }
            Written::DryRun(request) => Ok(GroupAction::DryRun(request)),
            Written::AlreadyDone { .. } => Err(ReconcileError::Permanent(format!(
                "group {pk}: Graph created nothing"
            ))),
        }
    }

    /// Links `existing`, patches it to the desired state and records its
    /// members that are linked users as written, so they are not sent again.
    async fn adopt(
        &self,
        pk: AkGroupPk,
        body: &Body,
        existing: &EntraGroup,
    ) -> Result<GroupAction, ReconcileError> {
        let attributes = listed_attributes(existing);
        let patch = diff::patch(body, &attributes, GROUP_CREATE_ONLY);
        if !patch.is_empty()
            && let Written::DryRun(request) =
                self.graph.update_group(&existing.id, &patch, false).await?
        {
            return Ok(GroupAction::DryRun(request));
        }
        self.save(Link {
            ak_id: pk,
            entra_id: existing.id.clone(),
            attributes: diff::apply(&attributes, &patch),
            origin: LinkOrigin::Adopted,
            state: LinkState::Active,
        })
        .await?;
        record_existing_members(
            &self.store,
            &self.graph,
            &self.provider.name,
            pk,
            &existing.id,
        )
        .await?;
        Ok(GroupAction::Adopted)
    }

    async fn save(&self, link: GroupLink) -> Result<(), ReconcileError> {
        self.store
            .save_link(&self.provider.name, &link)
            .await?
            .map_err(|taken| ReconcileError::Permanent(format!("group {}: {taken}", link.ak_id)))
    }
}
