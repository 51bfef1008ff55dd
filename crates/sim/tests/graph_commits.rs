//! The Graph simulator's answers lost after commit, the group upsert by
//! `uniqueName`, and soft-deleted groups in `directory/deletedItems`.

mod common;

use common::{access_token, no_throttle};
use entra_sync_sim::graph::{CommitFault, GraphSim, LostAnswer};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

struct Api {
    sim: GraphSim,
    http: Client,
    token: String,
}

impl Api {
    async fn start() -> Self {
        let sim = GraphSim::start(no_throttle()).await.unwrap();
        let http = Client::new();
        let token = access_token(&http, &sim).await;
        Self { sim, http, token }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        prefer: Option<&str>,
    ) -> reqwest::Result<Response> {
        let mut r = self
            .http
            .request(method, format!("{}/v1.0{path}", self.sim.base_url()))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            r = r.json(&body);
        }
        if let Some(prefer) = prefer {
            r = r.header("Prefer", prefer);
        }
        r.send().await
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        self.send(method, path, body, None).await.unwrap()
    }

    async fn upsert(&self, key: &str, name: &str) -> Response {
        self.send(
            Method::PATCH,
            &format!("/groups(uniqueName='{key}')"),
            Some(group(name)),
            Some("create-if-missing"),
        )
        .await
        .unwrap()
    }

    fn groups(&self) -> Vec<Value> {
        self.sim.state()["groups"].as_array().unwrap().clone()
    }
}

fn group(name: &str) -> Value {
    json!({"displayName": name, "mailEnabled": false, "mailNickname": name, "securityEnabled": true})
}

async fn error_of(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json::<Value>().await.unwrap()["error"].clone())
}

#[tokio::test]
async fn a_create_answered_504_after_commit_was_done_and_the_next_request_is_answered() {
    let api = Api::start().await;
    api.sim.fail_after_commit(CommitFault::on(
        "POST",
        "groups",
        1,
        LostAnswer::Status(504),
    ));
    let (status, error) =
        error_of(api.call(Method::POST, "/groups", Some(group("g1"))).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (504, Some("GatewayTimeout"))
    );
    assert_eq!(
        api.groups().len(),
        1,
        "the group was created before the 504"
    );
    // A failing request is not committed, so it does not use the rule up.
    let r = api.call(Method::POST, "/groups", Some(group("g2"))).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(api.sim.counters().with_status("POST", "groups", 504), 1);
}

#[tokio::test]
async fn rules_fire_only_on_committed_requests_and_can_drop_the_connection() {
    let api = Api::start().await;
    api.sim
        .fail_after_commit(CommitFault::next(1, LostAnswer::Drop));
    // Refused by validation: nothing committed, the rule waits.
    let r = api
        .call(Method::POST, "/groups", Some(json!({"displayName": "x"})))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let dropped = api
        .send(Method::POST, "/groups", Some(group("g")), None)
        .await;
    let failed = match dropped {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(failed, "the connection was dropped");
    assert_eq!(api.groups().len(), 1, "the group exists anyway");
    assert_eq!(api.sim.counters().with_status("POST", "groups", 0), 1);

    // Through the control API: set, then cleared.
    let control = format!("{}/_sim/faults/after-commit", api.sim.base_url());
    let rule = json!({"method": "GET", "path": "groups", "times": 5, "answer": {"status": 503}});
    let r = api.http.post(&control).json(&rule).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(api.call(Method::GET, "/groups", None).await.status(), 503);
    let r = api.http.delete(&control).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(api.call(Method::GET, "/groups", None).await.status(), 200);
}

#[tokio::test]
async fn the_upsert_creates_once_then_updates_and_needs_the_prefer_header() {
    let api = Api::start().await;
    let r = api
        .call(
            Method::PATCH,
            "/groups(uniqueName='k1')",
            Some(group("Sales")),
        )
        .await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "without Prefer, an update"
    );

    let r = api.upsert("k1", "Sales").await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["uniqueName"], "k1");
    assert_eq!(created["displayName"], "Sales");
    let r = api.upsert("k1", "Sales-EMEA").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let groups = api.groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["displayName"], "Sales-EMEA");

    // Read by key, with the path form of the group-upsert page too.
    for path in ["/groups(uniqueName='K1')", "/groups/(uniqueName='k1')"] {
        let r = api
            .call(Method::GET, &format!("{path}?$select=id,uniqueName"), None)
            .await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.json::<Value>().await.unwrap()["id"], created["id"]);
    }
    let r = api
        .call(Method::GET, "/groups?$filter=uniqueName eq 'k1'", None)
        .await;
    assert_eq!(
        r.json::<Value>().await.unwrap()["value"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn unique_name_is_unique_and_immutable_once_set() {
    let api = Api::start().await;
    let mut body = group("A");
    body["uniqueName"] = json!("taken");
    let r = api.call(Method::POST, "/groups", Some(body.clone())).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, error) = error_of(api.call(Method::POST, "/groups", Some(body)).await).await;
    assert_eq!(status, 400);
    assert_eq!(error["details"][0]["code"], "ObjectConflict");
    assert_eq!(error["details"][0]["target"], "uniqueName");

    let r = api
        .call(
            Method::PATCH,
            &format!("/groups/{id}"),
            Some(json!({"uniqueName": "other"})),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "immutable once set");
    // A group made elsewhere has none; it may be set once.
    let r = api.call(Method::POST, "/groups", Some(group("B"))).await;
    let b = r.json::<Value>().await.unwrap();
    assert_eq!(b["uniqueName"], Value::Null);
    let path = format!("/groups/{}", b["id"].as_str().unwrap());
    let r = api
        .call(Method::PATCH, &path, Some(json!({"uniqueName": "b-key"})))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = api
        .call(Method::PATCH, &path, Some(json!({"uniqueName": "b-other"})))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_deleted_group_keeps_its_unique_name_until_restored_or_purged() {
    let api = Api::start().await;
    let user = api
        .call(
            Method::POST,
            "/users",
            Some(json!({
                "accountEnabled": true, "displayName": "u", "mailNickname": "u",
                "userPrincipalName": "u@contoso.com",
                "passwordProfile": {"password": "Str0ng!Passw0rd"}
            })),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let created: Value = api.upsert("k", "G").await.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    api.sim.seed_member(id, &user).unwrap();
    let r = api
        .call(Method::DELETE, &format!("/groups/{id}"), None)
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(api.groups().is_empty());
    assert_eq!(
        api.call(Method::GET, "/groups(uniqueName='k')", None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // The key is held by the deleted group: the upsert conflicts.
    let (status, error) = error_of(api.upsert("k", "G").await).await;
    assert_eq!(
        (status, error["details"][0]["code"].as_str()),
        (400, Some("ObjectConflict"))
    );
    let r = api
        .call(
            Method::GET,
            "/directory/deletedItems/microsoft.graph.group?$filter=uniqueName eq 'k'&$select=id,uniqueName,deletedDateTime",
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let listed: Value = r.json().await.unwrap();
    assert_eq!(listed["value"][0]["id"], id);
    assert!(listed["value"][0]["deletedDateTime"].is_string());

    let r = api
        .call(
            Method::POST,
            &format!("/directory/deletedItems/{id}/restore"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let restored: Value = r.json().await.unwrap();
    assert_eq!(restored["@odata.type"], "#microsoft.graph.group");
    assert_eq!(restored["uniqueName"], "k");
    assert_eq!(api.sim.members(id), vec![user], "members come back");
    assert_eq!(api.upsert("k", "G").await.status(), StatusCode::NO_CONTENT);

    // Purged, the key is free again.
    api.call(Method::DELETE, &format!("/groups/{id}"), None)
        .await;
    let r = api
        .call(
            Method::DELETE,
            &format!("/directory/deletedItems/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(api.upsert("k", "G").await.status(), StatusCode::CREATED);
    assert_eq!(api.groups().len(), 1);
}
