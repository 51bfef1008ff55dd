//! authentik API client: users, groups and the events feed.
//!
//! A small, tolerant client for the parts of authentik's REST API
//! (`/api/v3/`) that entra-sync reads:
//! - users and groups, page by page ([`AuthentikClient::users`],
//!   [`AuthentikClient::groups`]) so that 100,000 users never sit in memory;
//! - single objects ([`AuthentikClient::user`], [`AuthentikClient::group`]),
//!   `Ok(None)` when authentik answers 404;
//! - the model-change events feed ([`AuthentikClient::model_events_page`]);
//! - the release ([`AuthentikClient::detect_release`]), which decides through
//!   one capability table (module `release`) which features are used, and
//!   authentik's clock (the `Date` of its answers, [`Page::server_time`]).
//!
//! Every release from 2024.2 on silently ignores filters it does not know, so
//! answers are checked and an ignored filter is logged once, reported by
//! [`AuthentikClient::ignored_filters`], and fallen back from (module `observed`).
//!
//! Shapes were checked against authentik's OpenAPI schema 2026.8.5
//! (`schema.yml` of the `authentik-client` crate) and against the 2024.x–2025.x
//! serializers: only fields entra-sync uses are read, and optional ones may be
//! missing, so older releases parse too.
//!
//! Transient failures (network, 5xx, 429) are retried with bounded, jittered
//! exponential backoff, honouring `Retry-After`. 401 and 403 are
//! configuration errors. The API token never appears in logs, `Debug` output
//! or errors.

mod error;
mod events;
mod observed;
pub mod release;
mod retry;

pub use error::AuthentikError;
pub use events::{AkEvent, ModelRef};
pub use observed::{Filter, IgnoredFilter};
pub use release::{Capabilities, Feature};
pub use retry::RetryPolicy;

use observed::Observed;

use chrono::{DateTime, SecondsFormat, Utc};
use entra_sync_core::authentik::{AkGroup, AkUser, AkUserType};
use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_core::secret::{Secret, SecretSource};
use futures_util::{Stream, TryStreamExt};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::de::DeserializeOwned;
use std::fmt;
use std::time::Duration;
use url::Url;

/// The largest page authentik (2025.x and later) serves: `pagination_max_page_size`.
pub const MAX_PAGE_SIZE: u32 = 100;

/// An authentik API token. Its value is never printed. A token from a file
/// is read again at each request, so rotating the file needs no restart.
#[derive(Clone)]
pub struct ApiToken(SecretSource);

impl ApiToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(SecretSource::Value(Secret::new(token)))
    }

    /// A token read from `source` at each request.
    pub fn from_source(source: SecretSource) -> Self {
        Self(source)
    }

    /// `Authorization: Bearer …` with the token as it is now, marked sensitive.
    fn header(&self) -> Result<HeaderValue, AuthentikError> {
        let token = self
            .0
            .read()
            .map_err(|e| AuthentikError::InvalidUrl(e.to_string()))?;
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                AuthentikError::InvalidUrl("the API token is not a valid header value".into())
            })?;
        auth.set_sensitive(true);
        Ok(auth)
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

/// How to reach authentik.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// authentik's base URL, e.g. `https://auth.example.com/` (the client adds `api/v3/…`).
    pub base_url: Url,
    /// The API token (sent as `Authorization: Bearer …`).
    pub token: ApiToken,
    /// Page size for listings; capped at [`MAX_PAGE_SIZE`].
    pub page_size: u32,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
}

impl ClientConfig {
    /// Defaults: pages of 100, 30 s per request, [`RetryPolicy::default`].
    pub fn new(base_url: Url, token: ApiToken) -> Self {
        Self {
            base_url,
            token,
            page_size: MAX_PAGE_SIZE,
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// One page of a listing, with where the next one is.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The objects of this page.
    pub results: Vec<T>,
    /// The next page number, if there is one (authentik sends `next: 0` for none).
    pub next: Option<u32>,
    /// How many objects match in total.
    pub count: u64,
    /// authentik's clock when it answered (its `Date` header, to the second).
    pub server_time: Option<DateTime<Utc>>,
}

#[derive(serde::Deserialize)]
struct Envelope<T> {
    pagination: PaginationMeta,
    results: Vec<T>,
}

#[derive(serde::Deserialize)]
struct PaginationMeta {
    #[serde(default)]
    next: f64,
    #[serde(default)]
    count: f64,
}

/// Which users to list.
///
/// `include_groups` only controls authentik's `groups_obj` (the expanded
/// groups): the `groups` list of group pks is always serialised (checked in
/// the 2024.x–2026.8 `UserSerializer`). entra-sync reads only `groups`, so
/// the default is `false`, which spares authentik a prefetch per page; roles
/// are never needed (`include_roles=false`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserQuery {
    /// Ask for `groups_obj` too (not needed by entra-sync).
    pub include_groups: bool,
    /// Only these user types (`type=` repeated); empty for all.
    pub types: Vec<AkUserType>,
    /// Only active or inactive users.
    pub is_active: Option<bool>,
    /// Only users changed strictly after this instant (`last_updated__gt`, authentik 2025.8+).
    pub last_updated_gt: Option<DateTime<Utc>>,
    /// Sort order; `pk` when `None` (stable while users are added).
    pub ordering: Option<String>,
}

/// Which groups to list.
///
/// `include_users` only controls `users_obj`; the `users` pk list is always
/// there. Default `false`: entra-sync reads `users` only.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupQuery {
    /// Ask for `users_obj` too (not needed by entra-sync).
    pub include_users: bool,
    /// Only the group with exactly this name.
    pub name: Option<String>,
}

/// The client. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct AuthentikClient {
    http: reqwest::Client,
    api: Url,
    token: ApiToken,
    retry: RetryPolicy,
    page_size: u32,
    observed: Observed,
}

impl fmt::Debug for AuthentikClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthentikClient")
            .field("api", &self.api.as_str())
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

/// The `Date` header: the server's clock when it answered.
fn server_date(headers: &reqwest::header::HeaderMap) -> Option<DateTime<Utc>> {
    let text = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    DateTime::parse_from_rfc2822(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn type_name(t: &AkUserType) -> &str {
    match t {
        AkUserType::Internal => "internal",
        AkUserType::External => "external",
        AkUserType::ServiceAccount => "service_account",
        AkUserType::InternalServiceAccount => "internal_service_account",
        AkUserType::Other(s) => s,
    }
}

impl AuthentikClient {
    /// Builds a client. Fails only if the base URL cannot be used.
    pub fn new(config: ClientConfig) -> Result<Self, AuthentikError> {
        let mut base = config.base_url;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let api = base
            .join("api/v3/")
            .map_err(|e| AuthentikError::InvalidUrl(e.to_string()))?;
        config.token.header()?;
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .user_agent(concat!("entra-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AuthentikError::InvalidUrl(e.to_string()))?;
        Ok(Self {
            http,
            api,
            token: config.token,
            retry: config.retry,
            page_size: config.page_size.clamp(1, MAX_PAGE_SIZE),
            observed: Observed::default(),
        })
    }

    /// Reads the release (`GET /admin/version/`), records it (logging it when
    /// it changed) and returns the capabilities it decides.
    pub async fn detect_release(&self) -> Result<Capabilities, AuthentikError> {
        #[derive(serde::Deserialize)]
        struct Version {
            version_current: String,
        }
        let version = self
            .get_json::<Version>("admin/version/", &[])
            .await?
            .ok_or_else(|| AuthentikError::Status {
                request: "GET /api/v3/admin/version/".into(),
                status: 404,
                body: "no version endpoint".into(),
            })?;
        let caps = Capabilities::of(&version.version_current);
        self.observed.set_capabilities(caps.clone());
        Ok(caps)
    }

    /// authentik's clock now (the `Date` of a `GET /admin/version/`), if it says.
    pub async fn server_time(&self) -> Result<Option<DateTime<Utc>>, AuthentikError> {
        Ok(self
            .get_dated::<serde_json::Value>("admin/version/", &[])
            .await?
            .and_then(|(_, date)| date))
    }

    /// The capabilities in use (the newest release's until [`Self::detect_release`]).
    pub fn capabilities(&self) -> Capabilities {
        self.observed.capabilities()
    }

    /// Whether to rely on `feature`: the release has it, and none of its
    /// filters was seen ignored.
    pub fn uses(&self, feature: Feature) -> bool {
        self.observed.uses(feature)
    }

    /// Records that authentik ignored `filter` (logged the first time).
    pub fn note_ignored(&self, filter: Filter) {
        self.observed.ignored(filter);
    }

    /// Whether authentik was seen to ignore `filter`.
    pub fn is_ignored(&self, filter: Filter) -> bool {
        self.observed.is_ignored(filter)
    }

    /// The filters authentik was seen to ignore.
    pub fn ignored_filters(&self) -> Vec<IgnoredFilter> {
        self.observed.ignored_filters()
    }

    /// The page size in use (at most [`MAX_PAGE_SIZE`]).
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// GETs `path` (relative to `/api/v3/`) with `query`, retrying transient
    /// failures. `Ok(None)` on 404.
    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Option<T>, AuthentikError> {
        Ok(self.get_dated(path, query).await?.map(|(body, _)| body))
    }

    /// Like `get_json`, with authentik's clock (`Date`) when it answered.
    async fn get_dated<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Option<(T, Option<DateTime<Utc>>)>, AuthentikError> {
        let url = self
            .api
            .join(path)
            .map_err(|e| AuthentikError::InvalidUrl(e.to_string()))?;
        let request = format!("GET /api/v3/{path}");
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let sent = self
                .http
                .get(url.clone())
                .header(AUTHORIZATION, self.token.header()?)
                .query(query)
                .send()
                .await;
            let failure = match sent {
                Err(e) => error::Failure::transient(format!("network error: {e}"), None),
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        let date = server_date(resp.headers());
                        let body = resp.bytes().await.map_err(|e| AuthentikError::Transient {
                            request: request.clone(),
                            attempts: attempt,
                            detail: format!("reading the body: {e}"),
                        })?;
                        return serde_json::from_slice(&body)
                            .map(|b| Some((b, date)))
                            .map_err(|e| AuthentikError::Decode {
                                request: request.clone(),
                                detail: e.to_string(),
                            });
                    }
                    if status == StatusCode::NOT_FOUND {
                        return Ok(None);
                    }
                    let retry_after = retry::retry_after(resp.headers());
                    let body = resp.text().await.unwrap_or_default();
                    error::Failure::classify(&request, status, retry_after, body)?
                }
            };
            if attempt >= self.retry.max_attempts {
                return Err(AuthentikError::Transient {
                    request,
                    attempts: attempt,
                    detail: failure.detail,
                });
            }
            let delay = self.retry.delay(attempt, failure.retry_after);
            tracing::warn!(%request, attempt, delay_ms = delay.as_millis() as u64, detail = %failure.detail, "authentik request failed, retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// One page; `Ok(None)` if authentik answers 404 "Invalid page." (the
    /// listing shrank below this page while it was being read).
    async fn get_page_opt<T: DeserializeOwned>(
        &self,
        path: &str,
        mut query: Vec<(&str, String)>,
        page: u32,
    ) -> Result<Option<Page<T>>, AuthentikError> {
        query.push(("page", page.to_string()));
        query.push(("page_size", self.page_size.to_string()));
        let Some((env, server_time)) = self.get_dated::<Envelope<T>>(path, &query).await? else {
            return Ok(None);
        };
        let next = env.pagination.next as u32;
        Ok(Some(Page {
            results: env.results,
            next: (next > 0).then_some(next),
            count: env.pagination.count as u64,
            server_time,
        }))
    }

    async fn get_page<T: DeserializeOwned>(
        &self,
        path: &str,
        query: Vec<(&str, String)>,
        page: u32,
    ) -> Result<Page<T>, AuthentikError> {
        self.get_page_opt(path, query, page)
            .await?
            .ok_or_else(|| AuthentikError::Status {
                request: format!("GET /api/v3/{path}"),
                status: 404,
                body: format!("page {page} not found"),
            })
    }

    fn pages<T: DeserializeOwned + Send + 'static>(
        &self,
        path: &'static str,
        query: Vec<(&'static str, String)>,
    ) -> impl Stream<Item = Result<Vec<T>, AuthentikError>> + Send + 'static {
        let client = self.clone();
        futures_util::stream::try_unfold(Some(1u32), move |page| {
            let client = client.clone();
            let query = query.clone();
            async move {
                let Some(page) = page else { return Ok(None) };
                match client.get_page_opt::<T>(path, query, page).await? {
                    Some(p) => Ok(Some((p.results, p.next))),
                    // Objects deleted meanwhile made the listing shorter: it is done.
                    None if page > 1 => Ok(None),
                    None => Err(AuthentikError::Status {
                        request: format!("GET /api/v3/{path}"),
                        status: 404,
                        body: "listing endpoint not found".into(),
                    }),
                }
            }
        })
    }

    /// Whether `include_*=false` is sent: only to releases that know it.
    fn excludes_objects(&self, include: bool) -> bool {
        !include && self.uses(Feature::IncludeObjects)
    }

    fn user_query(&self, q: &UserQuery) -> Vec<(&'static str, String)> {
        let mut query = vec![
            ("include_roles", "false".to_owned()),
            (
                "ordering",
                q.ordering.clone().unwrap_or_else(|| "pk".into()),
            ),
        ];
        if self.excludes_objects(q.include_groups) {
            query.push(("include_groups", "false".to_owned()));
        }
        for t in &q.types {
            query.push(("type", type_name(t).to_owned()));
        }
        if let Some(active) = q.is_active {
            query.push(("is_active", active.to_string()));
        }
        if let Some(t) = q.last_updated_gt {
            query.push(("last_updated__gt", fmt_time(t)));
        }
        query
    }

    fn group_query(&self, q: &GroupQuery) -> Vec<(&'static str, String)> {
        let mut query = vec![
            ("include_children", "false".to_owned()),
            ("include_parents", "false".to_owned()),
            ("ordering", "name".to_owned()),
        ];
        if self.excludes_objects(q.include_users) {
            query.push(("include_users", "false".to_owned()));
        }
        if let Some(name) = &q.name {
            query.push(("name", name.clone()));
        }
        query
    }

    /// `GET /core/users/`, one page (numbered from 1).
    pub async fn users_page(
        &self,
        q: &UserQuery,
        page: u32,
    ) -> Result<Page<AkUser>, AuthentikError> {
        let excluded = self.excludes_objects(q.include_groups);
        let p = self
            .get_page("core/users/", self.user_query(q), page)
            .await?;
        self.check_users(excluded, &p.results);
        Ok(p)
    }

    /// Notes `include_groups=false` ignored when users came with their groups.
    fn check_users(&self, excluded: bool, users: &[AkUser]) {
        if excluded && users.iter().any(|u| u.groups_obj.is_some()) {
            self.note_ignored(Filter::UsersIncludeGroups);
        }
    }

    /// Notes `include_users=false` ignored when groups came with their users.
    fn check_groups(&self, excluded: bool, groups: &[AkGroup]) {
        if excluded && groups.iter().any(|g| g.users_obj_sent) {
            self.note_ignored(Filter::GroupsIncludeUsers);
        }
    }

    /// All users matching `q`, streamed page by page.
    pub fn users(
        &self,
        q: &UserQuery,
    ) -> impl Stream<Item = Result<Vec<AkUser>, AuthentikError>> + Send + 'static {
        let excluded = self.excludes_objects(q.include_groups);
        let client = self.clone();
        self.pages("core/users/", self.user_query(q))
            .inspect_ok(move |users| client.check_users(excluded, users))
    }

    /// Users changed strictly after `after`, oldest change first
    /// (`last_updated__gt` + `ordering=last_updated`; authentik 2025.8+,
    /// which callers check with [`Feature::LastUpdated`]: older releases
    /// ignore both and return every user).
    pub async fn users_updated_after(
        &self,
        after: DateTime<Utc>,
        page: u32,
    ) -> Result<Page<AkUser>, AuthentikError> {
        let q = UserQuery {
            last_updated_gt: Some(after),
            ordering: Some("last_updated".into()),
            ..UserQuery::default()
        };
        self.users_page(&q, page).await
    }

    /// `GET /core/groups/`, one page.
    pub async fn groups_page(
        &self,
        q: &GroupQuery,
        page: u32,
    ) -> Result<Page<AkGroup>, AuthentikError> {
        let excluded = self.excludes_objects(q.include_users);
        let p = self
            .get_page("core/groups/", self.group_query(q), page)
            .await?;
        self.check_groups(excluded, &p.results);
        Ok(p)
    }

    /// All groups matching `q`, streamed page by page.
    pub fn groups(
        &self,
        q: &GroupQuery,
    ) -> impl Stream<Item = Result<Vec<AkGroup>, AuthentikError>> + Send + 'static {
        let excluded = self.excludes_objects(q.include_users);
        let client = self.clone();
        self.pages("core/groups/", self.group_query(q))
            .inspect_ok(move |groups| client.check_groups(excluded, groups))
    }

    /// `GET /core/users/{pk}/`; `Ok(None)` if the user does not exist (deleted).
    pub async fn user(&self, pk: AkUserPk) -> Result<Option<AkUser>, AuthentikError> {
        let mut query = vec![("include_roles", "false".to_owned())];
        let excluded = self.excludes_objects(false);
        if excluded {
            query.push(("include_groups", "false".into()));
        }
        let user: Option<AkUser> = self.get_json(&format!("core/users/{pk}/"), &query).await?;
        self.check_users(excluded, user.as_slice());
        Ok(user)
    }

    /// `GET /core/groups/{uuid}/` with its member pks; `Ok(None)` if it does not exist.
    pub async fn group(&self, pk: AkGroupPk) -> Result<Option<AkGroup>, AuthentikError> {
        let mut query = vec![
            ("include_children", "false".to_owned()),
            ("include_parents", "false".to_owned()),
        ];
        let excluded = self.excludes_objects(false);
        if excluded {
            query.push(("include_users", "false".into()));
        }
        let group: Option<AkGroup> = self.get_json(&format!("core/groups/{pk}/"), &query).await?;
        self.check_groups(excluded, group.as_slice());
        Ok(group)
    }

    /// The group named exactly `name` (`?name=`), if any.
    pub async fn group_by_name(&self, name: &str) -> Result<Option<AkGroup>, AuthentikError> {
        let q = GroupQuery {
            name: Some(name.to_owned()),
            ..GroupQuery::default()
        };
        let page = self.groups_page(&q, 1).await?;
        Ok(page.results.into_iter().find(|g| g.name == name))
    }

    /// One page of the model-change events of `authentik_core`, newest first.
    ///
    /// authentik's events list has no timestamp filter (2026.8 schema: `action`,
    /// `actions`, `context_model_*`, `ordering`, `search`, …), so the feed is
    /// read newest first (`ordering=-created,pk`; `pk` breaks ties between
    /// events of the same instant, so pages stay consistent) until the cursor
    /// is reached. The actions are asked with `actions` where the release has
    /// it (2025.8), else with `action=model_` (a substring match everywhere).
    /// Each page is checked: an event of another action or app, or out of
    /// order, means a filter was ignored ([`Self::is_ignored`]); callers must
    /// still check each event.
    pub async fn model_events_page(&self, page: u32) -> Result<Page<AkEvent>, AuthentikError> {
        let mut query = Vec::new();
        if self.uses(Feature::EventActions) {
            for action in events::MODEL_ACTIONS {
                query.push(("actions", action.to_owned()));
            }
        } else {
            query.push(("action", "model_".to_owned()));
        }
        query.push(("context_model_app", "authentik_core".to_owned()));
        query.push(("ordering", "-created,pk".to_owned()));
        let p: Page<AkEvent> = self.get_page("events/events/", query, page).await?;
        for filter in events::ignored_filters(&p.results) {
            self.note_ignored(filter);
        }
        Ok(p)
    }
}
