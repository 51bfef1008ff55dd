//! The simulator's `/_sim/...` control routes, as the demo and benchmarks use them.

use entra_sync_sim::authentik::{self, SimConfig, SimStats};
use serde_json::json;

#[tokio::test]
async fn the_control_routes_mutate_evented_or_silently() {
    let sim = authentik::start(SimConfig::new("t")).await.unwrap();
    let base = sim.base_url();
    let http = reqwest::Client::new();
    let summary: serde_json::Value = http
        .post(format!("{base}_sim/generate"))
        .json(&json!({"seed": 5, "users": 20, "groups": 6}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(summary["users"], 23);
    assert_eq!(
        sim.sim.events().len(),
        0,
        "generation is an import: no events"
    );

    let created: serde_json::Value = http
        .post(format!("{base}_sim/users"))
        .json(&json!({"username": "jdoe", "name": "J Doe", "email": "j@contoso.com"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let pk = created["pk"].as_i64().unwrap();
    let group: serde_json::Value = http
        .post(format!("{base}_sim/groups?silent=true"))
        .json(&json!({"name": "Ops"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let g = group["pk"].as_str().unwrap().to_owned();
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(
            http.post(format!("{base}_sim/groups/{g}/members/{pk}"))
                .send()
                .await
                .unwrap()
        ),
        204
    );
    assert_eq!(
        status(
            http.patch(format!("{base}_sim/users/{pk}?silent=true"))
                .json(&json!({"is_active": false}))
                .send()
                .await
                .unwrap()
        ),
        204
    );
    assert_eq!(
        status(
            http.delete(format!("{base}_sim/groups/{g}"))
                .send()
                .await
                .unwrap()
        ),
        204
    );
    assert_eq!(
        status(
            http.delete(format!("{base}_sim/users/999999"))
                .send()
                .await
                .unwrap()
        ),
        404
    );

    let actions: Vec<_> = sim
        .sim
        .events()
        .iter()
        .map(|e| (e.action, e.model_name))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("model_created", "user"),
            // A member added from the group's side: an event on the group only.
            ("model_updated", "group"),
            ("model_deleted", "group"),
        ]
    );
    assert!(!sim.sim.user(pk).unwrap().is_active);
    let stats: SimStats = http
        .get(format!("{base}_sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats.users, 24);
    assert_eq!(stats.events, 3);
}
