//! Discovery, the first step of a full sync: reads authentik and Entra once
//! (keeping of authentik's users only their pks and scope, and the unlinked
//! ones' e-mails) and links the unlinked authentik objects that already exist in Entra
//! (users by e-mail against `mail` or `userPrincipalName`, groups by
//! `displayName`; ambiguous matches are reported, never guessed), keeping the
//! attributes Entra lists so that only real differences are written later.
//! It writes links, never to Graph, each under the object's lock and only
//! where the object has no link: a link a worker made meanwhile is never
//! overwritten (DESIGN invariant 2). Only objects we can own are linked
//! (`matching`, invariant 7). The existing members of the groups it links
//! count as written (the provider room's [`record_existing_members`]).

use entra_sync_authentik::{AuthentikClient, AuthentikError, GroupQuery, UserQuery};
use entra_sync_core::authentik::AkGroup;
use entra_sync_core::entra::{EntraGroup, EntraUser, listed_attributes};
use entra_sync_core::ids::{AkGroupPk, AkUserPk, EntraObjectId};
use entra_sync_core::matching::{Match, Matcher};
use entra_sync_core::scope::Scope;
use entra_sync_core::task::ObjectRef;
use entra_sync_graph::GraphFailure;
use entra_sync_provider::{Provider, RecordMembersError, ScopeError, record_existing_members};
use entra_sync_store::link_refs::LinkRef;
use entra_sync_store::links::{Link, LinkKey, LinkOrigin, LinkState, NewLink};
use entra_sync_store::{Store, StoreError};
use futures_util::TryStreamExt;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, SystemTime};

/// How long discovery waits for an object a worker is writing before it
/// leaves the object to that worker's task.
const LINK_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// What discovery found and linked.
pub(crate) struct Discovered {
    /// Every authentik group.
    pub(crate) groups: BTreeSet<AkGroupPk>,
    /// Every user link after discovery, without its attributes.
    pub(crate) user_links: Vec<LinkRef<AkUserPk>>,
    /// Every group link after discovery, without its attributes.
    pub(crate) group_links: Vec<LinkRef<AkGroupPk>>,
    /// Every authentik user's pk, with whether it is in scope (to tell gone
    /// from out of scope). The users themselves are not kept: the comparison
    /// reads them again a page at a time ([`crate::drift`]).
    pub(crate) users: HashMap<AkUserPk, bool>,
    /// The resolved scope.
    pub(crate) scope: Scope,
    /// Every authentik group, with its members.
    pub(crate) ak_groups: Vec<AkGroup>,
    /// Entra's users as listed.
    pub(crate) entra_users: Vec<EntraUser>,
    /// Entra's groups as listed.
    pub(crate) entra_groups: Vec<EntraGroup>,
    /// When the listings began (the database's clock): their observations' time.
    pub(crate) listed_at: SystemTime,
}

/// Why discovery, or the comparison after it ([`crate::drift`]), stopped.
pub(crate) enum DiscoveryError {
    /// The scope could not be resolved.
    Scope(ScopeError),
    /// authentik could not be read.
    Authentik(AuthentikError),
    /// Graph could not be read.
    Graph(Box<GraphFailure>),
    /// PostgreSQL failed.
    Store(StoreError),
}

impl DiscoveryError {
    pub(crate) fn graph(failure: GraphFailure) -> Self {
        Self::Graph(Box::new(failure))
    }
}

impl From<StoreError> for DiscoveryError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Discovery for one provider.
pub(crate) struct Discovery<'a> {
    /// The state.
    pub(crate) store: &'a Store,
    /// The authentik client.
    pub(crate) authentik: &'a AuthentikClient,
    /// The provider.
    pub(crate) provider: &'a Provider,
}

impl Discovery<'_> {
    /// Reads both sides and links unlinked objects that already exist in Entra.
    pub(crate) async fn run(&self) -> Result<Discovered, DiscoveryError> {
        let provider = &self.provider.name;
        let store = self.store;
        let scope = self
            .provider
            .shared_scope(self.authentik, store)
            .refresh()
            .await
            .map_err(DiscoveryError::Scope)?;
        let ak = self.authentik;
        // Only the unlinked users in scope are kept, by e-mail, to be matched.
        let mut user_links = store.link_refs_of::<AkUserPk>(provider).await?;
        let linked_users: HashSet<AkUserPk> = user_links.iter().map(|l| l.ak_id).collect();
        let mut users = HashMap::new();
        let mut unlinked: Vec<(AkUserPk, String)> = Vec::new();
        let mut pages = std::pin::pin!(ak.users(&UserQuery::default()));
        while let Some(page) = pages.try_next().await.map_err(DiscoveryError::Authentik)? {
            for user in page {
                let in_scope = scope.includes_user(&user);
                users.insert(user.pk, in_scope);
                if in_scope && !linked_users.contains(&user.pk) {
                    unlinked.push((user.pk, user.email));
                }
            }
        }
        let ak_groups: Vec<AkGroup> = ak
            .groups(&GroupQuery::default())
            .try_concat()
            .await
            .map_err(DiscoveryError::Authentik)?;
        // Discovery is background traffic: Graph may throttle it first.
        let graph = &self.provider.graph.bulk();
        let listed_at = store.clock().await?;
        let entra_users: Vec<EntraUser> = graph
            .list_users()
            .collect_all()
            .await
            .map_err(DiscoveryError::graph)?;
        let entra_groups: Vec<EntraGroup> = graph
            .list_groups()
            .collect_all()
            .await
            .map_err(DiscoveryError::graph)?;

        // Users. Entra's users are indexed only for the users in scope that
        // are unlinked: a converged directory of 100,000 users needs no index.
        unlinked.sort_by_key(|(pk, _)| *pk);
        let (mut taken, entra_by_id, mut matcher): (HashSet<_>, HashMap<_, _>, _) =
            if unlinked.is_empty() {
                Default::default()
            } else {
                (
                    user_links.iter().map(|l| l.entra_id.clone()).collect(),
                    entra_users.iter().map(|u| (&u.id, u)).collect(),
                    Matcher::for_users_matching(
                        &entra_users,
                        unlinked.iter().map(|(_, email)| email.as_str()),
                    ),
                )
            };
        for (pk, email) in unlinked {
            let Some(entra_id) = self.accept(matcher.match_user(&email), &taken, "user", &email)
            else {
                continue;
            };
            let link = Link {
                ak_id: pk,
                entra_id: entra_id.clone(),
                attributes: listed_attributes(entra_by_id[&entra_id]),
                origin: LinkOrigin::Discovered,
                state: LinkState::Active,
            };
            match self.link(ObjectRef::User(pk), link, &email).await? {
                Linked::New(link) => {
                    tracing::info!(user = %pk, entra_id = %entra_id, "discovery linked an existing Entra user");
                    taken.insert(entra_id);
                    user_links.push(link_ref(&link));
                }
                Linked::Existing(link) => user_links.push(link),
                Linked::Not => {}
            }
        }

        // Groups.
        let mut group_links = store.link_refs_of::<AkGroupPk>(provider).await?;
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
            match self
                .link(ObjectRef::Group(group.pk), link, &group.name)
                .await?
            {
                Linked::New(link) => {
                    tracing::info!(group = %group.pk.0, entra_id = %entra_id, "discovery linked an existing Entra group");
                    taken.insert(entra_id);
                    new_group_links.push(link);
                }
                Linked::Existing(link) => group_links.push(link),
                Linked::Not => {}
            }
        }

        // The existing members of newly linked groups that are linked users
        // count as written, so the worker diffs against what Entra has.
        for link in &new_group_links {
            match record_existing_members(store, graph, provider, link.ak_id, &link.entra_id).await
            {
                Ok(_) => {}
                // A worker re-created the group meanwhile; its link is not ours to fill.
                Err(RecordMembersError::Relinked { .. }) => {}
                Err(RecordMembersError::Graph { source, .. }) => {
                    return Err(DiscoveryError::Graph(source));
                }
                Err(RecordMembersError::Store { source, .. }) => {
                    return Err(DiscoveryError::Store(source));
                }
            }
        }
        group_links.extend(new_group_links.iter().map(link_ref));

        Ok(Discovered {
            groups: ak_groups.iter().map(|g| g.pk).collect(),
            user_links,
            group_links,
            users,
            scope,
            ak_groups,
            entra_users,
            entra_groups,
            listed_at,
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

    /// Links a discovered match under its object's lock, the one a worker
    /// writes the object under, and only where the object has no link yet: a
    /// link a worker made since discovery read the links wins.
    async fn link<K: LinkKey>(
        &self,
        object: ObjectRef,
        link: Link<K>,
        key: &str,
    ) -> Result<Linked<K>, StoreError> {
        let provider = &self.provider.name;
        let Some(lock) = self
            .store
            .lock_object(provider, &object.lock_name(), LINK_LOCK_TIMEOUT)
            .await?
        else {
            tracing::warn!(%object, key, "discovery: a worker holds the object; not linked (its task decides)");
            return Ok(Linked::Not);
        };
        let linked = match self.store.insert_link(provider, &link).await {
            Ok(NewLink::Inserted) => Ok(Linked::New(link)),
            Ok(NewLink::AlreadyLinked) => {
                tracing::info!(%object, key, "discovery: linked meanwhile; that link stays");
                self.store
                    .link_refs(provider, &[link.ak_id])
                    .await
                    .map(|refs| {
                        refs.into_iter()
                            .next()
                            .map_or(Linked::Not, Linked::Existing)
                    })
            }
            Ok(NewLink::Taken(taken)) => {
                tracing::warn!(%object, key, error = %taken, "discovery: not linked");
                Ok(Linked::Not)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = lock.release().await {
            tracing::warn!(error = %e, "cannot release an object lock; its connection was closed instead");
        }
        linked
    }
}

/// What became of a discovered match.
enum Linked<K> {
    /// Discovery linked it.
    New(Link<K>),
    /// The object was linked meanwhile; its link.
    Existing(LinkRef<K>),
    /// Not linked: the Entra object is taken, or a worker holds the object.
    Not,
}

/// The reference to a link discovery just made.
fn link_ref<K: Copy>(link: &Link<K>) -> LinkRef<K> {
    LinkRef {
        ak_id: link.ak_id,
        entra_id: link.entra_id.clone(),
        state: link.state,
        created_at: SystemTime::now(),
    }
}
