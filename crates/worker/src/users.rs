//! Reconciling one authentik user with its Entra counterpart.
//!
//! A user whose UPN is already taken in Entra adopts the user holding it
//! (DESIGN invariant 6, conflict), unless it is mastered on-premises; one
//! outside the scope is deprovisioned only if we linked it (invariant 7). The rest is [`crate::objects`].

use crate::ReconcileError;
use crate::objects::{self, LinkedObjects, ObjectAction};
use crate::observed;
use entra_sync_core::diff::{self, Body};
use entra_sync_core::drift::USER_OBSERVED;
use entra_sync_core::entra::{Ownable, listed_attributes};
use entra_sync_core::failure::{FailureClass, Target};
use entra_sync_core::ids::{AkUserPk, EntraObjectId};
use entra_sync_core::mapping::defaults::{
    USER_CREATE_ONLY, add_initial_password, add_user_immutable_id,
};
use entra_sync_core::mapping::{Mapper, MappingInput, ProviderInfo, Subject};
use entra_sync_core::reconcile::{DeleteAction, Desired, Kind, Patch, plan};
use entra_sync_core::task::ObjectKind;
use entra_sync_graph::{GraphClient, GraphFailure, UserLookup, Written};
use entra_sync_provider::{DeletionGuard, ScopedUser, SharedScope};
use entra_sync_store::Store;
use entra_sync_store::links::{Link, LinkOrigin, LinkState, UserLink};
use uuid::Uuid;

/// Everything needed to reconcile the users of one provider.
pub struct UserReconciler {
    /// Provider name.
    pub provider: ProviderInfo,
    /// Its Graph client.
    pub graph: GraphClient,
    /// The state.
    pub store: Store,
    /// Compiled mappings.
    pub mapper: Mapper,
    /// Scope, as shared by every process (never a cached resolution).
    pub scope: SharedScope,
    /// What to do with deleted or out-of-scope users.
    pub on_delete: DeleteAction,
    /// Lets each delete and suspension through.
    pub guard: DeletionGuard,
}

/// Properties never stored as "last written".
const NOT_STORED: &[&str] = &["passwordProfile"];

impl UserReconciler {
    /// Brings the Entra counterpart of authentik user `pk` to its desired
    /// state, for the task of full sync `run` if any.
    #[tracing::instrument(skip(self), fields(provider = %self.provider.name))]
    pub async fn reconcile(
        &self,
        pk: AkUserPk,
        run: Option<Uuid>,
    ) -> Result<ObjectAction, ReconcileError> {
        let user = self.scope.user(pk).await?;
        let link = observed::current(self, pk).await?;
        let desired = self.desired(&user, link.as_ref())?;
        let known = link.as_ref().map(objects::known);
        let decided = plan(Kind::User, &desired, known.as_ref(), self.on_delete);
        objects::carry_out(self, pk, decided, run).await
    }

    /// What authentik wants of the user.
    fn desired(
        &self,
        user: &ScopedUser,
        link: Option<&UserLink>,
    ) -> Result<Desired, ReconcileError> {
        let user = match user {
            ScopedUser::Gone => return Ok(Desired::Deleted),
            ScopedUser::OutOfScope(_) => return Ok(Desired::OutOfScope),
            ScopedUser::InScope(user) => user.as_ref(),
        };
        let input = MappingInput {
            subject: Subject::User(user),
            provider: &self.provider,
            connection: link.map(objects::connection),
        };
        let mut desired = objects::desired(self.mapper.map(&input), format!("user {}", user.pk))?;
        if let Desired::Present(body) = &mut desired {
            add_user_immutable_id(body, user);
        }
        Ok(desired)
    }

    /// The UPN is taken: link the Entra user that holds it, then patch it to
    /// the desired state; one mastered on-premises is not adopted (Entra
    /// refuses cloud writes to it), and this user fails as a conflict.
    async fn adopt(&self, pk: AkUserPk, body: &Body) -> Result<ObjectAction, ReconcileError> {
        let upn = body
            .get("userPrincipalName")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let found = self
            .graph
            .find_users(UserLookup::UserPrincipalName, upn)
            .await?;
        let [existing] = found.as_slice() else {
            return Err(ReconcileError::Transient {
                detail: format!(
                    "user {pk}: UPN {upn} is taken but {} users hold it (replication delay?)",
                    found.len()
                ),
                retry_after: None,
            });
        };
        if let Err(reason) = existing.ownership() {
            return Err(ReconcileError::Permanent(format!(
                "user {pk}: conflict: UPN {upn} is taken by Entra user {}, which can't be adopted: {reason}",
                existing.id
            )));
        }
        objects::adopt(self, pk, body, &existing.id, listed_attributes(existing)).await
    }
}

impl LinkedObjects for UserReconciler {
    type Key = AkUserPk;
    const KIND: ObjectKind = ObjectKind::User;
    const CREATE_ONLY: &'static [&'static str] = USER_CREATE_ONLY;
    const OBSERVED: &'static [&'static str] = USER_OBSERVED;
    const TARGET: Target = Target::User;

    fn graph(&self) -> &GraphClient {
        &self.graph
    }

    async fn fetch(&self, link: &UserLink, recent: bool) -> Result<Body, GraphFailure> {
        let user = self.graph.get_user(&link.entra_id, recent).await?;
        Ok(listed_attributes(&user))
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

    /// Never: a user's PATCH takes Graph's "not found" as a stale link at once.
    async fn maybe_unreplicated(&self, _: AkUserPk) -> Result<bool, ReconcileError> {
        Ok(false)
    }

    async fn send_patch(&self, patch: &Patch, recent: bool) -> Result<Written<()>, GraphFailure> {
        self.graph
            .update_user(&patch.entra_id, &patch.changes, recent)
            .await
    }

    async fn send_delete(&self, entra_id: &EntraObjectId) -> Result<Written<()>, GraphFailure> {
        self.graph.delete_user(entra_id).await
    }

    /// Creates the user with a random initial password; if its UPN is taken,
    /// adopts the Entra user holding it.
    async fn create(&self, pk: AkUserPk, body: &Body) -> Result<ObjectAction, ReconcileError> {
        let mut create = diff::create_body(body);
        add_initial_password(&mut create, &mut rand::rng());
        match self.graph.create_user(&create).await {
            Ok(Written::Done { value, .. }) => {
                self.save_link(&Link {
                    ak_id: pk,
                    entra_id: value.id,
                    attributes: diff::written_attributes(&create, NOT_STORED),
                    origin: LinkOrigin::Created,
                    state: LinkState::Active,
                })
                .await?;
                Ok(ObjectAction::Created)
            }
            Ok(Written::DryRun(request)) => Ok(ObjectAction::DryRun(request)),
            Ok(Written::AlreadyDone { .. }) => Err(ReconcileError::Permanent(format!(
                "user {pk}: Graph created nothing"
            ))),
            Err(f) if f.class == FailureClass::Conflict => self.adopt(pk, body).await,
            Err(f) => Err(f.into()),
        }
    }
}
