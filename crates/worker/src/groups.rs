//! Reconciling one authentik group with its Entra counterpart (the group
//! itself; its members are [`crate::memberships`]).
//!
//! A create whose answer was lost is never repeated blind (DESIGN invariant
//! 4). Graph allows duplicate group names, so a second `POST /groups` would
//! make a second group; instead a group is created with Graph's upsert by
//! `uniqueName` (`PATCH /groups(uniqueName='…')`, `Prefer: create-if-missing`)
//! under a key derived from the authentik group's UUID. Sent again, the same
//! request updates the group the first one made, in one request that needs no
//! look-up in an eventually consistent list; a look-up by the key before each
//! retry would cost a read and could miss a group just created. A deleted
//! group keeps its key in Entra's deleted items and is restored.
//!
//! Before creating, a create still looks for one unlinked group of that name
//! and adopts it (it keeps its own `uniqueName`, usually none; the key is
//! immutable once set). Only security groups we can own are adopted
//! (invariant 7). The rest is [`crate::objects`].

use crate::ReconcileError;
use crate::memberships::recently_linked;
use crate::objects::{self, LinkedObjects, ObjectAction};
use crate::observed;
use entra_sync_authentik::AuthentikClient;
use entra_sync_core::authentik::AkGroup;
use entra_sync_core::diff::{self, Body};
use entra_sync_core::drift::GROUP_OBSERVED;
use entra_sync_core::entra::{EntraGroup, listed_attributes};
use entra_sync_core::failure::{FailureClass, Target};
use entra_sync_core::ids::{AkGroupPk, EntraObjectId};
use entra_sync_core::mapping::defaults::GROUP_CREATE_ONLY;
use entra_sync_core::mapping::{Mapper, MappingInput, ProviderInfo, Subject};
use entra_sync_core::matching::{self, Match};
use entra_sync_core::reconcile::{DeleteAction, Desired, Kind, Patch, plan};
use entra_sync_core::task::ObjectKind;
use entra_sync_graph::{GraphClient, GraphFailure, GroupLookup, Upserted, Written};
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
        let link: Option<GroupLink> = observed::current(self, pk).await?;
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

    /// Creates the group with Graph's upsert by its stable `uniqueName`
    /// ([`AkGroupPk::entra_unique_name`]): sent again after a lost answer, it
    /// updates the group the first attempt made instead of making a second.
    /// A key still held by a soft-deleted group restores that group.
    async fn upsert(&self, pk: AkGroupPk, body: &Body) -> Result<ObjectAction, ReconcileError> {
        let key = pk.entra_unique_name();
        let create = diff::create_body(body);
        match self.graph.upsert_group(&key, &create).await {
            Ok(Written::Done {
                value: Upserted::Created(group),
                ..
            }) => {
                self.link_created(pk, &create, &group.id).await?;
                Ok(ObjectAction::Created)
            }
            Ok(Written::Done {
                value: Upserted::Updated,
                ..
            }) => self.link_existing(pk, &key, &create).await,
            Ok(Written::DryRun(request)) => Ok(ObjectAction::DryRun(request)),
            Ok(Written::AlreadyDone { .. }) => Err(ReconcileError::Permanent(format!(
                "group {pk}: Graph created nothing"
            ))),
            Err(f) if f.class == FailureClass::Conflict => self.restore(pk, &key, &create).await,
            Err(f) => Err(f.into()),
        }
    }

    /// The group's key is taken although no live group holds it: a group
    /// deleted in Entra keeps its `uniqueName` while it waits in deleted
    /// items (30 days). Restoring it brings back its id and members; the
    /// upsert then brings it to the desired state.
    async fn restore(
        &self,
        pk: AkGroupPk,
        key: &str,
        create: &Body,
    ) -> Result<ObjectAction, ReconcileError> {
        let deleted = self.graph.find_deleted_groups(key).await?;
        let [group] = deleted.as_slice() else {
            // Not listed yet (lists are eventually consistent), or taken by a
            // live group not yet readable by its key: try again later.
            return Err(ReconcileError::Transient {
                detail: format!(
                    "group {pk}: uniqueName {key} is taken, but {} deleted groups hold it",
                    deleted.len()
                ),
                retry_after: None,
            });
        };
        tracing::info!(group = %pk, entra_id = %group.id, "restoring the deleted Entra group that holds the group's uniqueName");
        if let Written::DryRun(request) = self
            .graph
            .restore_deleted_item(Target::Group, &group.id)
            .await?
        {
            return Ok(ObjectAction::DryRun(request));
        }
        match self.graph.upsert_group(key, create).await? {
            Written::DryRun(request) => Ok(ObjectAction::DryRun(request)),
            _ => self.link_existing(pk, key, create).await,
        }
    }

    /// Links the group that already held `key` when the upsert updated it to
    /// `create`: made by an attempt whose answer was lost, or restored. Its
    /// members that are linked users are recorded as written.
    async fn link_existing(
        &self,
        pk: AkGroupPk,
        key: &str,
        create: &Body,
    ) -> Result<ObjectAction, ReconcileError> {
        let group = self.graph.get_group_by_unique_name(key, true).await?;
        self.link_created(pk, create, &group.id).await?;
        record_existing_members(&self.store, &self.graph, &self.provider.name, pk, &group.id)
            .await?;
        Ok(ObjectAction::Created)
    }

    /// Links Entra group `entra_id`, which holds `create` as we sent it.
    async fn link_created(
        &self,
        pk: AkGroupPk,
        create: &Body,
        entra_id: &EntraObjectId,
    ) -> Result<(), ReconcileError> {
        self.save_link(&Link {
            ak_id: pk,
            entra_id: entra_id.clone(),
            attributes: diff::written_attributes(create, &[]),
            origin: LinkOrigin::Created,
            state: LinkState::Active,
        })
        .await
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

    /// Creates the group (by [`Self::upsert`]), unless exactly one unlinked
    /// Entra group we can own (`matching::choose`) already has its name: that
    /// one is adopted and keeps its own `uniqueName`. A same-name group
    /// holding our key is ours, from an attempt whose answer was lost: the
    /// upsert updates it. A same-name group we can't own (a Microsoft 365,
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
        let key = pk.entra_unique_name();
        let ours = |g: &EntraGroup| {
            g.unique_name
                .as_deref()
                .is_some_and(|u| u.eq_ignore_ascii_case(&key))
        };
        if found.iter().any(ours) {
            return self.upsert(pk, body).await;
        }
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
            Match::None => self.upsert(pk, body).await,
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
