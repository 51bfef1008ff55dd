//! The simulator's `/_sim/...` control routes, as the demo and benchmarks use them.

mod common;

use common::event_kinds;
use entra_sync_sim::authentik::{self, RunningSim, SimConfig, SimStats};
use reqwest::{Method, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Calls the control route `/_sim/{path}`, with `body` as JSON if given.
async fn control(sim: &RunningSim, method: Method, path: &str, body: Option<Value>) -> Response {
    let url = format!("{}_sim/{path}", sim.base_url());
    let request = reqwest::Client::new().request(method, url);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.unwrap()
}

/// Calls a control route and reads its answer.
async fn control_json<T: DeserializeOwned>(
    sim: &RunningSim,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> T {
    let answer = control(sim, method, path, body).await;
    answer.json().await.unwrap()
}

#[tokio::test]
async fn the_control_routes_mutate_evented_or_silently() {
    let sim = authentik::start(SimConfig::new("t")).await.unwrap();
    let spec = json!({"seed": 5, "users": 20, "groups": 6});
    let summary: Value = control_json(&sim, Method::POST, "generate", Some(spec)).await;
    assert_eq!(summary["users"], 23);
    assert_eq!(
        sim.sim.events().len(),
        0,
        "generation is an import: no events"
    );

    let jdoe = json!({"username": "jdoe", "name": "J Doe", "email": "j@contoso.com"});
    let created: Value = control_json(&sim, Method::POST, "users", Some(jdoe)).await;
    let pk = created["pk"].as_i64().unwrap();
    let ops = json!({"name": "Ops"});
    let group: Value = control_json(&sim, Method::POST, "groups?silent=true", Some(ops)).await;
    let g = group["pk"].as_str().unwrap().to_owned();
    let deactivate = json!({"is_active": false});
    for (method, path, body, status) in [
        (Method::POST, format!("groups/{g}/members/{pk}"), None, 204),
        (
            Method::PATCH,
            format!("users/{pk}?silent=true"),
            Some(deactivate),
            204,
        ),
        (Method::DELETE, format!("groups/{g}"), None, 204),
        (Method::DELETE, "users/999999".to_owned(), None, 404),
    ] {
        let answer = control(&sim, method, &path, body).await;
        assert_eq!(answer.status().as_u16(), status, "{path}");
    }

    assert_eq!(
        event_kinds(&sim.sim),
        vec![
            ("model_created", "user"),
            // A member added from the group's side: an event on the group only.
            ("model_updated", "group"),
            ("model_deleted", "group"),
        ]
    );
    assert!(!sim.sim.user(pk).unwrap().is_active);
    let stats: SimStats = control_json(&sim, Method::GET, "stats", None).await;
    assert_eq!(stats.users, 24);
    assert_eq!(stats.events, 3);
}
