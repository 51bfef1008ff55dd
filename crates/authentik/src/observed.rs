//! What the client learnt about the authentik it talks to: its release, and
//! the filters it was seen to ignore.
//!
//! authentik answers an unknown filter with the whole, unfiltered list and
//! HTTP 200. So the client never trusts a filter it did not see applied:
//! every answer is checked, an ignored filter is logged once (and kept for
//! `status`), and from then on the client and its callers fall back
//! ([`Filter::fallback`]).

use crate::release::{Capabilities, Feature};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A filter (or ordering) entra-sync relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// `GET /core/users/?last_updated__gt=`.
    UsersLastUpdatedGt,
    /// `GET /core/users/?include_groups=false`.
    UsersIncludeGroups,
    /// `GET /core/groups/?include_users=false`.
    GroupsIncludeUsers,
    /// `GET /events/events/?actions=` (or `action=`).
    EventsActions,
    /// `GET /events/events/?context_model_app=`.
    EventsModelApp,
    /// `GET /events/events/?ordering=-created`.
    EventsOrdering,
}

impl Filter {
    /// The request and parameter, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Self::UsersLastUpdatedGt => "users: last_updated__gt",
            Self::UsersIncludeGroups => "users: include_groups",
            Self::GroupsIncludeUsers => "groups: include_users",
            Self::EventsActions => "events: actions",
            Self::EventsModelApp => "events: context_model_app",
            Self::EventsOrdering => "events: ordering=-created",
        }
    }

    /// What entra-sync does instead.
    pub fn fallback(self) -> &'static str {
        match self {
            Self::UsersLastUpdatedGt => {
                "the watermark is off; the periodic silent scan finds silent user changes"
            }
            Self::UsersIncludeGroups | Self::GroupsIncludeUsers => {
                "the expanded objects are received and not used"
            }
            Self::EventsActions => "events are filtered by action on entra-sync's side",
            Self::EventsModelApp => "events are filtered by model app on entra-sync's side",
            Self::EventsOrdering => "the events follower reads the whole feed every poll",
        }
    }

    /// The feature this filter belongs to, if the capability table names one.
    fn feature(self) -> Option<Feature> {
        match self {
            Self::UsersLastUpdatedGt => Some(Feature::LastUpdated),
            Self::UsersIncludeGroups | Self::GroupsIncludeUsers => Some(Feature::IncludeObjects),
            Self::EventsActions => Some(Feature::EventActions),
            Self::EventsModelApp | Self::EventsOrdering => None,
        }
    }
}

/// A filter authentik was seen to ignore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgnoredFilter {
    /// The filter.
    pub filter: Filter,
    /// When it was first seen ignored.
    pub seen_at: DateTime<Utc>,
}

#[derive(Debug)]
struct Inner {
    capabilities: Capabilities,
    ignored: BTreeMap<Filter, DateTime<Utc>>,
}

/// The client's knowledge of its server, shared by its clones.
#[derive(Debug, Clone)]
pub(crate) struct Observed(Arc<Mutex<Inner>>);

impl Default for Observed {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Inner {
            capabilities: Capabilities::newest(),
            ignored: BTreeMap::new(),
        })))
    }
}

impl Observed {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn capabilities(&self) -> Capabilities {
        self.lock().capabilities.clone()
    }

    /// Records the release read; logs it when it changed.
    pub(crate) fn set_capabilities(&self, caps: Capabilities) {
        let mut inner = self.lock();
        if inner.capabilities == caps {
            return;
        }
        match &caps.warning {
            Some(warning) => {
                tracing::warn!(version = ?caps.version, behaves_as = %caps.behaves_as, %warning, "authentik release")
            }
            None => {
                tracing::info!(version = ?caps.version, behaves_as = %caps.behaves_as, "authentik release")
            }
        }
        inner.capabilities = caps;
    }

    /// Whether to rely on `feature`: the release has it and none of its
    /// filters was seen ignored.
    pub(crate) fn uses(&self, feature: Feature) -> bool {
        let inner = self.lock();
        inner.capabilities.has(feature)
            && !inner.ignored.keys().any(|f| f.feature() == Some(feature))
    }

    /// Whether `filter` was seen ignored.
    pub(crate) fn is_ignored(&self, filter: Filter) -> bool {
        self.lock().ignored.contains_key(&filter)
    }

    /// Records that authentik ignored `filter`; logs it the first time.
    pub(crate) fn ignored(&self, filter: Filter) {
        let mut inner = self.lock();
        if inner.ignored.contains_key(&filter) {
            return;
        }
        inner.ignored.insert(filter, Utc::now());
        tracing::warn!(
            filter = filter.describe(),
            fallback = filter.fallback(),
            version = ?inner.capabilities.version,
            "authentik ignored a filter; falling back"
        );
    }

    pub(crate) fn ignored_filters(&self) -> Vec<IgnoredFilter> {
        self.lock()
            .ignored
            .iter()
            .map(|(filter, seen_at)| IgnoredFilter {
                filter: *filter,
                seen_at: *seen_at,
            })
            .collect()
    }
}
