//! Reconciling one authentik group with its Entra counterpart (the group
//! itself; its members are [`crate::memberships`]).
//!
//! Graph allows duplicate group names, so a create first looks for one
//! unlinked group of that name and adopts it: a create whose answer was lost
//! is never repeated blind (DESIGN invariant 4). Only security groups we can
//! own are adopted (invariant 7). The rest is [`crate::objects`].

use crate::ReconcileError;
use crate::memberships::recently_linked;
use crate::objects::{self, LinkedObjects, ObjectAction};
use crate::observed;
use entra_sync_authentik::AuthentikClient;
use entra_sync_core::authentik::AkGroup;
use entra_sync_core::diff::{self, Body};
use entra_sync_core::drift::GROUP_OBSERVED;
use entra_sync_core::entra::{EntraGroup, listed_attributes};
use entra_sync_core::failure::Target;
use entra_sync_core::ids::{AkGroupPk, EntraObjectId};
use entra_sync_core::mapping::defaults::GROUP_CREATE_ONLY;
use entra_sync_core::mapping::{Mapper, MappingInput, ProviderInfo, Subject};
use entra_sync_core::matching::{self, Match};
use entra_sync_core::reconcile::{DeleteAction, Desired, Kind, Patch, plan};
use entra_sync_core::task::ObjectKind;
use entra_sync_graph::{GraphClient, GraphFailure, GroupLookup, Written};
use entra_sync_provider::{DeletionGuard, record_existing_members};
use entra_sync_store::Store;
use entra_sync_store::links::{GroupLink, Link, LinkOrigin, LinkState};
use std::collections::BTreeSet;
use uuid::Uuid;

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
    /// Lets each delete through.
    pub guard: DeletionGuard,
}

impl GroupReconciler {
    /// Brings the Entra counterpart of authentik group `pk` to its desired
    /// state, for the task of full sync `run` if any.
    #[tracing::instrument(skip(self), fields(provider = %self.provider.name))]
    pub async fn reconcile(
        &self,
        pk: AkGroupPk,
        run: Option<Uuid>,
    ) -> Result<ObjectAction, ReconcileError> {
        let group = self.authentik.group(pk).await?;
        let link: Option<GroupLink> = match self.store.link(&self.provider.name, pk).await? {
            Some(link) => observed::current(self, link).await?,
            None => None,
        };
        let desired = self.desired(group.as_ref(), link.as_ref())?;
        let known = link.as_ref().map(objects::known);
        let decided = plan(Kind::Group, &desired, known.as_ref(), self.on_delete);
        objects::carry_out(self, pk, decided, run).await
    }

    /// What authentik wants of the group.
    fn desired(
        &self,
        group: Option<&AkGroup>,
        link: Option<&GroupLink>,
    ) -> Result<Desired, ReconcileError> {
        let Some(group) = group else {
            return Ok(Desired::Deleted);
        };
        let input = MappingInput {
            subject: Subject::Group(group),
            provider: &self.provider,
            connection: link.map(objects::connection),
        };
        objects::desired(
            self.mapper.map(&input),
            format!("group {} ({})", group.pk, group.name),
        )
    }

    async fn post(&self, pk: AkGroupPk, body: &Body) -> Result<ObjectAction, ReconcileError> {
        let create = diff::create_body(body);
        match self.graph.create_group(&create).await? {
            Written::Done { value, .. } => {
                self.save_link(&Link {
                    ak_id: pk,
                    entra_id: value.id,
                    attributes: diff::written_attributes(&create, &[]),
                    origin: LinkOrigin::Created,
                    state: LinkState::Active,
                })
                .await?;
                Ok(ObjectAction::Created)
            }
            Written::DryRun(request) => Ok(ObjectAction::DryRun(request)),
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
    ) -> Result<ObjectAction, ReconcileError> {
        let listed = listed_attributes(existing);
        match objects::adopt(self, pk, body, &existing.id, listed).await? {
            ObjectAction::Adopted => {
                record_existing_members(
                    &self.store,
                    &self.graph,
                    &self.provider.name,
                    pk,
                    &existing.id,
                )
                .await?;
                Ok(ObjectAction::Adopted)
            }
            other => Ok(other),
        }
    }
}

impl LinkedObjects for GroupReconciler {
    type Key = AkGroupPk;
    const KIND: ObjectKind = ObjectKind::Group;
    const CREATE_ONLY: &'static [&'static str] = GROUP_CREATE_ONLY;
    const OBSERVED: &'static [&'static str] = GROUP_OBSERVED;
    const TARGET: Target = Target::Group;

    fn graph(&self) -> &GraphClient {
        &self.graph
    }

    async fn fetch(&self, link: &GroupLink, recent: bool) -> Result<Body, GraphFailure> {
        let group = self.graph.get_group(&link.entra_id, recent).await?;
        Ok(listed_attributes(&group))
    }

    fn provider(&self) -> &str {
        &self.provider.name
    }

    fn store(&self) -> &Store {
        &self.store
    }

    fn guard(&self) -> &DeletionGuard {
        &self.guard
    }

    /// When it was linked within the replication window.
    async fn maybe_unreplicated(&self, pk: AkGroupPk) -> Result<bool, ReconcileError> {
        let links = self.store.link_refs(&self.provider.name, &[pk]).await?;
        Ok(links.first().is_some_and(|l| recently_linked(l.created_at)))
    }

    async fn send_patch(&self, patch: &Patch, recent: bool) -> Result<Written<()>, GraphFailure> {
        self.graph
            .update_group(&patch.entra_id, &patch.changes, recent)
            .await
    }

    async fn send_delete(&self, entra_id: &EntraObjectId) -> Result<Written<()>, GraphFailure> {
        self.graph.delete_group(entra_id).await
    }

    /// Creates the group, unless exactly one unlinked Entra group we can own
    /// (`matching::choose`) already has its name. Graph allows duplicate
    /// names, so a create whose answer was lost would otherwise make a second
    /// group on retry. A same-name group we can't own (a Microsoft 365,
    /// dynamic or mail-enabled group …) fails this group as a conflict: it is
    /// never touched, and no duplicate is made.
    async fn create(&self, pk: AkGroupPk, body: &Body) -> Result<ObjectAction, ReconcileError> {
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
        let free = found.iter().filter(|g| !taken.contains(&g.id));
        match matching::choose(free) {
            Match::None => self.post(pk, body).await,
            Match::One(id) => {
                let existing = found
                    .iter()
                    .find(|g| g.id == id)
                    .expect("chosen among found");
                self.adopt(pk, body, existing).await
            }
            Match::AlreadyClaimed(_) => unreachable!("choose keeps no claims"),
            Match::Ambiguous(ids) => Err(ReconcileError::Permanent(format!(
                "group {pk}: {} unlinked Entra groups are named '{name}'; not guessing which one to adopt",
                ids.len()
            ))),
            Match::NotOwnable { id, reason } => Err(ReconcileError::Permanent(format!(
                "group {pk}: conflict: Entra group {id} is already named '{name}' and can't be adopted: {reason}; \
                 neither it nor a duplicate is written (rename one of the two groups)"
            ))),
        }
    }
}
