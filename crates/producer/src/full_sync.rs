//! One full-sync run: discovery, the deletion guard, then the users, groups and
//! memberships phases, each published as one bulk task per object and awaited
//! until the workers have finished every object of the phase.
//!
//! A run can be executed again from the start (a new leader resuming a run
//! after a crash): discovery links only what is still unlinked, planning
//! ignores objects already planned, and only objects still pending are
//! published again (tasks are level-triggered, so a repeat is harmless).

use crate::metrics::Metrics;
use entra_sync_authentik::{AuthentikClient, AuthentikError, GroupQuery, UserQuery};
use entra_sync_core::authentik::{AkGroup, AkUser};
use entra_sync_core::entra::{EntraGroup, EntraUser, listed_attributes};
use entra_sync_core::failure::FailureClass;
use entra_sync_core::ids::{AkGroupPk, AkUserPk, EntraObjectId};
use entra_sync_core::matching::{Match, Matcher};
use entra_sync_core::reconcile::DeleteAction;
use entra_sync_core::scope::Scope;
use entra_sync_core::task::{ObjectKind, ObjectRef, Task, TaskReason};
use entra_sync_graph::{GraphClient, GraphFailure};
use entra_sync_queue::{Lane, Publisher, QueueError};
use entra_sync_store::links::{GroupLink, Link, LinkOrigin, LinkState, UserLink};
use entra_sync_store::runs::{Run, RunState};
use entra_sync_store::{Store, StoreError};
use futures_util::TryStreamExt;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A provider's scope settings as configured, before the filter group is resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSettings {
    /// The name of the authentik group whose direct members are in scope, if any.
    pub filter_group: Option<String>,
    /// Leave out service accounts (`exclude_users_service_account`).
    pub exclude_service_accounts: bool,
}

/// One provider as a full sync needs it.
#[derive(Debug, Clone)]
pub struct SyncTarget {
    /// Provider name, as configured.
    pub name: String,
    /// The provider's Graph client (dry run is its setting).
    pub graph: GraphClient,
    /// Scope settings; the filter group is looked up at the start of every run.
    pub scope: ScopeSettings,
    /// What happens to linked users that are gone or out of scope.
    pub user_delete: DeleteAction,
    /// What happens to linked groups that are gone.
    pub group_delete: DeleteAction,
    /// A run that would delete or suspend more objects than this stops before any write.
    pub deletion_threshold: u32,
}

/// What a run needs besides its target: shared by every run, the sink and the scheduler.
#[derive(Debug, Clone)]
pub struct SyncContext {
    /// The authentik client.
    pub authentik: AuthentikClient,
    /// The state.
    pub store: Store,
    /// Publishes tasks (with confirms).
    pub publisher: Publisher,
    /// How often a run checks whether the workers finished a phase.
    pub poll_interval: Duration,
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
}

impl SyncContext {
    /// Publishes a task and counts it.
    pub async fn publish(&self, lane: Lane, task: &Task) -> Result<(), QueueError> {
        self.publisher.publish(lane, task).await?;
        self.metrics.task_published(lane);
        Ok(())
    }
}

/// A run could not be carried on because PostgreSQL or RabbitMQ failed. The run
/// stays `running`, and executing it again resumes it.
#[derive(Debug, thiserror::Error)]
pub enum FullSyncError {
    /// PostgreSQL failed.
    #[error("full sync {run} of provider {provider}: {source}")]
    Store {
        /// The provider.
        provider: String,
        /// The run.
        run: Uuid,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// Publishing a task failed.
    #[error("full sync {run} of provider {provider}: {source}")]
    Queue {
        /// The provider.
        provider: String,
        /// The run.
        run: Uuid,
        /// The cause.
        #[source]
        source: QueueError,
    },
    /// The run does not exist.
    #[error("full sync {run} of provider {provider} does not exist")]
    UnknownRun {
        /// The provider.
        provider: String,
        /// The run.
        run: Uuid,
    },
}

/// Why a run stops before its end.
enum Stop {
    /// End the run as failed with this message.
    Fail(String),
    /// Halt the provider for this configuration error, then fail the run.
    Halt(String),
    /// The run is no longer running (someone else ended it).
    Ended,
    /// PostgreSQL failed: leave the run running.
    Store(StoreError),
    /// RabbitMQ failed: leave the run running.
    Queue(QueueError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<QueueError> for Stop {
    fn from(e: QueueError) -> Self {
        Self::Queue(e)
    }
}

fn authentik_stop(e: AuthentikError) -> Stop {
    if e.is_configuration() {
        Stop::Halt(e.to_string())
    } else {
        Stop::Fail(format!("authentik unreachable: {e}"))
    }
}

fn graph_stop(e: GraphFailure) -> Stop {
    if e.class == FailureClass::Configuration {
        Stop::Halt(format!("Microsoft Graph: {e}"))
    } else {
        Stop::Fail(format!("discovery failed: {e}"))
    }
}

/// What discovery found and linked.
struct Discovered {
    /// In-scope authentik users.
    in_scope: BTreeSet<AkUserPk>,
    /// Every authentik group.
    groups: BTreeSet<AkGroupPk>,
    /// Every user link after discovery.
    user_links: Vec<UserLink>,
    /// Every group link after discovery.
    group_links: Vec<GroupLink>,
    /// Every authentik user by pk (to tell gone from out of scope).
    users: HashMap<AkUserPk, AkUser>,
    /// The resolved scope.
    scope: Scope,
}

/// The message of a run stopped by the deletion threshold.
pub fn threshold_message(count: u64, threshold: u32) -> String {
    format!(
        "full sync stopped: it would delete or suspend {count} objects, more than deletion_threshold {threshold}; nothing was changed"
    )
}

/// Executes run `run` of `target` to its end and returns it as finished (done
/// or failed). See the module documentation for the steps.
#[tracing::instrument(skip_all, fields(provider = %target.name, run = %run))]
pub async fn full_sync(
    ctx: &SyncContext,
    target: &SyncTarget,
    run: Uuid,
) -> Result<Run, FullSyncError> {
    let exec = Execution { ctx, target, run };
    let stop = match exec.execute().await {
        Ok(()) => {
            ctx.store
                .finish_run(run, RunState::Done, None)
                .await
                .map_err(|e| exec.store_error(e))?;
            None
        }
        Err(stop) => Some(stop),
    };
    match stop {
        None | Some(Stop::Ended) => {}
        Some(Stop::Fail(message)) => exec.fail(&message).await?,
        Some(Stop::Halt(reason)) => {
            ctx.store
                .halt(&target.name, &reason)
                .await
                .map_err(|e| exec.store_error(e))?;
            tracing::error!(%reason, "provider halted");
            exec.fail_halted().await?;
        }
        Some(Stop::Store(e)) => return Err(exec.store_error(e)),
        Some(Stop::Queue(source)) => {
            return Err(FullSyncError::Queue {
                provider: target.name.clone(),
                run,
                source,
            });
        }
    }
    let finished = ctx
        .store
        .run(run)
        .await
        .map_err(|e| exec.store_error(e))?
        .ok_or_else(|| FullSyncError::UnknownRun {
            provider: target.name.clone(),
            run,
        })?;
    tracing::info!(
        state = ?finished.state,
        total = finished.objects_total,
        done = finished.objects_done,
        failed = finished.objects_failed,
        error = finished.error.as_deref().unwrap_or(""),
        "full sync ended"
    );
    Ok(finished)
}

struct Execution<'a> {
    ctx: &'a SyncContext,
    target: &'a SyncTarget,
    run: Uuid,
}

impl Execution<'_> {
    fn store_error(&self, source: StoreError) -> FullSyncError {
        FullSyncError::Store {
            provider: self.target.name.clone(),
            run: self.run,
            source,
        }
    }

    async fn fail(&self, message: &str) -> Result<(), FullSyncError> {
        tracing::warn!(error = %message, "full sync failed");
        self.ctx
            .store
            .finish_run(self.run, RunState::Failed, Some(message))
            .await
            .map_err(|e| self.store_error(e))
    }

    async fn fail_halted(&self) -> Result<(), FullSyncError> {
        let halt = self
            .ctx
            .store
            .halt_of(&self.target.name)
            .await
            .map_err(|e| self.store_error(e))?;
        let reason = halt.map(|h| h.reason).unwrap_or_default();
        self.fail(&format!("provider halted: {reason}")).await
    }

    async fn execute(&self) -> Result<(), Stop> {
        let store = &self.ctx.store;
        match store.run(self.run).await? {
            Some(r) if r.state == RunState::Running => {}
            _ => return Err(Stop::Ended),
        }
        self.check_halt().await?;
        store.set_run_phase(self.run, "discovery").await?;
        let found = self.discover().await?;
        let count = self.deletions(&found);
        if count > u64::from(self.target.deletion_threshold) {
            return Err(Stop::Fail(threshold_message(
                count,
                self.target.deletion_threshold,
            )));
        }
        let users: BTreeSet<String> = found
            .in_scope
            .iter()
            .copied()
            .chain(found.user_links.iter().map(|l| l.ak_id))
            .map(|pk| pk.0.to_string())
            .collect();
        let groups: BTreeSet<String> = found
            .groups
            .iter()
            .copied()
            .chain(found.group_links.iter().map(|l| l.ak_id))
            .map(|pk| pk.0.hyphenated().to_string())
            .collect();
        self.phase("users", ObjectKind::User, &users).await?;
        self.phase("groups", ObjectKind::Group, &groups).await?;
        self.phase("memberships", ObjectKind::Membership, &groups)
            .await?;
        Ok(())
    }

    async fn check_halt(&self) -> Result<(), Stop> {
        match self.ctx.store.halt_of(&self.target.name).await? {
            Some(h) => Err(Stop::Fail(format!("provider halted: {}", h.reason))),
            None => Ok(()),
        }
    }

    async fn resolve_scope(&self) -> Result<Scope, Stop> {
        let settings = &self.target.scope;
        let filter_group = match &settings.filter_group {
            None => None,
            Some(name) => match self.ctx.authentik.group_by_name(name).await {
                Ok(Some(g)) => Some(g.pk),
                Ok(None) => {
                    return Err(Stop::Halt(format!(
                        "filter_group of provider {}: authentik has no group named {name:?}",
                        self.target.name
                    )));
                }
                Err(e) => return Err(authentik_stop(e)),
            },
        };
        Ok(Scope {
            filter_group,
            exclude_service_accounts: settings.exclude_service_accounts,
        })
    }

    /// Reads both sides and links unlinked objects that already exist in Entra.
    /// Writes only links, never to Graph.
    async fn discover(&self) -> Result<Discovered, Stop> {
        let provider = &self.target.name;
        let store = &self.ctx.store;
        let scope = self.resolve_scope().await?;
        let ak = &self.ctx.authentik;
        let ak_users: Vec<AkUser> = ak
            .users(&UserQuery::default())
            .try_concat()
            .await
            .map_err(authentik_stop)?;
        let ak_groups: Vec<AkGroup> = ak
            .groups(&GroupQuery::default())
            .try_concat()
            .await
            .map_err(authentik_stop)?;
        // Discovery is background traffic: Graph may throttle it first.
        let graph = &self.target.graph.bulk();
        let entra_users: Vec<EntraUser> =
            graph.list_users().collect_all().await.map_err(graph_stop)?;
        let entra_groups: Vec<EntraGroup> = graph
            .list_groups()
            .collect_all()
            .await
            .map_err(graph_stop)?;

        // Users.
        let mut user_links = store.links_of::<AkUserPk>(provider).await?;
        let linked_users: HashSet<AkUserPk> = user_links.iter().map(|l| l.ak_id).collect();
        let mut taken: HashSet<EntraObjectId> =
            user_links.iter().map(|l| l.entra_id.clone()).collect();
        let entra_by_id: HashMap<&EntraObjectId, &EntraUser> =
            entra_users.iter().map(|u| (&u.id, u)).collect();
        let mut matcher = Matcher::for_users(&entra_users);
        let mut in_scope = BTreeSet::new();
        let mut sorted: Vec<&AkUser> = ak_users.iter().collect();
        sorted.sort_by_key(|u| u.pk);
        for user in sorted {
            if !scope.includes_user(user) {
                continue;
            }
            in_scope.insert(user.pk);
            if linked_users.contains(&user.pk) {
                continue;
            }
            let Some(entra_id) = self.accept(matcher.match_user(user), &taken, "user", &user.email)
            else {
                continue;
            };
            let link = Link {
                ak_id: user.pk,
                entra_id: entra_id.clone(),
                attributes: listed_attributes(entra_by_id[&entra_id]),
                origin: LinkOrigin::Discovered,
                state: LinkState::Active,
            };
            if self.save(&link, "user", &user.email).await? {
                tracing::info!(user = %user.pk, entra_id = %entra_id, "discovery linked an existing Entra user");
                taken.insert(entra_id);
                user_links.push(link);
            }
        }

        // Groups.
        let mut group_links = store.links_of::<AkGroupPk>(provider).await?;
        let linked_groups: HashSet<AkGroupPk> = group_links.iter().map(|l| l.ak_id).collect();
        let mut taken: HashSet<EntraObjectId> =
            group_links.iter().map(|l| l.entra_id.clone()).collect();
        let entra_group_by_id: HashMap<&EntraObjectId, &EntraGroup> =
            entra_groups.iter().map(|g| (&g.id, g)).collect();
        let mut matcher = Matcher::for_groups(&entra_groups);
        let mut new_group_links = Vec::new();
        let mut sorted: Vec<&AkGroup> = ak_groups.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name).then(a.pk.0.cmp(&b.pk.0)));
        for group in sorted {
            if linked_groups.contains(&group.pk) {
                continue;
            }
            let Some(entra_id) =
                self.accept(matcher.match_group(group), &taken, "group", &group.name)
            else {
                continue;
            };
            let link = Link {
                ak_id: group.pk,
                entra_id: entra_id.clone(),
                attributes: listed_attributes(entra_group_by_id[&entra_id]),
                origin: LinkOrigin::Discovered,
                state: LinkState::Active,
            };
            if self.save(&link, "group", &group.name).await? {
                tracing::info!(group = %group.pk.0, entra_id = %entra_id, "discovery linked an existing Entra group");
                taken.insert(entra_id);
                new_group_links.push(link);
            }
        }

        // The existing members of newly linked groups that are linked users
        // count as written, so the worker diffs against what Entra has.
        let user_by_entra: HashMap<&EntraObjectId, AkUserPk> =
            user_links.iter().map(|l| (&l.entra_id, l.ak_id)).collect();
        for link in &new_group_links {
            let members = graph
                .list_members(&link.entra_id)
                .collect_all()
                .await
                .map_err(graph_stop)?;
            let known: Vec<AkUserPk> = members
                .iter()
                .filter_map(|m| user_by_entra.get(&m.id).copied())
                .collect();
            // Recorded only while the group is still linked to this Entra group
            // (a worker re-creating it meanwhile must not inherit them).
            if !known.is_empty() {
                store
                    .add_written_members_to(provider, link.ak_id, &link.entra_id, &known)
                    .await?;
            }
        }
        group_links.extend(new_group_links);

        Ok(Discovered {
            in_scope,
            groups: ak_groups.iter().map(|g| g.pk).collect(),
            user_links,
            group_links,
            users: ak_users.into_iter().map(|u| (u.pk, u)).collect(),
            scope,
        })
    }

    /// The Entra object to link for a match, or `None` (logged) when there is none
    /// or it is ambiguous or taken.
    fn accept(
        &self,
        found: Match,
        taken: &HashSet<EntraObjectId>,
        kind: &str,
        key: &str,
    ) -> Option<EntraObjectId> {
        match found {
            Match::None => None,
            Match::One(id) if taken.contains(&id) => {
                tracing::warn!(kind, key, entra_id = %id, "discovery: the matching Entra object is already linked to another authentik object; not linked");
                None
            }
            Match::One(id) => Some(id),
            Match::Ambiguous(ids) => {
                tracing::warn!(kind, key, candidates = ?ids, "discovery: several Entra objects match; not linked");
                None
            }
            Match::AlreadyClaimed(id) => {
                tracing::warn!(kind, key, entra_id = %id, "discovery: another authentik object matches the same Entra object; not linked");
                None
            }
            Match::NotOwnable { id, reason } => {
                tracing::warn!(kind, key, entra_id = %id, %reason, "discovery: the matching Entra object can't be owned; not linked");
                None
            }
        }
    }

    /// Saves a discovered link; `false` if the Entra object was linked meanwhile.
    async fn save<K: entra_sync_store::links::LinkKey>(
        &self,
        link: &Link<K>,
        kind: &str,
        key: &str,
    ) -> Result<bool, Stop> {
        match self.ctx.store.save_link(&self.target.name, link).await? {
            Ok(()) => Ok(true),
            Err(taken) => {
                tracing::warn!(kind, key, error = %taken, "discovery: not linked");
                Ok(false)
            }
        }
    }

    /// How many linked objects this run would delete or suspend.
    fn deletions(&self, found: &Discovered) -> u64 {
        let users = match self.target.user_delete {
            DeleteAction::DoNothing => 0,
            action => found
                .user_links
                .iter()
                .filter(|l| match found.users.get(&l.ak_id) {
                    None => true,
                    Some(u) => !found.scope.includes_user(u),
                })
                .filter(|l| !(action == DeleteAction::Suspend && l.state == LinkState::Suspended))
                .count(),
        };
        let groups = match self.target.group_delete {
            DeleteAction::Delete => found
                .group_links
                .iter()
                .filter(|l| !found.groups.contains(&l.ak_id))
                .count(),
            DeleteAction::Suspend | DeleteAction::DoNothing => 0,
        };
        (users + groups) as u64
    }

    /// Plans, publishes and awaits one phase.
    async fn phase(
        &self,
        name: &str,
        kind: ObjectKind,
        ids: &BTreeSet<String>,
    ) -> Result<(), Stop> {
        let store = &self.ctx.store;
        self.check_halt().await?;
        store.set_run_phase(self.run, name).await?;
        let ids: Vec<String> = ids.iter().cloned().collect();
        store.plan_run_objects(self.run, kind, &ids).await?;
        let pending = store.pending_run_objects(self.run, kind).await?;
        tracing::info!(
            phase = name,
            objects = ids.len(),
            publishing = pending.len(),
            "full sync phase"
        );
        for id in pending {
            let object = ObjectRef::parse(kind, &id).map_err(|e| Stop::Fail(e.to_string()))?;
            let mut task = Task::new(&self.target.name, object, TaskReason::FullSync);
            task.run_id = Some(self.run);
            self.ctx.publish(Lane::Bulk, &task).await?;
        }
        loop {
            if store.pending_run_object_count(self.run, kind).await? == 0 {
                return Ok(());
            }
            if let Some(h) = store.halt_of(&self.target.name).await? {
                return Err(Stop::Fail(format!("provider halted: {}", h.reason)));
            }
            match store.run(self.run).await? {
                Some(r) if r.state == RunState::Running => {}
                _ => return Err(Stop::Ended),
            }
            tokio::time::sleep(self.ctx.poll_interval).await;
        }
    }
}
