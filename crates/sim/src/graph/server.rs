//! HTTP surface of the Graph simulator: routing, auth, throttling, faults,
//! `$batch`, the token endpoint and the `/_sim` inspection endpoints.

use super::after_commit::{CommitFault, CommitFaults, LostAnswer};
use super::credentials;
use super::error::SimError;
use super::permissions::{Access, authorize};
use super::store::{Directory, Kind, QueryOptions, Reply};
use super::throttle::{Cost, Lane, ThrottleConfig};
use super::token::access_token;
use super::{FaultConfig, Seed, SimConfig};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post, put};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Inner requests per `$batch` (§2).
const MAX_BATCH: usize = 20;

/// How many requests of one (method, path class, status) were served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCount {
    /// HTTP method, e.g. `PATCH`.
    pub method: String,
    /// Path class, e.g. `users`, `users/{id}`, `groups/{id}/members/$ref`, `$batch`, `token`.
    pub path: String,
    /// Status answered; 0 for a dropped connection.
    pub status: u16,
    /// Number of requests.
    pub count: u64,
}

/// A snapshot of the request counters. Inner `$batch` requests are counted under
/// their own method and path class, besides the outer `POST $batch`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters(pub Vec<RequestCount>);

impl Counters {
    /// Requests with this method and path class, any status.
    pub fn get(&self, method: &str, path: &str) -> u64 {
        self.0
            .iter()
            .filter(|c| c.method == method && c.path == path)
            .map(|c| c.count)
            .sum()
    }

    /// Requests with this method, path class and status.
    pub fn with_status(&self, method: &str, path: &str, status: u16) -> u64 {
        self.0
            .iter()
            .filter(|c| c.method == method && c.path == path && c.status == status)
            .map(|c| c.count)
            .sum()
    }

    /// Requests answered with this status, any method and path.
    pub fn status(&self, status: u16) -> u64 {
        self.0
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.count)
            .sum()
    }

    /// Graph requests that could change state: POST, PATCH, PUT and DELETE outside `token`.
    pub fn mutating(&self) -> u64 {
        self.0
            .iter()
            .filter(|c| {
                matches!(c.method.as_str(), "POST" | "PATCH" | "PUT" | "DELETE")
                    && c.path != "token"
            })
            .map(|c| c.count)
            .sum()
    }

    /// Every request counted.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|c| c.count).sum()
    }
}

/// A Graph path, after `/v1.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Organization,
    Collection(Kind),
    Item(Kind, &'a str),
    Members(&'a str),
    MemberRef(&'a str),
    MemberItemRef(&'a str, &'a str),
    /// `groups(uniqueName='…')`, with the key as it appears in the path.
    GroupByUniqueName(&'a str),
    /// `/directory/deletedItems/microsoft.graph.user` (or `.group`).
    DeletedList(Kind),
    /// `/directory/deletedItems/{id}`.
    DeletedItem(&'a str),
    /// `/directory/deletedItems/{id}/restore`.
    Restore(&'a str),
    Batch,
    Unknown,
}

/// The key of a `groups(uniqueName='…')` segment (or of `(uniqueName='…')`
/// after `groups/`, as the group-upsert page writes it), quotes
/// percent-encoded or not.
fn unique_name_key(segment: &str) -> Option<&str> {
    let inner = segment
        .strip_prefix("groups")
        .unwrap_or(segment)
        .strip_prefix("(uniqueName=")?
        .strip_suffix(')')?;
    ["'", "%27"].iter().find_map(|q| {
        inner
            .strip_prefix(q)
            .and_then(|i| i.strip_suffix(q))
            .filter(|k| !k.is_empty())
    })
}

impl<'a> Route<'a> {
    fn parse(path: &'a str) -> Self {
        let mut segments = path.split('/').filter(|s| !s.is_empty());
        let parts: [Option<&str>; 6] = std::array::from_fn(|_| segments.next());
        let kind = |s: &str| match s {
            "users" => Some(Kind::Users),
            "groups" => Some(Kind::Groups),
            _ => None,
        };
        match parts {
            [Some("organization"), None, ..] => Route::Organization,
            [Some(g), None, ..] if g.starts_with("groups(") && unique_name_key(g).is_some() => {
                Route::GroupByUniqueName(unique_name_key(g).unwrap_or_default())
            }
            [Some("groups"), Some(g), None, ..] if unique_name_key(g).is_some() => {
                Route::GroupByUniqueName(unique_name_key(g).unwrap_or_default())
            }
            [
                Some("directory"),
                Some("deletedItems"),
                Some(item),
                None,
                ..,
            ] => match item {
                "microsoft.graph.user" => Route::DeletedList(Kind::Users),
                "microsoft.graph.group" => Route::DeletedList(Kind::Groups),
                id => Route::DeletedItem(id),
            },
            [
                Some("directory"),
                Some("deletedItems"),
                Some(id),
                Some("restore"),
                None,
                ..,
            ] => Route::Restore(id),
            [Some("$batch"), None, ..] => Route::Batch,
            [Some(k), None, ..] if kind(k).is_some() => {
                Route::Collection(kind(k).unwrap_or(Kind::Users))
            }
            [Some(k), Some(id), None, ..] if kind(k).is_some() => {
                Route::Item(kind(k).unwrap_or(Kind::Users), id)
            }
            [Some("groups"), Some(g), Some("members"), None, ..] => Route::Members(g),
            [
                Some("groups"),
                Some(g),
                Some("members"),
                Some("$ref"),
                None,
                ..,
            ] => Route::MemberRef(g),
            [
                Some("groups"),
                Some(g),
                Some("members"),
                Some(m),
                Some("$ref"),
                None,
            ] => Route::MemberItemRef(g, m),
            _ => Route::Unknown,
        }
    }

    fn class(self) -> &'static str {
        match self {
            Route::Organization => "organization",
            Route::Collection(Kind::Users) => "users",
            Route::Collection(Kind::Groups) => "groups",
            Route::Item(Kind::Users, _) => "users/{id}",
            Route::Item(Kind::Groups, _) => "groups/{id}",
            Route::Members(_) => "groups/{id}/members",
            Route::MemberRef(_) => "groups/{id}/members/$ref",
            Route::MemberItemRef(..) => "groups/{id}/members/{id}/$ref",
            Route::GroupByUniqueName(_) => "groups(uniqueName)",
            Route::DeletedList(_) => "directory/deletedItems/{type}",
            Route::DeletedItem(_) => "directory/deletedItems/{id}",
            Route::Restore(_) => "directory/deletedItems/{id}/restore",
            Route::Batch => "$batch",
            Route::Unknown => "unknown",
        }
    }

    /// The permissions the request needs (see [`Access`]); the organization is not checked.
    fn needs(self, method: &str, body: Option<&Value>, dir: &Directory) -> Vec<Access> {
        let has = |key: &str| body.and_then(|b| b.get(key)).is_some();
        let role_group = |g: &str| dir.role_assignable(&decode(g));
        let mut needs = Vec::new();
        match (method, self) {
            ("GET", Route::Collection(Kind::Users) | Route::Item(Kind::Users, _)) => {
                needs.push(Access::ReadUsers);
            }
            ("GET", Route::Collection(Kind::Groups) | Route::Item(Kind::Groups, _))
            | ("GET", Route::Members(_) | Route::GroupByUniqueName(_)) => {
                needs.push(Access::ReadGroups)
            }
            // group-upsert: Group.ReadWrite.All.
            ("PATCH", Route::GroupByUniqueName(_)) => needs.push(Access::WriteGroup),
            ("POST", Route::Collection(Kind::Users)) => needs.push(Access::CreateUser),
            ("PATCH" | "DELETE", Route::Item(Kind::Users, _)) => needs.push(Access::WriteUser),
            ("POST", Route::Collection(Kind::Groups)) => {
                needs.push(Access::CreateGroup);
                if body.and_then(|b| b.get("isAssignableToRole")) == Some(&Value::Bool(true)) {
                    needs.push(Access::RoleAssignableGroup);
                }
            }
            ("DELETE", Route::Item(Kind::Groups, _)) => needs.push(Access::WriteGroup),
            ("PATCH", Route::Item(Kind::Groups, g)) => {
                let fields = body.and_then(Value::as_object).map_or(0, |b| {
                    b.keys().filter(|k| *k != "members@odata.bind").count()
                });
                if fields > 0 {
                    needs.push(Access::WriteGroup);
                }
                if has("members@odata.bind") {
                    needs.push(Access::WriteMembers);
                    if role_group(g) {
                        needs.push(Access::RoleAssignableGroup);
                    }
                }
            }
            ("GET", Route::DeletedList(Kind::Users)) => needs.push(Access::ReadUsers),
            ("GET", Route::DeletedList(Kind::Groups)) => needs.push(Access::ReadGroups),
            ("GET", Route::DeletedItem(id)) => {
                needs.push(match dir.deleted_kind(&decode(id)) {
                    Some(Kind::Groups) => Access::ReadGroups,
                    _ => Access::ReadUsers,
                });
            }
            ("POST", Route::Restore(id)) | ("DELETE", Route::DeletedItem(id)) => {
                needs.push(match dir.deleted_kind(&decode(id)) {
                    Some(Kind::Groups) => Access::WriteGroup,
                    _ => Access::WriteUser,
                });
            }
            ("POST", Route::MemberRef(g)) | ("DELETE", Route::MemberItemRef(g, _)) => {
                needs.push(Access::WriteMembers);
                if role_group(g) {
                    needs.push(Access::RoleAssignableGroup);
                }
            }
            _ => {}
        }
        needs
    }

    /// RUs and writes (§1.2): GET users 2, members 3, other GETs 1; `$select` −1,
    /// `$top` below 20 −1, at least 1; writes 1 RU + 1 write, except a group
    /// PATCH binding members, charged [`ThrottleConfig::member_bind_writes`].
    fn cost(
        self,
        method: &str,
        q: &QueryOptions,
        body: Option<&Value>,
        throttle: &ThrottleConfig,
    ) -> Cost {
        if method != "GET" {
            let binds = match (method, self) {
                ("PATCH", Route::Item(Kind::Groups, _)) => body
                    .and_then(|b| b.get("members@odata.bind"))
                    .and_then(Value::as_array)
                    .map(Vec::len),
                _ => None,
            };
            let writes = binds.map_or(1, |n| throttle.member_bind_writes(n));
            return Cost { ru: 1, writes };
        }
        let base: u32 = match self {
            Route::Collection(Kind::Users) => 2,
            Route::Members(_) => 3,
            _ => 1,
        };
        let select = u32::from(q.select.is_some());
        let small_top = u32::from(q.top.is_some_and(|t| t < 20));
        Cost {
            ru: base.saturating_sub(select + small_top).max(1),
            writes: 0,
        }
    }
}

/// An answer before it becomes an HTTP response or an inner batch response.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
}

impl Answer {
    fn error(e: &SimError) -> Self {
        Self {
            status: e.status,
            headers: Vec::new(),
            body: Some(e.body(&uuid::Uuid::new_v4().to_string())),
        }
    }

    fn into_response(self) -> Response {
        let mut response = match &self.body {
            Some(body) => {
                let mut r = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r
            }
            None => Response::new(Body::empty()),
        };
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        for (name, value) in self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                response.headers_mut().insert(n, v);
            }
        }
        response
    }
}

/// A Graph request, relative to `/v1.0`.
struct GraphRequest<'a> {
    method: &'static str,
    path: &'a str,
    query: Option<&'a str>,
    body: Option<Value>,
    /// Whether `Prefer` holds `create-if-missing` (an upsert).
    create_if_missing: bool,
}

/// Whether a `Prefer` header value asks for an upsert.
fn prefers_create(prefer: Option<&str>) -> bool {
    prefer.is_some_and(|p| {
        p.split(',')
            .any(|v| v.trim().eq_ignore_ascii_case("create-if-missing"))
    })
}

/// Who sent a request: the app and the permissions its token carries.
#[derive(Clone)]
struct Caller {
    app: String,
    roles: BTreeSet<String>,
}

struct IssuedToken {
    caller: Caller,
    expires: Instant,
}

struct State_ {
    dir: Directory,
    tokens: HashMap<String, IssuedToken>,
    lanes: HashMap<String, Lane>,
    /// The permissions granted to each app, by lower-case client id.
    grants: HashMap<String, BTreeSet<String>>,
    /// The client secret of each app, by lower-case client id.
    secrets: HashMap<String, String>,
    /// Verified domains, the first being the default.
    domains: Vec<String>,
}

struct Faults {
    config: FaultConfig,
    rng: StdRng,
}

enum FaultAction {
    Drop,
    Status(u16),
}

/// The shared state of one simulator.
pub(crate) struct Sim {
    config: SimConfig,
    state: Mutex<State_>,
    counters: Mutex<HashMap<(&'static str, &'static str, u16), u64>>,
    faults: Mutex<Faults>,
    /// Answers to lose after commit.
    commit_faults: Mutex<CommitFaults>,
    /// Graph requests sent with `x-ms-throttle-priority: Low`.
    low_priority: AtomicU64,
    /// Writes charged against the write quota for admitted requests.
    writes_charged: AtomicU64,
    /// Resource units charged to requests Graph answered (not throttled).
    resource_units: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn method_name(method: &str) -> &'static str {
    match method.to_ascii_uppercase().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PATCH" => "PATCH",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        _ => "OTHER",
    }
}

impl Sim {
    pub fn new(config: SimConfig) -> Self {
        let dir = Directory::new(config.replication_delay);
        let faults = Faults {
            rng: StdRng::seed_from_u64(config.faults.seed),
            config: config.faults.clone(),
        };
        let grants = config
            .apps
            .iter()
            .map(|a| {
                let roles = a.roles.iter().cloned().collect();
                (a.client_id.to_ascii_lowercase(), roles)
            })
            .collect();
        let secrets = config
            .apps
            .iter()
            .map(|a| (a.client_id.to_ascii_lowercase(), a.client_secret.clone()))
            .collect();
        Self {
            state: Mutex::new(State_ {
                dir,
                tokens: HashMap::new(),
                lanes: HashMap::new(),
                grants,
                secrets,
                domains: config.domains.clone(),
            }),
            counters: Mutex::new(HashMap::new()),
            faults: Mutex::new(faults),
            commit_faults: Mutex::new(CommitFaults::default()),
            low_priority: AtomicU64::new(0),
            writes_charged: AtomicU64::new(0),
            resource_units: AtomicU64::new(0),
            config,
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    fn count(&self, method: &'static str, class: &'static str, status: u16) {
        *lock(&self.counters)
            .entry((method, class, status))
            .or_insert(0) += 1;
    }

    pub fn counters(&self) -> Counters {
        let mut all: Vec<RequestCount> = lock(&self.counters)
            .iter()
            .map(|((method, path, status), count)| RequestCount {
                method: (*method).into(),
                path: (*path).into(),
                status: *status,
                count: *count,
            })
            .collect();
        all.sort_by(|a, b| (&a.path, &a.method, a.status).cmp(&(&b.path, &b.method, b.status)));
        Counters(all)
    }

    pub fn seed(&self, seed: Seed) -> Result<(Vec<String>, Vec<String>), SimError> {
        let mut state = lock(&self.state);
        let mut ids = (Vec::new(), Vec::new());
        for (kind, objects, out) in [
            (Kind::Users, seed.users, &mut ids.0),
            (Kind::Groups, seed.groups, &mut ids.1),
        ] {
            for object in objects {
                let Value::Object(props) = object else {
                    return Err(SimError::bad_request(
                        "a seeded object must be a JSON object",
                    ));
                };
                out.push(state.dir.seed(kind, props)?);
            }
        }
        for m in seed.members {
            state.dir.seed_member(&m.group, &m.member)?;
        }
        Ok(ids)
    }

    pub fn state(&self) -> Value {
        lock(&self.state).dir.dump()
    }

    pub fn members(&self, group: &str) -> Vec<String> {
        let dump = self.state();
        dump["memberships"][group.to_ascii_lowercase()]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn set_faults(&self, config: FaultConfig) {
        *lock(&self.faults) = Faults {
            rng: StdRng::seed_from_u64(config.seed),
            config,
        };
    }

    pub fn fail_after_commit(&self, fault: CommitFault) {
        lock(&self.commit_faults).add(fault);
    }

    pub fn clear_commit_faults(&self) {
        lock(&self.commit_faults).clear();
    }

    pub fn low_priority_requests(&self) -> u64 {
        self.low_priority.load(Ordering::Relaxed)
    }

    pub fn writes_charged(&self) -> u64 {
        self.writes_charged.load(Ordering::Relaxed)
    }

    pub fn resource_units(&self) -> u64 {
        self.resource_units.load(Ordering::Relaxed)
    }

    pub fn revoke_tokens(&self) {
        lock(&self.state).tokens.clear();
    }

    pub fn verify_domain(&self, domain: &str) {
        let mut state = lock(&self.state);
        if !state.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
            state.domains.push(domain.to_owned());
        }
    }

    pub fn set_client_secret(&self, client_id: &str, secret: &str) {
        lock(&self.state)
            .secrets
            .insert(client_id.to_ascii_lowercase(), secret.to_owned());
    }

    pub fn set_app_roles(&self, client_id: &str, roles: BTreeSet<String>) {
        lock(&self.state)
            .grants
            .insert(client_id.to_ascii_lowercase(), roles);
    }

    pub fn refuse_writes(&self, id: &str) {
        lock(&self.state).dir.refuse_writes(id);
    }

    pub fn portal_update(&self, id: &str, changes: Map<String, Value>) -> Result<(), SimError> {
        lock(&self.state).dir.portal_update(id, changes)
    }

    pub fn portal_delete(&self, id: &str) -> Result<(), SimError> {
        lock(&self.state).dir.portal_delete(id)
    }

    pub fn portal_purge(&self, id: &str) -> Result<(), SimError> {
        lock(&self.state).dir.purge(id).map(|_| ())
    }

    pub fn deleted_items(&self) -> Vec<String> {
        lock(&self.state).dir.deleted_ids()
    }

    pub fn portal_remove_member(&self, group: &str, member: &str) -> Result<(), SimError> {
        lock(&self.state).dir.portal_remove_member(group, member)
    }

    fn roll_fault(&self) -> (Option<Duration>, Option<FaultAction>) {
        let mut f = lock(&self.faults);
        let Faults { config, rng } = &mut *f;
        let latency = (config.latency_max_ms > 0).then(|| {
            let max = config.latency_max_ms.max(config.latency_min_ms);
            Duration::from_millis(rng.random_range(config.latency_min_ms..=max))
        });
        if config.error_rate <= 0.0 && config.drop_rate <= 0.0 {
            return (latency, None);
        }
        let roll: f64 = rng.random();
        let action = if roll < config.error_rate {
            let statuses: &[u16] = if config.error_statuses.is_empty() {
                &[500, 503, 504]
            } else {
                &config.error_statuses
            };
            Some(FaultAction::Status(
                statuses[rng.random_range(0..statuses.len())],
            ))
        } else if roll < config.error_rate + config.drop_rate {
            Some(FaultAction::Drop)
        } else {
            None
        };
        (latency, action)
    }

    /// Issues a token for `POST /{tenant}/oauth2/v2.0/token`.
    fn issue_token(&self, tenant: &str, form: &HashMap<String, String>) -> Answer {
        let now = chrono::Utc::now();
        let fail = |status: u16, error: &str, code: u32, description: String| Answer {
            status,
            headers: Vec::new(),
            body: Some(json!({
                "error": error,
                "error_description": format!("AADSTS{code}: {description} Trace ID: {} Correlation ID: {} Timestamp: {}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), now.format("%Y-%m-%d %H:%M:%SZ")),
                "error_codes": [code],
                "timestamp": now.format("%Y-%m-%d %H:%M:%SZ").to_string(),
                "trace_id": uuid::Uuid::new_v4().to_string(),
                "correlation_id": uuid::Uuid::new_v4().to_string(),
            })),
        };
        let known_tenant = tenant.eq_ignore_ascii_case(&self.config.tenant_id)
            || self
                .config
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(tenant));
        if !known_tenant {
            return fail(
                400,
                "invalid_request",
                90002,
                format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            );
        }
        let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        if field("grant_type") != "client_credentials" {
            return fail(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.".into(),
            );
        }
        let client_id = field("client_id");
        let Some(app) = self
            .config
            .apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
        else {
            return fail(
                400,
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
                ),
            );
        };
        let secret = lock(&self.state)
            .secrets
            .get(&app.client_id.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default();
        let audience_ok = |aud: &str| {
            aud.trim_end_matches('/')
                .strip_suffix("/oauth2/v2.0/token")
                .and_then(|rest| rest.rsplit('/').next())
                .is_some_and(|t| t.eq_ignore_ascii_case(tenant))
        };
        let checked = credentials::check(
            app,
            &secret,
            &self.config.oidc_issuers,
            &|k| form.get(k).cloned(),
            &audience_ok,
            now.timestamp(),
        );
        if let Err(refusal) = checked {
            return fail(
                refusal.status,
                refusal.error,
                refusal.code,
                refusal.description,
            );
        }
        let scope = field("scope");
        if scope != "https://graph.microsoft.com/.default" {
            return fail(
                400,
                "invalid_scope",
                1002012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            );
        }
        let lifetime = self.config.token_lifetime;
        let mut state = lock(&self.state);
        let roles = state
            .grants
            .get(&app.client_id.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default();
        let token = access_token(app, &self.config.tenant_id, &roles, lifetime);
        state.tokens.insert(
            token.clone(),
            IssuedToken {
                caller: Caller {
                    app: app.client_id.clone(),
                    roles,
                },
                expires: Instant::now() + lifetime,
            },
        );
        Answer {
            status: 200,
            headers: Vec::new(),
            body: Some(json!({
                "token_type": "Bearer",
                "expires_in": lifetime.as_secs(),
                "ext_expires_in": lifetime.as_secs(),
                "access_token": token,
            })),
        }
    }

    /// The application a bearer token belongs to and the grants it carries,
    /// or 401 `InvalidAuthenticationToken`.
    fn authenticate(
        &self,
        state: &State_,
        authorization: Option<&str>,
        now: Instant,
    ) -> Result<Caller, SimError> {
        let invalid = |m: &str| SimError::new(401, "InvalidAuthenticationToken", m);
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid("Access token is empty."))?;
        let issued = state
            .tokens
            .get(token)
            .ok_or_else(|| invalid("Invalid JWT token. The token is not valid."))?;
        if now >= issued.expires {
            return Err(invalid("Access token has expired or is not yet valid."));
        }
        Ok(issued.caller.clone())
    }

    /// Serves one Graph request (the outer one, or a `$batch`).
    fn handle(
        &self,
        authorization: Option<&str>,
        request: GraphRequest<'_>,
        origin: &str,
    ) -> Answer {
        let now = Instant::now();
        let mut state = lock(&self.state);
        let caller = match self.authenticate(&state, authorization, now) {
            Ok(caller) => caller,
            Err(e) => return Answer::error(&e),
        };
        if Route::parse(request.path) == Route::Batch {
            if request.method != "POST" {
                return Answer::error(&SimError::new(
                    405,
                    "Request_BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                ));
            }
            return self.batch(&mut state, &caller, request.body, origin, now);
        }
        self.one(&mut state, &caller, request, origin, now)
    }

    /// One request after authentication: throttling, permissions, then the directory.
    fn one(
        &self,
        state: &mut State_,
        caller: &Caller,
        request: GraphRequest<'_>,
        origin: &str,
        now: Instant,
    ) -> Answer {
        let GraphRequest {
            method,
            path,
            query,
            body,
            create_if_missing,
        } = request;
        let route = Route::parse(path);
        let q = match QueryOptions::parse(query) {
            Ok(q) => q,
            Err(e) => return Answer::error(&e),
        };
        let cost = route.cost(method, &q, body.as_ref(), &self.config.throttle);
        let users = state.dir.user_count();
        let app = caller.app.as_str();
        let lane = state.lanes.entry(app.to_string()).or_insert_with(Lane::new);
        let share = match lane.admit(&self.config.throttle, users, cost, now) {
            Ok(share) => {
                self.writes_charged
                    .fetch_add(u64::from(cost.writes), Ordering::Relaxed);
                share
            }
            Err(t) => {
                let request_id = uuid::Uuid::new_v4().to_string();
                return Answer {
                    status: 429,
                    headers: vec![
                        ("Retry-After", t.retry_after_secs.to_string()),
                        (
                            "x-ms-throttle-scope",
                            format!(
                                "Tenant_Application/{}/{app}/{}",
                                t.limit, self.config.tenant_id
                            ),
                        ),
                        ("x-ms-throttle-information", t.information.to_string()),
                        ("x-ms-resource-unit", cost.ru.to_string()),
                    ],
                    body: Some(json!({"error": {
                        "code": "TooManyRequests",
                        "message": "Please retry again later.",
                        "innerError": {
                            "code": "429",
                            "date": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string(),
                            "message": "Please retry after",
                            "request-id": request_id,
                            "status": "429",
                        }
                    }})),
                };
            }
        };
        self.resource_units
            .fetch_add(u64::from(cost.ru), Ordering::Relaxed);
        if let Err(e) = authorize(
            &caller.roles,
            &route.needs(method, body.as_ref(), &state.dir),
        ) {
            return Answer::error(&e);
        }
        let link_base = format!("{origin}/v1.0{path}");
        let domains = &state.domains;
        let dir = &mut state.dir;
        let body_or_empty = || body.clone().unwrap_or(Value::Null);
        let result: Result<Reply, SimError> = match (method, route) {
            ("GET", Route::Organization) => Ok(Reply {
                status: 200,
                body: Some(json!({
                    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#organization",
                    "value": [{
                        "id": self.config.tenant_id,
                        "displayName": "Simulated tenant",
                        "verifiedDomains": domains.iter().enumerate().map(|(i, d)| json!({
                            "name": d, "isDefault": i == 0, "isInitial": false, "type": "Managed",
                            "capabilities": "Email, OfficeCommunicationsOnline"
                        })).collect::<Vec<_>>(),
                    }]
                })),
            }),
            ("GET", Route::Collection(kind)) => dir.list(kind, &q, &link_base),
            ("POST", Route::Collection(kind)) => dir.create(kind, body_or_empty(), domains, now),
            ("GET", Route::Item(kind, id)) => dir.get(kind, &decode(id), &q, now),
            ("PATCH", Route::Item(kind, id)) => {
                dir.update(kind, &decode(id), body_or_empty(), domains, now)
            }
            ("DELETE", Route::Item(kind, id)) => dir.delete(kind, &decode(id)),
            ("GET", Route::Members(g)) => dir.list_members(g, &q, &link_base),
            ("POST", Route::MemberRef(g)) => dir.add_member(g, &body_or_empty(), now),
            ("DELETE", Route::MemberItemRef(g, m)) => dir.remove_member(g, m),
            ("GET", Route::GroupByUniqueName(k)) => dir.get_by_unique_name(&odata_key(k), &q, now),
            ("PATCH", Route::GroupByUniqueName(k)) => dir.upsert_group(
                &odata_key(k),
                body_or_empty(),
                create_if_missing,
                domains,
                now,
            ),
            ("GET", Route::DeletedList(kind)) => dir.list_deleted(kind, &q, &link_base),
            ("GET", Route::DeletedItem(id)) => dir.get_deleted(&decode(id), &q),
            ("DELETE", Route::DeletedItem(id)) => dir.purge(&decode(id)),
            ("POST", Route::Restore(id)) => dir.restore(&decode(id)),
            (_, Route::Unknown) => Err(SimError::bad_request(format!(
                "Resource not found for the segment '{}'.",
                path.trim_start_matches('/')
            ))),
            _ => Err(SimError::new(
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            )),
        };
        let mut answer = match result {
            Ok(reply) => Answer {
                status: reply.status,
                headers: Vec::new(),
                body: reply.body,
            },
            Err(e) => Answer::error(&e),
        };
        answer
            .headers
            .push(("x-ms-resource-unit", cost.ru.to_string()));
        if let Some(share) = share {
            answer
                .headers
                .push(("x-ms-throttle-limit-percentage", format!("{share:.2}")));
        }
        answer
    }

    /// `POST /$batch`: each inner request is authenticated by the outer token and
    /// throttled on its own; responses come back in reverse order, matched by `id`.
    fn batch(
        &self,
        state: &mut State_,
        caller: &Caller,
        body: Option<Value>,
        origin: &str,
        now: Instant,
    ) -> Answer {
        #[derive(Deserialize)]
        struct Inner {
            id: Value,
            method: String,
            url: String,
            #[serde(default)]
            body: Option<Value>,
            #[serde(default, rename = "dependsOn")]
            depends_on: Vec<String>,
            #[serde(default)]
            headers: HashMap<String, String>,
        }
        #[derive(Deserialize)]
        struct Batch {
            requests: Vec<Inner>,
        }
        let batch: Batch = match body.map(serde_json::from_value) {
            Some(Ok(b)) => b,
            _ => return Answer::error(&SimError::bad_request("Invalid batch payload format.")),
        };
        if batch.requests.len() > MAX_BATCH {
            return Answer::error(&SimError::bad_request(
                "The number of batch requests exceeds the limit of 20.",
            ));
        }
        let ids: Vec<String> = batch
            .requests
            .iter()
            .map(|r| match &r.id {
                Value::String(s) => s.to_ascii_lowercase(),
                other => other.to_string(),
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        if ids.iter().any(|id| !seen.insert(id.clone())) {
            return Answer::error(&SimError::bad_request("Batch request ids must be unique."));
        }
        let mut statuses: HashMap<String, u16> = HashMap::new();
        let mut responses = Vec::with_capacity(batch.requests.len());
        for (inner, id) in batch.requests.into_iter().zip(ids) {
            let method = method_name(&inner.method);
            let url = inner
                .url
                .strip_prefix("https://graph.microsoft.com/v1.0")
                .unwrap_or(&inner.url);
            let (path, query) = match url.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (url, None),
            };
            let path = if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            };
            let failed_dependency = inner.depends_on.iter().any(|d| {
                statuses
                    .get(&d.to_ascii_lowercase())
                    .is_none_or(|s| *s >= 400)
            });
            let answer = if failed_dependency {
                Answer::error(&SimError::new(
                    424,
                    "Request_FailedDependency",
                    "The request depends on a request that failed.",
                ))
            } else if Route::parse(&path) == Route::Batch {
                Answer::error(&SimError::bad_request(
                    "Nested batch requests are not supported.",
                ))
            } else {
                let prefer = inner
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("prefer"))
                    .map(|(_, v)| v.as_str());
                let request = GraphRequest {
                    method,
                    path: &path,
                    query,
                    create_if_missing: prefers_create(prefer),
                    body: inner.body,
                };
                self.one(state, caller, request, origin, now)
            };
            self.count(method, Route::parse(&path).class(), answer.status);
            statuses.insert(id, answer.status);
            let mut headers = Map::new();
            if answer.body.is_some() {
                headers.insert("Content-Type".into(), json!("application/json"));
            }
            for (name, value) in answer.headers {
                headers.insert(name.into(), Value::String(value));
            }
            let mut response = json!({"id": inner.id, "status": answer.status, "headers": headers});
            if let Some(body) = answer.body {
                response["body"] = body;
            }
            responses.push(response);
        }
        responses.reverse();
        Answer {
            status: 200,
            headers: Vec::new(),
            body: Some(json!({"responses": responses})),
        }
    }
}

/// The key of `groups(uniqueName='…')`: percent-decoded, `''` unescaped.
fn odata_key(raw: &str) -> String {
    decode(raw).replace("''", "'")
}

/// Decodes `%40` and friends in a key such as a UPN.
fn decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("k={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The router of a simulator built from `config`, for `entra-sync sim graph`.
pub fn router(config: SimConfig) -> Router {
    routes(Arc::new(Sim::new(config)))
}

/// Serves a simulator built from `config` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, config: SimConfig) -> std::io::Result<()> {
    axum::serve(listener, router(config)).await
}

pub(crate) fn routes(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/_sim/state", get(sim_state))
        .route("/_sim/counters", get(sim_counters))
        .route("/_sim/seed", post(sim_seed))
        .route("/_sim/faults", put(sim_faults))
        .route(
            "/_sim/faults/after-commit",
            post(sim_fail_after_commit).delete(sim_clear_commit_faults),
        )
        .route("/_sim/refused-writes/{id}", post(sim_refuse_writes))
        .route("/_sim/apps/{client_id}/roles", put(sim_app_roles))
        .route(
            "/_sim/portal/objects/{id}",
            axum::routing::patch(portal_update).delete(portal_delete),
        )
        .route(
            "/_sim/portal/groups/{group}/members/{member}",
            axum::routing::delete(portal_remove_member),
        )
        .route("/v1.0/{*rest}", any(graph))
        .with_state(sim)
}

async fn token(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let answer = sim.issue_token(&tenant, &form);
    sim.count("POST", "token", answer.status);
    answer.into_response()
}

async fn graph(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().strip_prefix("/v1.0").unwrap_or_default();
    let method = method_name(method.as_str());
    let class = Route::parse(path).class();
    let low = headers
        .get("x-ms-throttle-priority")
        .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"low"));
    if low {
        sim.low_priority.fetch_add(1, Ordering::Relaxed);
    }
    let (latency, fault) = sim.roll_fault();
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
    if let Some(fault) = fault {
        return fault_response(&sim, method, class, fault);
    }
    let parsed = if body.is_empty() {
        Ok(None)
    } else {
        serde_json::from_slice::<Value>(&body).map(Some)
    };
    let answer = match parsed {
        Ok(json) => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            let authorization = headers
                .get(header::AUTHORIZATION)
                .and_then(|h| h.to_str().ok());
            let prefer = headers.get("prefer").and_then(|h| h.to_str().ok());
            sim.handle(
                authorization,
                GraphRequest {
                    method,
                    path,
                    query: uri.query(),
                    body: json,
                    create_if_missing: prefers_create(prefer),
                },
                &format!("http://{host}"),
            )
        }
        Err(_) => Answer::error(&SimError::bad_request(
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )),
    };
    if answer.status < 400 {
        let lost = lock(&sim.commit_faults).take(method, class);
        if let Some(lost) = lost {
            let fault = match lost {
                LostAnswer::Status(status) => FaultAction::Status(status),
                LostAnswer::Drop => FaultAction::Drop,
            };
            return fault_response(&sim, method, class, fault);
        }
    }
    sim.count(method, class, answer.status);
    answer.into_response()
}

/// An injected fault as the client sees it: a connection dropped before the
/// body (counted with status 0), or an error status with Graph's body for it.
fn fault_response(
    sim: &Sim,
    method: &'static str,
    class: &'static str,
    fault: FaultAction,
) -> Response {
    match fault {
        FaultAction::Drop => {
            sim.count(method, class, 0);
            let failing = futures_util::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other(
                    "connection dropped by the simulator",
                ))
            });
            Response::new(Body::from_stream(failing))
        }
        FaultAction::Status(status) => {
            sim.count(method, class, status);
            let (code, message) = match status {
                503 => ("serviceNotAvailable", "Service Unavailable"),
                504 => ("GatewayTimeout", "Gateway Timeout"),
                _ => ("InternalServerError", "An internal server error occurred."),
            };
            Answer::error(&SimError::new(status, code, message)).into_response()
        }
    }
}

async fn sim_state(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(sim.state()).into_response()
}

async fn sim_counters(State(sim): State<Arc<Sim>>) -> Response {
    axum::Json(sim.counters()).into_response()
}

async fn sim_seed(State(sim): State<Arc<Sim>>, axum::Json(seed): axum::Json<Seed>) -> Response {
    match sim.seed(seed) {
        Ok((users, groups)) => {
            axum::Json(json!({"users": users, "groups": groups})).into_response()
        }
        Err(e) => Answer::error(&e).into_response(),
    }
}

async fn sim_refuse_writes(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> StatusCode {
    sim.refuse_writes(&id);
    StatusCode::NO_CONTENT
}

/// 204, or Graph's error for a missing object.
fn portal_answer(result: Result<(), SimError>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => Answer::error(&e).into_response(),
    }
}

async fn portal_update(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    axum::Json(changes): axum::Json<Map<String, Value>>,
) -> Response {
    portal_answer(sim.portal_update(&id, changes))
}

async fn portal_delete(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    portal_answer(sim.portal_delete(&id))
}

async fn portal_remove_member(
    State(sim): State<Arc<Sim>>,
    Path((group, member)): Path<(String, String)>,
) -> Response {
    portal_answer(sim.portal_remove_member(&group, &member))
}

async fn sim_app_roles(
    State(sim): State<Arc<Sim>>,
    Path(client_id): Path<String>,
    axum::Json(roles): axum::Json<BTreeSet<String>>,
) -> StatusCode {
    sim.set_app_roles(&client_id, roles);
    StatusCode::NO_CONTENT
}

async fn sim_fail_after_commit(
    State(sim): State<Arc<Sim>>,
    axum::Json(fault): axum::Json<CommitFault>,
) -> StatusCode {
    sim.fail_after_commit(fault);
    StatusCode::NO_CONTENT
}

async fn sim_clear_commit_faults(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.clear_commit_faults();
    StatusCode::NO_CONTENT
}

async fn sim_faults(
    State(sim): State<Arc<Sim>>,
    axum::Json(faults): axum::Json<FaultConfig>,
) -> StatusCode {
    sim.set_faults(faults);
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_classes() {
        let cases = [
            ("/users", "users"),
            ("/users/abc", "users/{id}"),
            ("/groups", "groups"),
            ("/groups/g", "groups/{id}"),
            ("/groups/g/members", "groups/{id}/members"),
            ("/groups/g/members/$ref", "groups/{id}/members/$ref"),
            ("/groups/g/members/m/$ref", "groups/{id}/members/{id}/$ref"),
            ("/$batch", "$batch"),
            ("/organization", "organization"),
            ("/devices", "unknown"),
            ("/users/a/b", "unknown"),
            (
                "/directory/deletedItems/microsoft.graph.user",
                "directory/deletedItems/{type}",
            ),
            ("/directory/deletedItems/x", "directory/deletedItems/{id}"),
            (
                "/directory/deletedItems/x/restore",
                "directory/deletedItems/{id}/restore",
            ),
        ];
        for (path, class) in cases {
            assert_eq!(Route::parse(path).class(), class, "{path}");
        }
    }

    #[test]
    fn costs_follow_the_reference_table() {
        let q = |s: &str| QueryOptions::parse(Some(s)).unwrap();
        let t = ThrottleConfig::default();
        let users = Route::parse("/users");
        let members = Route::parse("/groups/g/members");
        let get = |route: Route<'_>, query: &str| route.cost("GET", &q(query), None, &t).ru;
        assert_eq!(get(users, ""), 2);
        assert_eq!(get(users, "$select=id"), 1);
        assert_eq!(get(members, ""), 3);
        assert_eq!(get(members, "$select=id"), 2);
        assert_eq!(get(members, "$select=id&$top=5"), 1);
        assert_eq!(get(Route::parse("/groups"), "$top=5"), 1);
        assert_eq!(
            Route::parse("/users/x").cost("PATCH", &q(""), None, &t),
            Cost { ru: 1, writes: 1 }
        );
        let binds: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
        let bind = json!({ "members@odata.bind": binds });
        assert_eq!(
            Route::parse("/groups/g").cost("PATCH", &q(""), Some(&bind), &t),
            Cost { ru: 1, writes: 7 },
            "20 members at 3 per write"
        );
        let rename = json!({ "displayName": "x" });
        assert_eq!(
            Route::parse("/groups/g")
                .cost("PATCH", &q(""), Some(&rename), &t)
                .writes,
            1
        );
    }

    #[test]
    fn decode_keeps_upns() {
        assert_eq!(decode("a%40contoso.com"), "a@contoso.com");
        assert_eq!(decode("a+b@x.com"), "a+b@x.com");
    }
}
