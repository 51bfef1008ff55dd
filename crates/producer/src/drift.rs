//! The full sync's comparison: what authentik wants, mapped with the same
//! core code the workers use, against what Entra holds (DESIGN invariant 4).
//! Only objects that differ, are not linked yet, or are missing from the
//! listing get a task; what the listing observed is stored per link when it
//! is news, so the worker diffs against it ([`entra_sync_core::drift`]).
//! Memberships are compared at their phase, after users and groups were
//! written, against each managed group's actual members.

use crate::discovery::DiscoveryError;
use entra_sync_authentik::{AuthentikClient, UserQuery};
use entra_sync_core::authentik::{AkGroup, AkUser};
use entra_sync_core::diff;
use entra_sync_core::drift::{
    GROUP_OBSERVED, Linked, Observed, USER_OBSERVED, judge, observed_body,
};
use entra_sync_core::entra::{EntraGroup, EntraUser, listed_attributes};
use entra_sync_core::ids::{AkGroupPk, AkUserPk, EntraObjectId};
use entra_sync_core::mapping::defaults::add_user_immutable_id;
use entra_sync_core::mapping::{
    Connection, MapFailure, Mapped, Mapper, MappingInput, ProviderInfo, Subject,
};
use entra_sync_core::reconcile::{Desired, Kind};
use entra_sync_core::scope::Scope;
use entra_sync_provider::Provider;
use entra_sync_store::link_refs::LinkRef;
use entra_sync_store::links::{Link, LinkKey, LinkState};
use entra_sync_store::{Store, StoreError};
use futures_util::TryStreamExt;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::SystemTime;

/// Groups, and users gone from authentik, are compared this many at a time
/// (users present, a page of authentik's at a time): their links and
/// observations are read, and the news stored, per chunk, so the links of a
/// large directory are never all in memory.
const COMPARE_CHUNK: usize = 1000;

/// The comparison of one run.
pub(crate) struct Comparison<'a> {
    pub(crate) store: &'a Store,
    pub(crate) authentik: &'a AuthentikClient,
    /// When discovery's listings began: the time of their observations.
    pub(crate) listed_at: SystemTime,
    pub(crate) provider: &'a Provider,
    pub(crate) mapper: Mapper,
    pub(crate) info: ProviderInfo,
}

/// What the mappings want of an object; `None` when they fail, which the
/// object's task reports.
fn desired(mapped: Result<Mapped, MapFailure>) -> Option<Desired> {
    match mapped {
        Ok(Mapped::Body(body)) => Some(Desired::Present(body)),
        Ok(Mapped::Skip(by)) => Some(Desired::Skipped(by)),
        Err(_) => None,
    }
}

fn connection<K>(link: &Link<K>) -> Connection<'_> {
    Connection {
        entra_id: &link.entra_id,
        attributes: &link.attributes,
    }
}

impl Comparison<'_> {
    /// The users that need a task, by authentik pk, against Entra's listing
    /// and the user links discovery left (both dropped once compared).
    /// authentik's users are read again and compared a page at a time, so a
    /// large directory's users are never all in memory; the linked users not
    /// among them are gone.
    pub(crate) async fn users(
        &self,
        entra_users: Vec<EntraUser>,
        user_links: Vec<LinkRef<AkUserPk>>,
        scope: &Scope,
    ) -> Result<BTreeSet<String>, DiscoveryError> {
        let listed: HashMap<&EntraObjectId, _> = entra_users.iter().map(|u| (&u.id, u)).collect();
        let listed = |id: &EntraObjectId| listed.get(id).map(|u| listed_attributes(*u));
        let mut tasks = BTreeSet::new();
        let mut seen = HashSet::new();
        let mut pages = std::pin::pin!(self.authentik.users(&UserQuery::default()));
        while let Some(page) = pages.try_next().await.map_err(DiscoveryError::Authentik)? {
            let page: BTreeMap<AkUserPk, AkUser> = page.into_iter().map(|u| (u.pk, u)).collect();
            seen.extend(page.keys().copied());
            let keys: Vec<AkUserPk> = page.keys().copied().collect();
            let wanted = |pk: &AkUserPk, link: Option<&Link<AkUserPk>>| {
                self.user_desired(&page[pk], link, scope)
            };
            self.compare(Kind::User, &keys, wanted, listed, &mut tasks)
                .await?;
        }
        let gone: Vec<AkUserPk> = user_links
            .iter()
            .map(|l| l.ak_id)
            .filter(|pk| !seen.contains(pk))
            .collect();
        for chunk in gone.chunks(COMPARE_CHUNK) {
            let wanted = |_: &AkUserPk, _: Option<&Link<AkUserPk>>| Some(Desired::Deleted);
            self.compare(Kind::User, chunk, wanted, listed, &mut tasks)
                .await?;
        }
        Ok(tasks)
    }

    /// What the mappings want of a present user.
    fn user_desired(
        &self,
        user: &AkUser,
        link: Option<&Link<AkUserPk>>,
        scope: &Scope,
    ) -> Option<Desired> {
        if !scope.includes_user(user) {
            return Some(Desired::OutOfScope);
        }
        let input = MappingInput {
            subject: Subject::User(user),
            provider: &self.info,
            connection: link.map(connection),
        };
        let mut desired = desired(self.mapper.map(&input))?;
        if let Desired::Present(body) = &mut desired {
            add_user_immutable_id(body, user);
        }
        Some(desired)
    }

    /// The groups that need a task, by authentik pk, against Entra's listing
    /// and the group links discovery left (both dropped once compared).
    pub(crate) async fn groups(
        &self,
        entra_groups: Vec<EntraGroup>,
        ak_groups: &[AkGroup],
        group_links: Vec<LinkRef<AkGroupPk>>,
    ) -> Result<BTreeSet<String>, StoreError> {
        let listed: HashMap<&EntraObjectId, _> = entra_groups.iter().map(|g| (&g.id, g)).collect();
        let listed = |id: &EntraObjectId| listed.get(id).map(|g| listed_attributes(*g));
        let groups: HashMap<AkGroupPk, _> = ak_groups.iter().map(|g| (g.pk, g)).collect();
        let linked = group_links.iter().map(|l| &l.ak_id);
        let pks: BTreeSet<AkGroupPk> = groups.keys().chain(linked).copied().collect();
        let pks: Vec<AkGroupPk> = pks.into_iter().collect();
        let wanted = |pk: &AkGroupPk, link: Option<&Link<AkGroupPk>>| {
            let Some(group) = groups.get(pk) else {
                return Some(Desired::Deleted);
            };
            let input = MappingInput {
                subject: Subject::Group(group),
                provider: &self.info,
                connection: link.map(connection),
            };
            desired(self.mapper.map(&input))
        };
        let mut tasks = BTreeSet::new();
        for chunk in pks.chunks(COMPARE_CHUNK) {
            self.compare(Kind::Group, chunk, wanted, listed, &mut tasks)
                .await?;
        }
        Ok(tasks)
    }

    /// Judges the objects `keys` of a kind (their links and observations read
    /// in one query), stores the news, and adds those needing a task to `tasks`.
    async fn compare<K: LinkKey + Ord + ToString>(
        &self,
        kind: Kind,
        keys: &[K],
        wanted: impl Fn(&K, Option<&Link<K>>) -> Option<Desired>,
        listed: impl Fn(&EntraObjectId) -> Option<serde_json::Map<String, serde_json::Value>>,
        tasks: &mut BTreeSet<String>,
    ) -> Result<(), StoreError> {
        let name = &self.provider.name;
        let (observed_properties, on_delete) = match kind {
            Kind::User => (USER_OBSERVED, self.provider.deletions.users),
            Kind::Group => (GROUP_OBSERVED, self.provider.deletions.groups),
        };
        let mut links = self.store.links_observed(name, keys).await?;
        let mut news = Vec::new();
        for key in keys {
            let (link, stored) = links.remove(key).unzip();
            let Some(desired) = wanted(key, link.as_ref()) else {
                tasks.insert(key.to_string());
                continue;
            };
            let linked = link.as_ref().map(|l| Linked {
                entra_id: &l.entra_id,
                written: &l.attributes,
                suspended: l.state == LinkState::Suspended,
                stored: stored.as_ref().and_then(Option::as_ref),
            });
            let observed = match link.as_ref().and_then(|l| listed(&l.entra_id)) {
                Some(body) => Observed::Listed(observed_body(&body, observed_properties)),
                None => Observed::Missing,
            };
            let verdict = judge(kind, &desired, linked, observed, on_delete);
            if verdict.task {
                tasks.insert(key.to_string());
            }
            if let (Some(record), Some(_)) = (verdict.record, &link) {
                news.push((*key, record));
            }
        }
        self.store.observe(name, self.listed_at, &news).await
    }

    /// The managed groups whose actual Entra members differ from what
    /// authentik wants, read after the users and groups phases: each linked
    /// group's members are listed (`$select=id`, paged) one group at a time.
    pub(crate) async fn memberships(
        &self,
        ak_groups: &[AkGroup],
    ) -> Result<BTreeSet<String>, DiscoveryError> {
        let name = &self.provider.name;
        let users = self.store.link_refs_of::<AkUserPk>(name).await?;
        let linked: BTreeSet<EntraObjectId> = users.iter().map(|l| l.entra_id.clone()).collect();
        let active: HashMap<AkUserPk, &EntraObjectId> = users
            .iter()
            .filter(|l| l.state == LinkState::Active)
            .map(|l| (l.ak_id, &l.entra_id))
            .collect();
        let groups: HashMap<AkGroupPk, EntraObjectId> = self
            .store
            .link_refs_of::<AkGroupPk>(name)
            .await?
            .into_iter()
            .map(|l| (l.ak_id, l.entra_id))
            .collect();
        let graph = self.provider.graph.bulk();
        let mut tasks = BTreeSet::new();
        let mut sorted: Vec<_> = ak_groups.iter().collect();
        sorted.sort_by_key(|g| g.pk.0);
        for group in sorted {
            let Some(entra_group) = groups.get(&group.pk) else {
                continue;
            };
            let desired: BTreeSet<EntraObjectId> = group
                .users
                .iter()
                .filter_map(|pk| active.get(pk).map(|id| (*id).clone()))
                .collect();
            let actual = match graph.list_members(entra_group).collect_all().await {
                Ok(members) => members.into_iter().map(|m| m.id).collect(),
                // Gone meanwhile: the group's task decides.
                Err(f) if f.class == entra_sync_core::failure::FailureClass::StaleLink => {
                    tasks.insert(group.pk.0.hyphenated().to_string());
                    continue;
                }
                Err(f) => return Err(DiscoveryError::graph(f)),
            };
            let changes = diff::member_changes(
                &desired,
                &actual,
                &linked,
                self.provider.remove_unmanaged_members,
            );
            if !changes.is_empty() {
                tasks.insert(group.pk.0.hyphenated().to_string());
            }
        }
        Ok(tasks)
    }
}
