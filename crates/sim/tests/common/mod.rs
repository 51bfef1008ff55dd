//! What the simulator's tests (and its benchmark) share: a Graph token over
//! HTTP, an unthrottled Graph simulator, and the kinds of authentik events.

#![allow(dead_code)]

use entra_sync_sim::authentik::AuthentikSim;
use entra_sync_sim::graph::{GraphSim, SimConfig, ThrottleConfig};
use reqwest::{Client, Response};
use serde_json::Value;

/// Asks the Graph simulator's token endpoint for a client-credentials token.
pub async fn token(http: &Client, sim: &GraphSim, tenant: &str, secret: &str) -> Response {
    http.post(format!("{}/{tenant}/oauth2/v2.0/token", sim.base_url()))
        .form(&[
            ("client_id", SimConfig::CLIENT_ID),
            ("scope", "https://graph.microsoft.com/.default"),
            ("client_secret", secret),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap()
}

/// A fresh access token for the default app.
pub async fn access_token(http: &Client, sim: &GraphSim) -> String {
    let answer = token(http, sim, SimConfig::TENANT_ID, SimConfig::CLIENT_SECRET).await;
    answer.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The default Graph simulator without throttling.
pub fn no_throttle() -> SimConfig {
    SimConfig {
        throttle: ThrottleConfig::disabled(),
        ..SimConfig::default()
    }
}

/// The (action, model) of every event authentik recorded, oldest first.
pub fn event_kinds(sim: &AuthentikSim) -> Vec<(&'static str, &'static str)> {
    sim.events()
        .iter()
        .map(|e| (e.action, e.model_name))
        .collect()
}
