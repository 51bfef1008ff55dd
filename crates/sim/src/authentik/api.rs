//! authentik's REST API, as far as entra-sync reads it.

use super::AuthentikSim;
use super::release::Release;
use super::state::{SimEvent, SimGroup, SimUser, State};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State as AxState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::cmp::Ordering as CmpOrdering;
use std::sync::atomic::Ordering;
use uuid::Uuid;

/// authentik's `pagination_default_page_size` (2025.12 and later).
const DEFAULT_PAGE_SIZE: usize = 20;
/// authentik's `pagination_max_page_size` (2025.12 and later).
pub(crate) const MAX_PAGE_SIZE: usize = 100;
/// DRF's `PAGE_SIZE` before 2025.12, which also had no cap.
const OLD_PAGE_SIZE: usize = 100;
/// Stands in for authentik's install id in `uid`.
const INSTALL_ID: &str = "entra-sync-sim";

pub(crate) fn router(sim: AuthentikSim) -> Router {
    Router::new()
        .route("/api/v3/core/users/", get(list_users))
        .route("/api/v3/core/users/{pk}/", get_one("User", user_by_pk))
        .route("/api/v3/core/groups/", get(list_groups))
        .route("/api/v3/core/groups/{pk}/", get_one("Group", group_by_pk))
        .route(
            "/api/v3/core/groups/{pk}/add_user/",
            membership_change(true),
        )
        .route(
            "/api/v3/core/groups/{pk}/remove_user/",
            membership_change(false),
        )
        .route("/api/v3/events/events/", get(list_events))
        .route("/api/v3/admin/version/", get(version))
        .layer(middleware::from_fn_with_state(sim.clone(), auth))
        .with_state(sim)
}

/// `GET …/{pk}/`: the object `render` finds for `pk`, as the request asks
/// for it, or authentik's 404 for `model`.
fn get_one(
    model: &'static str,
    render: fn(&State, &str, &Params) -> Option<Json>,
) -> MethodRouter<AuthentikSim> {
    get(
        move |AxState(sim): AxState<AuthentikSim>,
              Path(pk): Path<String>,
              RawQuery(raw): RawQuery| async move {
            let p = Params::parse(raw);
            let s = sim.read();
            match render(&s, &pk, &p) {
                Some(out) => json(&out),
                None => detail(
                    StatusCode::NOT_FOUND,
                    &format!("No {model} matches the given query."),
                ),
            }
        },
    )
}

fn detail(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "detail": text }))).into_response()
}

async fn auth(AxState(sim): AxState<AuthentikSim>, req: Request, next: Next) -> Response {
    sim.shared.api_requests.fetch_add(1, Ordering::Relaxed);
    let expected = format!("Bearer {}", sim.shared.token);
    let ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes());
    if !ok {
        return detail(
            StatusCode::UNAUTHORIZED,
            "Authentication credentials were not provided.",
        );
    }
    if let Some(status) = sim.take_failure() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut r = detail(status, "injected failure");
        if status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("0"));
        }
        return r;
    }
    let clock = sim.clock();
    let mut response = next.run(req).await;
    // authentik's clock, as an HTTP server states it.
    if let Ok(date) = HeaderValue::from_str(&clock.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
    {
        response.headers_mut().insert(header::DATE, date);
    }
    response
}

/// `GET /admin/version/` (any authenticated token), with the release's fields.
async fn version(AxState(sim): AxState<AuthentikSim>) -> Response {
    let release = sim.release();
    let current = release.version_current();
    let mut body = serde_json::json!({
        "version_current": current,
        "version_latest": current,
        "build_hash": "0000000000000000000000000000000000000000",
        "outdated": false,
    });
    if release.include_params() {
        body["version_latest_valid"] = true.into();
    }
    if release.version_extras() {
        body["outpost_outdated"] = false.into();
    }
    json(&body)
}

/// The query string as (key, value) pairs; keys may repeat (`type=a&type=b`).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<String>) -> Self {
        Self(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    fn flag(&self, key: &str, default: bool) -> bool {
        self.get(key)
            .map(|v| v.eq_ignore_ascii_case("true"))
            .unwrap_or(default)
    }
    /// An `include_*` flag, which releases before 2024.4 ignore (always included).
    fn include(&self, release: Release, key: &str, default: bool) -> bool {
        if release.include_params() {
            self.flag(key, default)
        } else {
            true
        }
    }
    /// A `NullBooleanSelect` filter: only `true`/`false` (any case) filter;
    /// anything else (`1`, `0`) means no filter.
    fn boolean(&self, key: &str) -> Option<bool> {
        match self.get(key)?.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }
    /// A date-time parameter; `Err` names the parameter that does not parse.
    fn time<'k>(&self, key: &'k str) -> Result<Option<DateTime<Utc>>, &'k str> {
        self.get(key)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| key)
            })
            .transpose()
    }
    /// (page, page_size) with the release's default and cap: since 2025.12
    /// 20 and at most 100 (cut silently); before, 100 and no cap.
    fn paging(&self, release: Release) -> (usize, usize) {
        let (default, cap) = if release.since_2025_12() {
            (DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        } else {
            (OLD_PAGE_SIZE, usize::MAX)
        };
        let page = self
            .get("page")
            .and_then(|p| p.parse().ok())
            .filter(|p| *p >= 1)
            .unwrap_or(1);
        let size = self
            .get("page_size")
            .and_then(|p| p.parse().ok())
            .filter(|p| *p >= 1)
            .unwrap_or(default)
            .min(cap);
        (page, size)
    }
}

#[derive(Serialize)]
struct Pagination {
    next: usize,
    previous: usize,
    count: usize,
    current: usize,
    total_pages: usize,
    start_index: usize,
    end_index: usize,
}

/// Serialises one page of `items` (already filtered and ordered) in authentik's envelope.
fn page_of<'a, T: 'a, O: Serialize>(
    params: &Params,
    release: Release,
    count: usize,
    items: impl Iterator<Item = &'a T>,
    out: impl Fn(&'a T) -> O,
) -> Response {
    let (page, size) = params.paging(release);
    let total_pages = count.div_ceil(size).max(1);
    if page > total_pages {
        return detail(StatusCode::NOT_FOUND, "Invalid page.");
    }
    let offset = (page - 1) * size;
    let results: Vec<O> = items.skip(offset).take(size).map(out).collect();
    let n = results.len();
    let mut body = serde_json::json!({
        "pagination": Pagination {
            next: if page < total_pages { page + 1 } else { 0 },
            previous: page - 1,
            count,
            current: page,
            total_pages,
            start_index: if n == 0 { 0 } else { offset + 1 },
            end_index: offset + n,
        },
        "results": results,
    });
    if release.since_2025_8() {
        body["autocomplete"] = serde_json::json!({});
    }
    json(&body)
}

fn json<T: Serialize>(body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(e) => detail(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

// ---- users ----

fn uid(pk: i64) -> String {
    hex::encode(Sha256::digest(format!("{pk}-{INSTALL_ID}")))
}

type Json = serde_json::Value;

/// A group as `groups_obj` lists it: `UserGroup`/`PartialGroup`, with
/// `parent`/`parent_name` up to 2025.10; on 2024.2 a root group has no
/// `parent_name` key at all.
fn user_group_out(s: &State, g: &SimGroup) -> Json {
    let mut out = serde_json::json!({
        "pk": g.pk,
        "num_pk": g.num_pk,
        "name": g.name,
        "is_superuser": g.is_superuser,
        "attributes": g.attributes,
    });
    if !s.release.since_2025_12() {
        let parent = g.parents.first().and_then(|p| s.groups.get(p));
        out["parent"] = serde_json::json!(parent.map(|p| p.pk));
        match parent {
            Some(p) => out["parent_name"] = p.name.clone().into(),
            None if s.release.root_parent_name_null() => out["parent_name"] = Json::Null,
            None => {}
        }
    }
    out
}

/// Which expansions a user request asked for (as far as the release honours them).
struct UserFlags {
    groups: bool,
    roles: bool,
}

impl UserFlags {
    fn from(p: &Params, release: Release) -> Self {
        Self {
            groups: p.include(release, "include_groups", true),
            roles: p.flag("include_roles", true),
        }
    }
}

/// A user with the fields of the release imitated.
fn user_out(s: &State, u: &SimUser, f: &UserFlags) -> Json {
    let release = s.release;
    let groups_obj = f.groups.then(|| {
        u.groups
            .iter()
            .filter_map(|g| s.groups.get(g))
            .map(|g| user_group_out(s, g))
            .collect::<Vec<_>>()
    });
    let mut out = serde_json::json!({
        "pk": u.pk,
        "username": u.username,
        "name": u.name,
        "is_active": u.is_active,
        "last_login": Json::Null,
        "is_superuser": s.is_superuser(u),
        "groups": u.groups,
        "groups_obj": groups_obj,
        "email": u.email,
        "avatar": "/static/dist/assets/images/user_default.png",
        "attributes": u.attributes,
        "uid": uid(u.pk),
        "path": u.path,
        "type": u.user_type.as_str(),
        "uuid": u.uuid,
    });
    if release.password_change_date() {
        out["password_change_date"] = serde_json::json!(u.date_joined);
    }
    if release.date_joined() {
        out["date_joined"] = serde_json::json!(u.date_joined);
    }
    if release.since_2025_8() {
        out["last_updated"] = serde_json::json!(u.last_updated);
    }
    if release.since_2025_12() {
        out["roles"] = serde_json::json!([]);
        out["roles_obj"] = if f.roles {
            serde_json::json!([])
        } else {
            Json::Null
        };
    }
    out
}

/// The user ordering keys the release knows (DRF drops the others silently).
fn user_key(release: Release, field: &str) -> Option<fn(&SimUser, &SimUser) -> CmpOrdering> {
    Some(match field {
        "pk" => |a, b| a.pk.cmp(&b.pk),
        "username" => |a, b| a.username.cmp(&b.username).then(a.pk.cmp(&b.pk)),
        "name" => |a, b| a.name.cmp(&b.name).then(a.pk.cmp(&b.pk)),
        "email" => |a, b| a.email.cmp(&b.email).then(a.pk.cmp(&b.pk)),
        "last_updated" if release.since_2025_8() => {
            |a, b| a.last_updated.cmp(&b.last_updated).then(a.pk.cmp(&b.pk))
        }
        "date_joined" if release.date_joined() => {
            |a, b| a.date_joined.cmp(&b.date_joined).then(a.pk.cmp(&b.pk))
        }
        _ => return None,
    })
}

async fn list_users(AxState(sim): AxState<AuthentikSim>, RawQuery(raw): RawQuery) -> Response {
    let p = Params::parse(raw);
    let release = sim.release();
    // Before 2025.8 the `last_updated` filters do not exist: ignored.
    let (last_updated_gt, last_updated_lt) = if release.since_2025_8() {
        match (p.time("last_updated__gt"), p.time("last_updated__lt")) {
            (Ok(gt), Ok(lt)) => (gt, lt),
            (Err(key), _) | (_, Err(key)) => {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(serde_json::json!({ key: ["Enter a valid date/time."] })),
                )
                    .into_response();
            }
        }
    } else {
        (None, None)
    };
    let types = p.all("type");
    let is_active = p.boolean("is_active");
    let username = p.get("username");
    let name = p.get("name");
    let email = p.get("email");
    let flags = UserFlags::from(&p, release);
    let keep = |u: &&SimUser| {
        (types.is_empty() || types.contains(&u.user_type.as_str()))
            && is_active.is_none_or(|a| u.is_active == a)
            && username.is_none_or(|n| u.username == n)
            && name.is_none_or(|n| u.name == n)
            && email.is_none_or(|n| u.email == n)
            && last_updated_gt.is_none_or(|t| u.last_updated > t)
            && last_updated_lt.is_none_or(|t| u.last_updated < t)
    };
    let ordering = p.get("ordering").unwrap_or("username");
    let (desc, field) = match ordering.strip_prefix('-') {
        Some(f) => (true, f),
        None => (false, ordering),
    };
    // An unknown key is dropped: the default order (`username`).
    let (desc, field) = match user_key(release, field) {
        Some(_) => (desc, field),
        None => (false, "username"),
    };
    let s = sim.read();
    let out = |u: &SimUser| user_out(&s, u, &flags);
    if field == "pk" && !desc {
        // Stored in pk order: stream without collecting.
        let count = s.users.values().filter(keep).count();
        return page_of(&p, release, count, s.users.values().filter(keep), out);
    }
    let cmp = user_key(release, field).unwrap_or(|a, b| a.pk.cmp(&b.pk));
    let mut matched: Vec<&SimUser> = s.users.values().filter(keep).collect();
    matched.sort_by(|a, b| if desc { cmp(b, a) } else { cmp(a, b) });
    page_of(&p, release, matched.len(), matched.iter().copied(), out)
}

/// A user by its pk, with the expansions the request asks for.
fn user_by_pk(s: &State, pk: &str, p: &Params) -> Option<Json> {
    let u = s.users.get(&pk.parse().ok()?)?;
    Some(user_out(s, u, &UserFlags::from(p, s.release)))
}

// ---- groups ----

/// Which expansions a group request asked for (as far as the release honours them).
struct GroupFlags {
    users: bool,
    parents: bool,
    children: bool,
    inherited_roles: bool,
}

impl GroupFlags {
    fn from(p: &Params, release: Release) -> Self {
        Self {
            users: p.include(release, "include_users", true),
            parents: p.flag("include_parents", false),
            children: p.flag("include_children", false),
            inherited_roles: p.flag("include_inherited_roles", false),
        }
    }
}

fn related(s: &State, pks: &[Uuid]) -> Json {
    pks.iter()
        .filter_map(|pk| s.groups.get(pk))
        .map(|g| {
            serde_json::json!({
                "pk": g.pk,
                "name": g.name,
                "is_superuser": g.is_superuser,
                "attributes": g.attributes,
                "group_uuid": g.pk,
            })
        })
        .collect()
}

/// A group with the fields of the release imitated: one `parent` up to
/// 2025.10, `parents` since 2025.12, `children` since 2025.8.
fn group_out(s: &State, g: &SimGroup, f: &GroupFlags) -> Json {
    let release = s.release;
    let users_obj = f.users.then(|| {
        g.members
            .iter()
            .filter_map(|pk| s.users.get(pk))
            .map(|u| {
                serde_json::json!({
                    "pk": u.pk,
                    "username": u.username,
                    "name": u.name,
                    "is_active": u.is_active,
                    "last_login": Json::Null,
                    "email": u.email,
                    "attributes": u.attributes,
                    "uid": uid(u.pk),
                })
            })
            .collect::<Vec<_>>()
    });
    let mut out = serde_json::json!({
        "pk": g.pk,
        "num_pk": g.num_pk,
        "name": g.name,
        "is_superuser": g.is_superuser,
        "users": g.members,
        "users_obj": users_obj,
        "attributes": g.attributes,
        "roles": [],
        "roles_obj": [],
    });
    if release.since_2025_12() {
        out["parents"] = serde_json::json!(g.parents);
        out["parents_obj"] = if f.parents {
            related(s, &g.parents)
        } else {
            Json::Null
        };
        out["inherited_roles_obj"] = if f.inherited_roles {
            serde_json::json!([])
        } else {
            Json::Null
        };
    } else {
        let parent = g.parents.first().and_then(|p| s.groups.get(p));
        out["parent"] = serde_json::json!(parent.map(|p| p.pk));
        out["parent_name"] = serde_json::json!(parent.map(|p| &p.name));
    }
    if release.since_2025_8() {
        let children = s.children(g.pk);
        out["children_obj"] = if f.children {
            related(s, &children)
        } else {
            Json::Null
        };
        out["children"] = serde_json::json!(children);
    }
    out
}

async fn list_groups(AxState(sim): AxState<AuthentikSim>, RawQuery(raw): RawQuery) -> Response {
    let p = Params::parse(raw);
    let release = sim.release();
    let flags = GroupFlags::from(&p, release);
    let name = p.get("name");
    let is_superuser = p.boolean("is_superuser");
    let members_by_pk: Vec<i64> = p
        .all("members_by_pk")
        .iter()
        .filter_map(|v| v.parse().ok())
        .collect();
    let ordering = p.get("ordering").unwrap_or("name");
    let s = sim.read();
    let mut matched: Vec<&SimGroup> = s
        .groups
        .values()
        .filter(|g| {
            name.is_none_or(|n| g.name == n)
                && is_superuser.is_none_or(|v| g.is_superuser == v)
                && (members_by_pk.is_empty() || members_by_pk.iter().any(|m| g.members.contains(m)))
        })
        .collect();
    match ordering {
        "-name" => matched.sort_by(|a, b| b.name.cmp(&a.name).then(b.pk.cmp(&a.pk))),
        "pk" | "group_uuid" => matched.sort_by_key(|g| g.pk),
        "num_pk" => matched.sort_by_key(|g| g.num_pk),
        // `name`, and unknown keys (dropped): the default order.
        _ => matched.sort_by(|a, b| a.name.cmp(&b.name).then(a.pk.cmp(&b.pk))),
    }
    page_of(&p, release, matched.len(), matched.iter().copied(), |g| {
        group_out(&s, g, &flags)
    })
}

/// A group by its pk, with the expansions the request asks for.
fn group_by_pk(s: &State, pk: &str, p: &Params) -> Option<Json> {
    let g = s.groups.get(&Uuid::parse_str(pk).ok()?)?;
    Some(group_out(s, g, &GroupFlags::from(p, s.release)))
}

/// `POST /core/groups/{pk}/add_user/` (`add`) or `…/remove_user/`, with
/// `{"pk": <user pk>}`: 204.
fn membership_change(add: bool) -> MethodRouter<AuthentikSim> {
    post(
        move |AxState(sim): AxState<AuthentikSim>, Path(pk): Path<String>, body: Bytes| async move {
            change_membership(&sim, &pk, &body, add)
        },
    )
}

/// authentik's `GroupViewSet.add_user`/`remove_user`: an unknown group or
/// user is 404; otherwise `group.users.add`/`remove` and 204. Django sends
/// `m2m_changed` even when the membership was already so, and authentik
/// records `model_updated` on the group (only) either way.
fn change_membership(sim: &AuthentikSim, group: &str, body: &[u8], add: bool) -> Response {
    let group = Uuid::parse_str(group)
        .ok()
        .filter(|g| sim.read().groups.contains_key(g));
    let Some(group) = group else {
        return detail(StatusCode::NOT_FOUND, "No Group matches the given query.");
    };
    let user = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|b| match b.get("pk")? {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        })
        .filter(|u| sim.read().users.contains_key(u));
    let Some(user) = user else {
        return detail(StatusCode::NOT_FOUND, "Not found.");
    };
    sim.mutate(super::Mode::Evented, |s, ev| {
        if add {
            s.link(group, user);
        } else {
            s.unlink(group, user);
        }
        ev.extend(s.group_event("model_updated", group));
    });
    StatusCode::NO_CONTENT.into_response()
}

// ---- events ----

fn event_out(e: &SimEvent) -> serde_json::Value {
    let mut out = serde_json::json!({
        "pk": e.pk,
        "user": {"pk": 1, "email": "root@localhost", "username": "akadmin"},
        "action": e.action,
        "app": "authentik.events.middleware",
        "context": {
            "model": {
                "app": "authentik_core",
                "model_name": e.model_name,
                "pk": e.model_pk,
                "name": e.model_label,
            },
            "http_request": {"args": {}, "path": "/api/v3/core/", "method": "POST", "request_id": e.pk.simple().to_string(), "user_agent": "entra-sync-sim"},
        },
        "client_ip": "127.0.0.1",
        "created": e.created,
        "expires": e.expires,
        "brand": {"pk": "00000000000000000000000000000000", "app": "authentik_brands", "name": "Default brand", "model_name": "brand"},
    });
    if let Some(diff) = &e.diff {
        out["context"]["diff"] = diff.clone();
    }
    out
}

async fn list_events(AxState(sim): AxState<AuthentikSim>, RawQuery(raw): RawQuery) -> Response {
    let p = Params::parse(raw);
    let action = p.get("action").map(str::to_lowercase);
    // `actions` exists from 2025.8; before, it is ignored.
    let actions = if sim.release().since_2025_8() {
        p.all("actions")
    } else {
        Vec::new()
    };
    let model_app = p.get("context_model_app");
    let model_name = p.get("context_model_name");
    let model_pk = p.get("context_model_pk").map(|v| v.replace('-', ""));
    let ordering = p.get("ordering").unwrap_or("-created").to_owned();
    let mut s = sim.write();
    s.expire_events();
    let mut matched: Vec<&SimEvent> = s
        .events
        .iter()
        .filter(|e| {
            action.as_deref().is_none_or(|a| e.action.contains(a))
                && (actions.is_empty() || actions.contains(&e.action))
                && model_app.is_none_or(|a| a == "authentik_core")
                && model_name.is_none_or(|n| n == e.model_name)
                && model_pk.as_deref().is_none_or(|pk| match &e.model_pk {
                    serde_json::Value::String(s) => s == pk,
                    other => other.as_i64().is_some_and(|n| pk.parse() == Ok(n)),
                })
        })
        .collect();
    let mut keys = Vec::new();
    for term in ordering.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (desc, field) = term
            .strip_prefix('-')
            .map(|f| (true, f))
            .unwrap_or((false, term));
        match field {
            "created" | "pk" | "action" => keys.push((desc, field.to_owned())),
            // DRF's OrderingFilter drops unknown fields silently.
            _ => {}
        }
    }
    if keys.is_empty() {
        keys.push((true, "created".to_owned()));
    }
    matched.sort_by(|a, b| {
        keys.iter().fold(CmpOrdering::Equal, |acc, (desc, field)| {
            acc.then_with(|| {
                let o = match field.as_str() {
                    "created" => a.created.cmp(&b.created),
                    "pk" => a.pk.cmp(&b.pk),
                    _ => a.action.cmp(b.action),
                };
                if *desc { o.reverse() } else { o }
            })
        })
    });
    page_of(
        &p,
        s.release,
        matched.len(),
        matched.iter().copied(),
        event_out,
    )
}
