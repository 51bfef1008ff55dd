//! Reconciling one authentik user with its Entra counterpart.

use crate::ReconcileError;
use entra_sync_authentik::AuthentikClient;
use entra_sync_core::authentik::AkUser;
use entra_sync_core::diff::{self, Body};
use entra_sync_core::entra::listed_attributes;
use entra_sync_core::failure::FailureClass;
use entra_sync_core::ids::AkUserPk;
use entra_sync_core::mapping::defaults::add_user_create_properties;
use entra_sync_core::mapping::{
    Connection, MapFailure, Mapped, Mapper, MappingInput, ProviderInfo, Subject,
};
use entra_sync_core::reconcile::{DeleteAction, Desired, Kind, Known, Plan, plan, suspend_patch};
use entra_sync_core::scope::Scope;
use entra_sync_graph::{GraphClient, RequestRecord, UserLookup, Written};
use entra_sync_store::Store;
use entra_sync_store::links::{Link, LinkOrigin, LinkState, UserLink};

/// What reconciling a user did.
#[derive(Debug, Clone, PartialEq)]
pub enum UserAction {
    /// Created in Entra and linked.
    Created,
    /// The UPN was taken: the existing Entra user was adopted (and patched if needed).
    Adopted,
    /// The linked Entra user was gone: created again and re-linked.
    Recreated,
    /// These properties were PATCHed.
    Updated(Vec<String>),
    /// Nothing to write.
    Unchanged,
    /// A mapping skipped the user; its name.
    Skipped(String),
    /// Deleted in Entra, link dropped.
    Deleted,
    /// `accountEnabled` set false, link kept as suspended.
    Suspended,
    /// Link dropped, Entra left alone (`do_nothing`).
    Unlinked,
    /// Dry run: this request would have been sent.
    DryRun(RequestRecord),
}

/// Everything needed to reconcile the users of one provider.
pub struct UserReconciler {
    /// Provider name.
    pub provider: ProviderInfo,
    /// Its Graph client.
    pub graph: GraphClient,
    /// The authentik client.
    pub authentik: AuthentikClient,
    /// The state.
    pub store: Store,
    /// Compiled mappings.
    pub mapper: Mapper,
    /// Scope, with the filter group resolved.
    pub scope: Scope,
    /// What to do with deleted or out-of-scope users.
    pub on_delete: DeleteAction,
}

/// Properties never stored as "last written".
const NOT_STORED: &[&str] = &["passwordProfile"];

impl UserReconciler {
    /// Brings the Entra counterpart of authentik user `pk` to its desired state.
    #[tracing::instrument(skip(self), fields(provider = %self.provider.name))]
    pub async fn reconcile(&self, pk: AkUserPk) -> Result<UserAction, ReconcileError> {
        let user = self.authentik.user(pk).await?;
        let link = self.store.link(&self.provider.name, pk).await?;
        let desired = match self.desired(user.as_ref(), link.as_ref())? {
            Ok(desired) => desired,
            Err(skipped_by) => return Ok(UserAction::Skipped(skipped_by)),
        };
        let known = link.as_ref().map(|l| Known {
            entra_id: &l.entra_id,
            attributes: &l.attributes,
            suspended: l.state == LinkState::Suspended,
        });
        let decided = plan(Kind::User, &desired, known.as_ref(), self.on_delete);
        match (decided, &desired, link) {
            (Plan::Unchanged | Plan::Nothing, _, _) => Ok(UserAction::Unchanged),
            (Plan::Create(body), _, _) => self.create(user.as_ref().expect("present"), body).await,
            (Plan::Update { entra_id, patch }, _, Some(link)) => {
                match self.graph.update_user(&entra_id, &patch, false).await {
                    Ok(Written::DryRun(request)) => Ok(UserAction::DryRun(request)),
                    Ok(_) => {
                        let attributes = diff::apply(&link.attributes, &patch);
                        self.save(Link {
                            attributes,
                            state: LinkState::Active,
                            ..link
                        })
                        .await?;
                        Ok(UserAction::Updated(patch.keys().cloned().collect()))
                    }
                    Err(f) if f.class == FailureClass::StaleLink => {
                        let Desired::Present(body) = desired else {
                            unreachable!("updates are of present users")
                        };
                        self.store.delete_link(&self.provider.name, pk).await?;
                        match self.create(user.as_ref().expect("present"), body).await? {
                            UserAction::Created => Ok(UserAction::Recreated),
                            other => Ok(other),
                        }
                    }
                    Err(f) => Err(f.into()),
                }
            }
            (Plan::Delete(entra_id), _, _) => match self.graph.delete_user(&entra_id).await? {
                Written::DryRun(request) => Ok(UserAction::DryRun(request)),
                _ => {
                    self.store.delete_link(&self.provider.name, pk).await?;
                    Ok(UserAction::Deleted)
                }
            },
            (Plan::Suspend(entra_id), _, Some(link)) => {
                let patch = suspend_patch();
                match self.graph.update_user(&entra_id, &patch, false).await? {
                    Written::DryRun(request) => Ok(UserAction::DryRun(request)),
                    _ => {
                        let attributes = diff::apply(&link.attributes, &patch);
                        self.save(Link {
                            attributes,
                            state: LinkState::Suspended,
                            ..link
                        })
                        .await?;
                        Ok(UserAction::Suspended)
                    }
                }
            }
            (Plan::Unlink, _, _) => {
                self.store.delete_link(&self.provider.name, pk).await?;
                Ok(UserAction::Unlinked)
            }
            (Plan::Update { .. } | Plan::Suspend(_), _, None) => {
                unreachable!("updates and suspends need a link")
            }
        }
    }

    /// What authentik wants, or the name of the mapping that skipped the user.
    fn desired(
        &self,
        user: Option<&AkUser>,
        link: Option<&UserLink>,
    ) -> Result<Result<Desired, String>, ReconcileError> {
        let Some(user) = user else {
            return Ok(Ok(Desired::Deleted));
        };
        if !self.scope.includes_user(user) {
            return Ok(Ok(Desired::OutOfScope));
        }
        let connection = link.map(|l| Connection {
            entra_id: &l.entra_id,
            attributes: &l.attributes,
        });
        let input = MappingInput {
            subject: Subject::User(user),
            provider: &self.provider,
            connection,
        };
        match self.mapper.map(&input) {
            Ok(Mapped::Body(body)) => Ok(Ok(Desired::Present(body))),
            Ok(Mapped::Skip(by)) => Ok(Err(by)),
            Err(MapFailure::Mapping(e)) => Err(ReconcileError::Configuration(e.to_string())),
            Err(MapFailure::Invalid(e)) => {
                Err(ReconcileError::Permanent(format!("user {}: {e}", user.pk)))
            }
        }
    }

    async fn create(&self, user: &AkUser, body: Body) -> Result<UserAction, ReconcileError> {
        let mut create = diff::create_body(&body);
        add_user_create_properties(&mut create, user, &mut rand::rng());
        match self.graph.create_user(&create).await {
            Ok(Written::Done { value, .. }) => {
                let attributes = diff::written_attributes(&create, NOT_STORED);
                self.save(Link {
                    ak_id: user.pk,
                    entra_id: value.id,
                    attributes,
                    origin: LinkOrigin::Created,
                    state: LinkState::Active,
                })
                .await?;
                Ok(UserAction::Created)
            }
            Ok(Written::DryRun(request)) => Ok(UserAction::DryRun(request)),
            Ok(Written::AlreadyDone { .. }) => Err(ReconcileError::Permanent(format!(
                "user {}: Graph created nothing",
                user.pk
            ))),
            Err(f) if f.class == FailureClass::Conflict => self.adopt(user, &body).await,
            Err(f) => Err(f.into()),
        }
    }

    /// The UPN is taken: link the Entra user that holds it, then patch it to the desired state.
    async fn adopt(&self, user: &AkUser, body: &Body) -> Result<UserAction, ReconcileError> {
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
                    "user {}: UPN {upn} is taken but {} users hold it (replication delay?)",
                    user.pk,
                    found.len()
                ),
                retry_after: None,
            });
        };
        let attributes = listed_attributes(existing);
        let patch = diff::patch(
            body,
            &attributes,
            entra_sync_core::mapping::defaults::USER_CREATE_ONLY,
        );
        if !patch.is_empty()
            && let Written::DryRun(request) =
                self.graph.update_user(&existing.id, &patch, false).await?
        {
            return Ok(UserAction::DryRun(request));
        }
        self.save(Link {
            ak_id: user.pk,
            entra_id: existing.id.clone(),
            attributes: diff::apply(&attributes, &patch),
            origin: LinkOrigin::Adopted,
            state: LinkState::Active,
        })
        .await?;
        Ok(UserAction::Adopted)
    }

    async fn save(&self, link: UserLink) -> Result<(), ReconcileError> {
        self.store
            .save_link(&self.provider.name, &link)
            .await?
            .map_err(|taken| ReconcileError::Permanent(format!("user {}: {taken}", link.ak_id)))
    }
}
