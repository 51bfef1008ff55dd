//! The control API, `/_sim/...`: mutations for the demo, benchmarks and
//! out-of-process tests. Every mutation takes `?silent=true` to make it
//! without events (like a background LDAP import).
//!
//! | route | body | does |
//! |---|---|---|
//! | `POST /_sim/users` | [`NewUser`] | create a user → `{"pk": …}` |
//! | `PATCH /_sim/users/{pk}` | [`UserPatch`] | update a user |
//! | `DELETE /_sim/users/{pk}` | | delete a user |
//! | `POST /_sim/groups` | [`NewGroup`] | create a group → `{"pk": …}` |
//! | `PATCH /_sim/groups/{pk}` | [`GroupPatch`] | update a group |
//! | `DELETE /_sim/groups/{pk}` | | delete a group |
//! | `POST /_sim/groups/{pk}/members/{user}` | | add a member from the group's side (event on the group) |
//! | `DELETE /_sim/groups/{pk}/members/{user}` | | remove a member from the group's side |
//! | `POST /_sim/generate` | [`OrgSpec`] | build an organisation (silently) → [`OrgSummary`] |
//! | `GET /_sim/stats` | | [`SimStats`](super::SimStats) |

use super::{AuthentikSim, GroupPatch, Mode, NewGroup, NewUser, OrgSpec, UserPatch};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

/// `?silent=true` on a mutation.
#[derive(Debug, Deserialize)]
pub struct Silent {
    #[serde(default)]
    silent: bool,
}

impl Silent {
    fn mode(&self) -> Mode {
        if self.silent {
            Mode::Silent
        } else {
            Mode::Evented
        }
    }
}

fn done(found: bool) -> Response {
    if found {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

pub(crate) fn router(sim: AuthentikSim) -> Router {
    Router::new()
        .route("/_sim/users", post(create_user))
        .route("/_sim/users/{pk}", patch(update_user).delete(delete_user))
        .route("/_sim/groups", post(create_group))
        .route(
            "/_sim/groups/{pk}",
            patch(update_group).delete(delete_group),
        )
        .route(
            "/_sim/groups/{pk}/members/{user}",
            post(add_member).delete(remove_member),
        )
        .route("/_sim/generate", post(generate))
        .route("/_sim/stats", get(stats))
        .with_state(sim)
}

async fn create_user(
    State(sim): State<AuthentikSim>,
    Query(q): Query<Silent>,
    Json(body): Json<NewUser>,
) -> Response {
    let pk = sim.create_user(body, q.mode());
    (StatusCode::CREATED, Json(serde_json::json!({ "pk": pk }))).into_response()
}

async fn update_user(
    State(sim): State<AuthentikSim>,
    Path(pk): Path<i64>,
    Query(q): Query<Silent>,
    Json(body): Json<UserPatch>,
) -> Response {
    done(sim.update_user(pk, body, q.mode()))
}

async fn delete_user(
    State(sim): State<AuthentikSim>,
    Path(pk): Path<i64>,
    Query(q): Query<Silent>,
) -> Response {
    done(sim.delete_user(pk, q.mode()))
}

async fn create_group(
    State(sim): State<AuthentikSim>,
    Query(q): Query<Silent>,
    Json(body): Json<NewGroup>,
) -> Response {
    let pk = sim.create_group(body, q.mode());
    (StatusCode::CREATED, Json(serde_json::json!({ "pk": pk }))).into_response()
}

async fn update_group(
    State(sim): State<AuthentikSim>,
    Path(pk): Path<Uuid>,
    Query(q): Query<Silent>,
    Json(body): Json<GroupPatch>,
) -> Response {
    done(sim.update_group(pk, body, q.mode()))
}

async fn delete_group(
    State(sim): State<AuthentikSim>,
    Path(pk): Path<Uuid>,
    Query(q): Query<Silent>,
) -> Response {
    done(sim.delete_group(pk, q.mode()))
}

async fn add_member(
    State(sim): State<AuthentikSim>,
    Path((pk, user)): Path<(Uuid, i64)>,
    Query(q): Query<Silent>,
) -> Response {
    done(sim.add_member(pk, user, q.mode()))
}

async fn remove_member(
    State(sim): State<AuthentikSim>,
    Path((pk, user)): Path<(Uuid, i64)>,
    Query(q): Query<Silent>,
) -> Response {
    done(sim.remove_member(pk, user, q.mode()))
}

async fn generate(State(sim): State<AuthentikSim>, Json(spec): Json<OrgSpec>) -> Response {
    Json(sim.generate(&spec)).into_response()
}

async fn stats(State(sim): State<AuthentikSim>) -> Response {
    Json(sim.stats()).into_response()
}
