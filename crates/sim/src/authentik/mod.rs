//! The authentik simulator.
//!
//! Speaks the parts of authentik's REST API that entra-sync reads, as one of
//! the releases 2024.2 … 2026.8 answers them ([`Release`], default 2026.8,
//! whose shapes are checked in tests with the official `authentik-client`
//! 2026.8.5 models):
//! - `GET /api/v3/core/users/`, `/core/users/{pk}/`, `/core/groups/`,
//!   `/core/groups/{uuid}/`, `/events/events/`, `/admin/version/`, and
//!   `POST /core/groups/{uuid}/add_user/` and `…/remove_user/`, with the
//!   pagination envelope, each release's fields, filters (unknown ones
//!   silently ignored), orderings and page-size rules, and token auth;
//! - authentik's clock, which may be set off this machine's
//!   ([`AuthentikSim::set_clock_offset`]; responses carry it in `Date`), and
//!   events that commit late ([`AuthentikSim::hold_next_events`]);
//! - `model_created` / `model_updated` / `model_deleted` events for evented
//!   changes, as authentik records them for changes made in web requests
//!   (membership changes: `model_updated` on the side whose manager was used,
//!   e.g. only the group for `POST /core/groups/{pk}/add_user/`), with
//!   a configurable retention; silent changes record nothing, like LDAP imports;
//! - notification webhooks (authentik's default body) for evented changes.
//!
//! Tests drive it through [`AuthentikSim`]'s methods; the demo and CLI
//! through the `/_sim/...` HTTP routes ([`control`]).

mod api;
pub mod control;
pub mod generator;
mod release;
mod state;
mod webhook;

pub use generator::{OrgSpec, OrgSummary};
pub use release::Release;
pub use state::{Mode, SimEvent, SimGroup, SimUser, UserType};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use state::State;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use uuid::Uuid;

/// Where the simulator sends notification webhooks.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    /// The URL, e.g. `http://127.0.0.1:8080/hooks/authentik`.
    pub url: String,
    /// Sent as `Authorization: Bearer <secret>` (authentik's `webhook_mapping_headers`).
    pub secret: String,
}

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The API token clients must send as `Authorization: Bearer …`.
    pub token: String,
    /// How long events are kept (authentik's `event_retention`, default 365 days).
    pub event_retention: Duration,
    /// Where to send webhooks for evented changes, if anywhere.
    pub webhook: Option<WebhookTarget>,
    /// The release imitated.
    pub release: Release,
    /// Whether the instance has an enterprise licence (membership diffs from 2025.2).
    pub licensed: bool,
}

impl SimConfig {
    /// A 2026.8 simulator accepting `token`, unlicensed, keeping events a
    /// year, sending no webhooks.
    pub fn new(token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            event_retention: Duration::from_secs(365 * 24 * 3600),
            webhook: None,
            release: Release::default(),
            licensed: false,
        }
    }

    /// The same, imitating `release`.
    pub fn with_release(mut self, release: Release) -> Self {
        self.release = release;
        self
    }
}

/// A new user.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewUser {
    /// Login name.
    pub username: String,
    /// Full name.
    #[serde(default)]
    pub name: String,
    /// E-mail.
    #[serde(default)]
    pub email: String,
    /// Whether the user may log in (default true).
    #[serde(default = "yes")]
    pub is_active: bool,
    /// Type (default internal).
    #[serde(default, rename = "type")]
    pub user_type: UserType,
    /// Directory path (default `users`).
    #[serde(default)]
    pub path: Option<String>,
    /// Attributes.
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

fn yes() -> bool {
    true
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserPatch {
    /// New login name.
    #[serde(default)]
    pub username: Option<String>,
    /// New full name.
    #[serde(default)]
    pub name: Option<String>,
    /// New e-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Activate or deactivate.
    #[serde(default)]
    pub is_active: Option<bool>,
    /// New type.
    #[serde(default, rename = "type")]
    pub user_type: Option<UserType>,
    /// New attributes (replacing the old ones).
    #[serde(default)]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A new group.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NewGroup {
    /// Name.
    pub name: String,
    /// Parent groups.
    #[serde(default)]
    pub parents: Vec<Uuid>,
    /// Whether members are superusers.
    #[serde(default)]
    pub is_superuser: bool,
    /// Attributes.
    #[serde(default)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Initial members (authentik's `users` on `POST /core/groups/`).
    #[serde(default)]
    pub users: Vec<i64>,
}

/// Changes to a group.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GroupPatch {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New parents.
    #[serde(default)]
    pub parents: Option<Vec<Uuid>>,
    /// New attributes.
    #[serde(default)]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Counters, for tests and the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Users.
    pub users: usize,
    /// Groups.
    pub groups: usize,
    /// Events still retained.
    pub events: usize,
    /// Webhooks delivered with a 2xx answer.
    pub webhooks_delivered: u64,
    /// Webhooks that failed (network or non-2xx).
    pub webhooks_failed: u64,
    /// API requests served.
    pub api_requests: u64,
}

pub(crate) struct Shared {
    state: RwLock<State>,
    pub(crate) token: String,
    webhook: Option<webhook::Sender>,
    pub(crate) api_requests: AtomicU64,
    fail_next: AtomicU32,
    fail_status: AtomicU32,
}

/// A handle on a simulator: cheap to clone, shared with its HTTP server.
#[derive(Clone)]
pub struct AuthentikSim {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for AuthentikSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthentikSim")
            .field("stats", &self.stats())
            .finish()
    }
}

impl AuthentikSim {
    /// A simulator with no data. Must be made inside a Tokio runtime if it sends webhooks.
    pub fn new(config: SimConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: RwLock::new(State::new(
                    config.event_retention,
                    config.release,
                    config.licensed,
                )),
                token: config.token,
                webhook: config.webhook.map(webhook::Sender::spawn),
                api_requests: AtomicU64::new(0),
                fail_next: AtomicU32::new(0),
                fail_status: AtomicU32::new(503),
            }),
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State> {
        self.shared.state.read().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.shared.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The HTTP API and control routes.
    pub fn router(&self) -> axum::Router {
        api::router(self.clone()).merge(control::router(self.clone()))
    }

    fn emit(&self, events: Vec<SimEvent>) {
        if let Some(w) = &self.shared.webhook {
            for e in events {
                w.send(e);
            }
        }
    }

    fn mutate<T>(&self, mode: Mode, f: impl FnOnce(&mut State, &mut Vec<SimEvent>) -> T) -> T {
        let mut events = Vec::new();
        let out = {
            let mut state = self.write();
            let out = f(&mut state, &mut events);
            if std::mem::take(&mut state.hold_next) {
                state.hold_recorded(events.len());
            }
            if mode == Mode::Silent {
                // Silent changes record nothing: drop what the closure recorded.
                state.forget_recorded(events.len());
                events.clear();
            }
            out
        };
        self.emit(events);
        out
    }

    /// Creates a user; returns its pk.
    pub fn create_user(&self, user: NewUser, mode: Mode) -> i64 {
        self.mutate(mode, |s, ev| {
            let pk = s.alloc_user_pk();
            let now = s.now();
            s.users.insert(
                pk,
                SimUser {
                    pk,
                    uuid: Uuid::new_v4(),
                    username: user.username,
                    name: user.name,
                    email: user.email,
                    is_active: user.is_active,
                    user_type: user.user_type,
                    path: user.path.unwrap_or_else(|| "users".into()),
                    attributes: user.attributes,
                    date_joined: now,
                    last_updated: now,
                    groups: Default::default(),
                },
            );
            ev.extend(s.user_event("model_created", pk));
            pk
        })
    }

    /// Changes a user (bumping `last_updated` in both modes); false if it does not exist.
    pub fn update_user(&self, pk: i64, patch: UserPatch, mode: Mode) -> bool {
        self.mutate(mode, |s, ev| {
            let now = s.now();
            let Some(u) = s.users.get_mut(&pk) else {
                return false;
            };
            if let Some(v) = patch.username {
                u.username = v;
            }
            if let Some(v) = patch.name {
                u.name = v;
            }
            if let Some(v) = patch.email {
                u.email = v;
            }
            if let Some(v) = patch.is_active {
                u.is_active = v;
            }
            if let Some(v) = patch.user_type {
                u.user_type = v;
            }
            if let Some(v) = patch.attributes {
                u.attributes = v;
            }
            u.last_updated = now;
            ev.extend(s.user_event("model_updated", pk));
            true
        })
    }

    /// Deletes a user (and its memberships); false if it does not exist.
    pub fn delete_user(&self, pk: i64, mode: Mode) -> bool {
        self.mutate(mode, |s, ev| {
            ev.extend(s.user_event("model_deleted", pk));
            let Some(u) = s.users.remove(&pk) else {
                return false;
            };
            for g in u.groups {
                if let Some(g) = s.groups.get_mut(&g) {
                    g.members.remove(&pk);
                }
            }
            true
        })
    }

    /// Creates a group with its initial members; returns its pk. As in
    /// authentik, the members are set from the group's side after it is saved:
    /// `model_created`, then one `model_updated` on the group (none on the users).
    pub fn create_group(&self, group: NewGroup, mode: Mode) -> Uuid {
        self.mutate(mode, |s, ev| {
            let pk = Uuid::new_v4();
            let num_pk = s.alloc_group_num();
            s.groups.insert(
                pk,
                SimGroup {
                    pk,
                    num_pk,
                    name: group.name,
                    is_superuser: group.is_superuser,
                    parents: group.parents,
                    attributes: group.attributes,
                    members: Default::default(),
                },
            );
            ev.extend(s.group_event("model_created", pk));
            let mut added = false;
            for user in group.users {
                added |= s.link(pk, user);
            }
            if added {
                ev.extend(s.group_event("model_updated", pk));
            }
            pk
        })
    }

    /// Changes a group; false if it does not exist.
    pub fn update_group(&self, pk: Uuid, patch: GroupPatch, mode: Mode) -> bool {
        self.mutate(mode, |s, ev| {
            let Some(g) = s.groups.get_mut(&pk) else {
                return false;
            };
            if let Some(v) = patch.name {
                g.name = v;
            }
            if let Some(v) = patch.parents {
                g.parents = v;
            }
            if let Some(v) = patch.attributes {
                g.attributes = v;
            }
            ev.extend(s.group_event("model_updated", pk));
            true
        })
    }

    /// Deletes a group (its memberships go too); false if it does not exist.
    pub fn delete_group(&self, pk: Uuid, mode: Mode) -> bool {
        self.mutate(mode, |s, ev| {
            ev.extend(s.group_event("model_deleted", pk));
            let Some(g) = s.groups.remove(&pk) else {
                return false;
            };
            for u in g.members {
                if let Some(u) = s.users.get_mut(&u) {
                    u.groups.remove(&pk);
                }
            }
            for other in s.groups.values_mut() {
                other.parents.retain(|p| *p != pk);
            }
            true
        })
    }

    /// Adds a member from the group's side, as the admin UI does
    /// (`POST /core/groups/{pk}/add_user/`, or `PATCH` of the group's `users`):
    /// authentik's `m2m_changed` handler records `model_updated` on the group
    /// only, whose manager was used (`authentik-versions.md` §3), without a
    /// diff (an unlicensed instance). False if either is missing or it
    /// already was one.
    pub fn add_member(&self, group: Uuid, user: i64, mode: Mode) -> bool {
        self.mutate(mode, |s, ev| {
            if !s.link(group, user) {
                return false;
            }
            ev.extend(s.group_membership_event(group, "add", user));
            true
        })
    }

    /// Removes a member from the group's side (`…/remove_user/`); events as
    /// for [`AuthentikSim::add_member`].
    pub fn remove_member(&self, group: Uuid, user: i64, mode: Mode) -> bool {
        self.mutate(mode, |s, ev| {
            if !s.unlink(group, user) {
                return false;
            }
            ev.extend(s.group_membership_event(group, "remove", user));
            true
        })
    }

    /// Adds (`member`) or removes a membership from the user's side
    /// (`PATCH /core/users/{pk}/` with `groups`): `model_updated` on the user
    /// only, none on the group. False if either is missing or nothing changed.
    pub fn set_membership_from_user(
        &self,
        user: i64,
        group: Uuid,
        member: bool,
        mode: Mode,
    ) -> bool {
        self.mutate(mode, |s, ev| {
            let changed = if member {
                s.link(group, user)
            } else {
                s.unlink(group, user)
            };
            if changed {
                ev.extend(s.user_event("model_updated", user));
            }
            changed
        })
    }

    /// Builds a generated organisation silently (no events), as an initial import would.
    pub fn generate(&self, spec: &OrgSpec) -> OrgSummary {
        let mut state = self.write();
        generator::generate(&mut state, spec)
    }

    /// Freezes the clock at `at` (every change then shares that timestamp), or
    /// lets it run again with `None`. Time never goes backwards.
    pub fn freeze_clock(&self, at: Option<DateTime<Utc>>) {
        self.write().freeze(at);
    }

    /// The release imitated.
    pub fn release(&self) -> Release {
        self.read().release
    }

    /// Sets authentik's clock `offset` from this machine's (negative: behind).
    /// Timestamps, expiry and the `Date` header follow it.
    pub fn set_clock_offset(&self, offset: chrono::Duration) {
        self.write().set_clock_offset(offset);
    }

    /// authentik's current time.
    pub fn clock(&self) -> DateTime<Utc> {
        self.read().clock()
    }

    /// The next change's events keep their time but stay invisible until
    /// [`AuthentikSim::commit_held`]: a transaction that commits late, behind
    /// newer ones.
    pub fn hold_next_events(&self) {
        self.write().hold_next();
    }

    /// Makes the held events visible (and sends their webhooks).
    pub fn commit_held(&self) {
        let held = self.write().commit_held();
        self.emit(held);
    }

    /// Makes the next `n` API requests fail with `status` (e.g. 503 or 429), for retry tests.
    pub fn fail_next_requests(&self, n: u32, status: u16) {
        self.shared
            .fail_status
            .store(u32::from(status), Ordering::SeqCst);
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }

    /// Takes one injected failure, if any is pending.
    pub(crate) fn take_failure(&self) -> Option<u16> {
        self.shared
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .ok()
            .map(|_| self.shared.fail_status.load(Ordering::SeqCst) as u16)
    }

    /// A snapshot of one user.
    pub fn user(&self, pk: i64) -> Option<SimUser> {
        self.read().users.get(&pk).cloned()
    }

    /// A snapshot of one group.
    pub fn group(&self, pk: Uuid) -> Option<SimGroup> {
        self.read().groups.get(&pk).cloned()
    }

    /// The retained events, oldest first.
    pub fn events(&self) -> Vec<SimEvent> {
        let mut s = self.write();
        s.expire_events();
        s.events.iter().cloned().collect()
    }

    /// Counters.
    pub fn stats(&self) -> SimStats {
        let (delivered, failed) = self
            .shared
            .webhook
            .as_ref()
            .map(|w| w.counts())
            .unwrap_or_default();
        let s = self.read();
        SimStats {
            users: s.users.len(),
            groups: s.groups.len(),
            events: s.events.len(),
            webhooks_delivered: delivered,
            webhooks_failed: failed,
            api_requests: self.shared.api_requests.load(Ordering::Relaxed),
        }
    }
}

/// A simulator serving on a local port; stops when dropped.
pub struct RunningSim {
    /// The handle, for mutations and inspection.
    pub sim: AuthentikSim,
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSim {
    /// The base URL, e.g. `http://127.0.0.1:41234/`.
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a simulator on `127.0.0.1:0` (a free port), in process.
pub async fn start(config: SimConfig) -> std::io::Result<RunningSim> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let sim = AuthentikSim::new(config);
    let app = sim.router();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(RunningSim { sim, addr, task })
}

/// Serves a new simulator on `listener` until the process ends (for a CLI command).
pub async fn serve(listener: TcpListener, config: SimConfig) -> std::io::Result<()> {
    AuthentikSim::new(config).serve_on(listener).await
}

impl AuthentikSim {
    /// Serves this simulator (with whatever it holds) on `listener` until the process ends.
    pub async fn serve_on(&self, listener: TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }
}
