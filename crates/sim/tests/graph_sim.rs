//! The Graph simulator over HTTP: token endpoint, auth, validation, throttling,
//! replication delay, paging, `$batch`, faults and the `/_sim` endpoints.

mod common;

use common::{access_token, no_throttle, token};
use entra_sync_sim::graph::{
    FaultConfig, GraphSim, RuQuota, SimApp, SimConfig, ThrottleConfig, TokenFormat, shapes,
};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

struct Api {
    sim: GraphSim,
    http: Client,
    token: String,
}

impl Api {
    async fn start(config: SimConfig) -> Self {
        let sim = GraphSim::start(config).await.unwrap();
        let http = Client::new();
        let token = access_token(&http, &sim).await;
        Self { sim, http, token }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1.0{path}", self.sim.base_url())
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Response {
        let mut r = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            r = r.json(&body);
        }
        r.send().await.unwrap()
    }

    async fn get(&self, path: &str) -> Response {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Response {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> Response {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Response {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// GETs an absolute URL, such as an `@odata.nextLink`, and reads the answer as JSON.
    async fn follow(&self, url: &str) -> Value {
        let r = self.http.get(url).bearer_auth(&self.token).send().await;
        r.unwrap().json().await.unwrap()
    }

    /// GETs `path` and reads the answer as JSON, whatever its status.
    async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.unwrap()
    }

    /// Adds `member` to `group` through `members/$ref`.
    async fn add_member(&self, group: &str, member: &str) -> Response {
        self.post(
            &format!("/groups/{group}/members/$ref"),
            json!({"@odata.id": reference(member)}),
        )
        .await
    }

    /// Restores a deleted object from `deletedItems`.
    async fn restore(&self, id: &str) -> Response {
        self.send(
            reqwest::Method::POST,
            &format!("/directory/deletedItems/{id}/restore"),
            None,
        )
        .await
    }

    /// Calls one of the simulator's own `/_sim` endpoints, which need no token.
    async fn control(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Response {
        let mut r = self
            .http
            .request(method, format!("{}/_sim{path}", self.sim.base_url()));
        if let Some(body) = body {
            r = r.json(body);
        }
        r.send().await.unwrap()
    }

    async fn create_user(&self, alias: &str) -> String {
        let r = self.post("/users", user(alias)).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn create_group(&self, name: &str) -> String {
        let r = self.post("/groups", json!({"displayName": name, "mailEnabled": false, "mailNickname": name, "securityEnabled": true})).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn user(alias: &str) -> Value {
    json!({
        "accountEnabled": true,
        "displayName": alias,
        "mailNickname": alias,
        "userPrincipalName": format!("{alias}@contoso.com"),
        "passwordProfile": {"password": "Str0ng!Passw0rd"}
    })
}

fn reference(id: &str) -> String {
    format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")
}

async fn error_of(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json::<Value>().await.unwrap()["error"].clone())
}

/// Asserts that `r` is a Graph error with this status and code, and returns the error.
async fn assert_error(r: Response, status: u16, code: &str) -> Value {
    let (got, error) = error_of(r).await;
    assert_eq!((got, error["code"].as_str()), (status, Some(code)));
    error
}

#[tokio::test]
async fn token_endpoint_issues_tokens_and_refuses_bad_credentials() {
    let sim = GraphSim::start(SimConfig::default()).await.unwrap();
    let http = Client::new();
    let ok: Value = token(&http, &sim, "contoso.com", SimConfig::CLIENT_SECRET)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ok["token_type"], "Bearer");
    assert_eq!(ok["expires_in"], 3599);

    let r = token(&http, &sim, SimConfig::TENANT_ID, "wrong").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215:")
    );
    assert_eq!(body["error_codes"], json!([7000215]));

    let r = token(&http, &sim, "fabrikam.com", SimConfig::CLIENT_SECRET).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS90002:")
    );
}

#[tokio::test]
async fn graph_requires_a_valid_unexpired_token() {
    let api = Api::start(SimConfig {
        token_lifetime: Duration::from_secs(1),
        ..no_throttle()
    })
    .await;
    let anonymous = api.http.get(api.url("/users")).send().await.unwrap();
    assert_error(anonymous, 401, "InvalidAuthenticationToken").await;
    assert_eq!(api.get("/users").await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, error) = error_of(api.get("/users").await).await;
    assert_eq!(status, 401);
    assert_eq!(
        error["message"],
        "Access token has expired or is not yet valid."
    );
}

#[tokio::test]
async fn organization_lists_verified_domains() {
    let api = Api::start(SimConfig {
        domains: vec!["contoso.com".into(), "fabrikam.com".into()],
        ..no_throttle()
    })
    .await;
    let body = api.get_json("/organization").await;
    let domains = &body["value"][0]["verifiedDomains"];
    assert_eq!(domains[0]["name"], "contoso.com");
    assert_eq!(domains[0]["isDefault"], true);
    assert_eq!(domains[1]["name"], "fabrikam.com");
}

#[tokio::test]
async fn users_crud_with_graph_statuses() {
    let api = Api::start(no_throttle()).await;
    let r = api.post("/users", user("adele")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let created: Value = r.json().await.unwrap();
    assert!(created.get("passwordProfile").is_none());
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        api.patch(&format!("/users/{id}"), json!({"jobTitle": "CEO"}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let read = api
        .get_json(&format!("/users/{id}?$select=jobTitle,accountEnabled"))
        .await;
    assert_eq!(
        read,
        json!({"id": id, "jobTitle": "CEO", "accountEnabled": true})
    );
    let by_upn = api.get_json("/users/adele%40contoso.com").await;
    assert_eq!(by_upn["id"], id);
    assert_eq!(
        api.delete(&format!("/users/{id}")).await.status(),
        StatusCode::NO_CONTENT
    );
    let gone = api.get(&format!("/users/{id}")).await;
    assert_error(gone, 404, "Request_ResourceNotFound").await;
}

#[tokio::test]
async fn validation_answers_follow_graph() {
    let api = Api::start(no_throttle()).await;
    let mut missing = user("x");
    missing.as_object_mut().unwrap().remove("passwordProfile");
    let (status, error) = error_of(api.post("/users", missing).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        error["message"],
        "A value is required for property 'passwordProfile' of resource 'User'."
    );

    let mut bad = user("y");
    bad["userPrincipalName"] = json!("y@fabrikam.com");
    assert_error(api.post("/users", bad).await, 400, "Request_BadRequest").await;

    let mut bad = user("z");
    bad["favourite"] = json!(1);
    let (_, error) = error_of(api.post("/users", bad).await).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("'favourite' does not exist")
    );

    let mut weak = user("w");
    weak["passwordProfile"] = json!({"password": "password"});
    let (_, error) = error_of(api.post("/users", weak).await).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("password complexity")
    );

    api.create_user("dup").await;
    let duplicate = api.post("/users", user("DUP")).await;
    let error = assert_error(duplicate, 400, "Request_BadRequest").await;
    assert_eq!(
        error["message"],
        "Another object with the same value for property userPrincipalName already exists."
    );
    assert_eq!(error["details"][0]["code"], "ObjectConflict");
    assert_eq!(error["details"][0]["target"], "userPrincipalName");

    let mail_enabled = json!({"displayName": "M", "mailEnabled": true, "mailNickname": "m", "securityEnabled": true});
    let (status, error) = error_of(api.post("/groups", mail_enabled).await).await;
    assert_eq!(status, 400);
    assert!(error["message"].as_str().unwrap().contains("mail-enabled"));
}

#[tokio::test]
async fn membership_rules() {
    let api = Api::start(no_throttle()).await;
    let g = api.create_group("team").await;
    let (a, b, c) = (
        api.create_user("a").await,
        api.create_user("b").await,
        api.create_user("c").await,
    );
    assert_eq!(
        api.add_member(&g, &a).await.status(),
        StatusCode::NO_CONTENT
    );
    let (status, error) = error_of(api.add_member(&g, &a).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        error["message"],
        "One or more added object references already exist for the following modified properties: 'members'."
    );

    // A bind PATCH with one present member fails whole and adds none.
    let bind = json!({"members@odata.bind": [reference(&b), reference(&a), reference(&c)]});
    assert_eq!(
        api.patch(&format!("/groups/{g}"), bind).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(api.sim.members(&g), vec![a.clone()]);
    let bind = json!({"members@odata.bind": [reference(&b), reference(&c)]});
    assert_eq!(
        api.patch(&format!("/groups/{g}"), bind).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.sim.members(&g).len(), 3);
    let many: Vec<String> = (0..21)
        .map(|i| reference(&format!("00000000-0000-0000-0000-{i:012}")))
        .collect();
    assert_eq!(
        api.patch(&format!("/groups/{g}"), json!({"members@odata.bind": many}))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );

    let members = api
        .get_json(&format!("/groups/{g}/members?$select=id"))
        .await;
    assert_eq!(members["value"].as_array().unwrap().len(), 3);
    assert_eq!(members["value"][0]["@odata.type"], "#microsoft.graph.user");

    assert_eq!(
        api.delete(&format!("/groups/{g}/members/{a}/$ref"))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let removed_again = api.delete(&format!("/groups/{g}/members/{a}/$ref")).await;
    assert_error(removed_again, 404, "Request_ResourceNotFound").await;

    let dl = api
        .sim
        .seed_group(json!({"displayName": "DL", "mailEnabled": true, "securityEnabled": false}))
        .unwrap();
    let (status, _) = error_of(api.add_member(&dl, &a).await).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn new_objects_are_invisible_until_replicated() {
    let api = Api::start(SimConfig {
        replication_delay: Duration::from_millis(400),
        ..no_throttle()
    })
    .await;
    let u = api.create_user("fresh").await;
    let g = api.create_group("fresh").await;
    assert_eq!(
        api.get(&format!("/users/{u}")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.patch(&format!("/users/{u}"), json!({"jobTitle": "x"}))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let (status, error) = error_of(api.add_member(&g, &u).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        error["message"],
        "The source resource object or one of the objects being referenced don't exist."
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        api.get(&format!("/users/{u}")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        api.add_member(&g, &u).await.status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn paging_2500_users_gives_three_pages_with_opaque_links() {
    let api = Api::start(no_throttle()).await;
    let users = (0..2_500)
        .map(|i| json!({"userPrincipalName": format!("u{i}@contoso.com"), "displayName": "U"}))
        .collect();
    api.sim
        .seed(entra_sync_sim::graph::Seed {
            users,
            ..Default::default()
        })
        .unwrap();
    let mut next = Some(api.url("/users?$select=id,userPrincipalName&$top=999"));
    let mut sizes = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    while let Some(url) = next {
        let page = api.follow(&url).await;
        let value = page["value"].as_array().unwrap();
        sizes.push(value.len());
        for u in value {
            assert_eq!(
                u.as_object().unwrap().len(),
                2,
                "only the selected properties"
            );
            ids.insert(u["id"].as_str().unwrap().to_string());
        }
        next = page["@odata.nextLink"].as_str().map(str::to_string);
        if let Some(link) = &next {
            assert!(
                link.contains("%24skiptoken=") || link.contains("$skiptoken="),
                "{link}"
            );
            let last = value.last().unwrap()["id"].as_str().unwrap();
            assert!(!link.contains(last), "the token does not show the id");
        }
    }
    assert_eq!(sizes, vec![999, 999, 502]);
    assert_eq!(ids.len(), 2_500);
    let default_page = api.get_json("/users").await;
    assert_eq!(default_page["value"].as_array().unwrap().len(), 100);
    assert_eq!(
        api.get("/users?$top=1000").await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn filters_eq_and_in() {
    let api = Api::start(no_throttle()).await;
    let id = api.create_user("o'neil").await;
    api.create_user("b").await;
    let body = api
        .get_json("/users?$filter=userPrincipalName%20eq%20'O''NEIL@contoso.com'")
        .await;
    assert_eq!(body["value"][0]["id"], id);
    let body = api
        .get_json("/users?$filter=displayName%20in%20('b','o''neil')&$select=id")
        .await;
    assert_eq!(body["value"].as_array().unwrap().len(), 2);
    let body = api
        .get_json(&format!("/users?$filter=id%20eq%20'{id}'"))
        .await;
    assert_eq!(body["value"].as_array().unwrap().len(), 1);
    let unsupported = api.get("/users?$filter=jobTitle%20eq%20'x'").await;
    assert_error(unsupported, 400, "Request_UnsupportedQuery").await;
}

fn tiny_writes() -> SimConfig {
    let throttle = ThrottleConfig {
        write_quota: 2,
        write_window: Duration::from_secs(2),
        ru_quota: RuQuota::Fixed(1_000),
        ..ThrottleConfig::default()
    };
    SimConfig {
        throttle,
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn throttling_answers_429_with_graph_shape_and_headers() {
    let api = Api::start(tiny_writes()).await;
    let first = api.post("/users", user("a")).await;
    assert_eq!(first.headers()["x-ms-resource-unit"], "1");
    api.create_user("b").await;
    let r = api.post("/users", user("c")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "1");
    let scope = r.headers()["x-ms-throttle-scope"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        scope,
        format!(
            "Tenant_Application/Write/{}/{}",
            SimConfig::CLIENT_ID,
            SimConfig::TENANT_ID
        )
    );
    assert_eq!(
        r.headers()["x-ms-throttle-information"],
        "WriteLimitExceeded"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TooManyRequests");
    assert_eq!(body["error"]["message"], "Please retry again later.");
    assert_eq!(body["error"]["innerError"]["status"], "429");
    // Before Retry-After has passed: another 429, even though the bucket refills meanwhile.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        api.post("/users", user("c")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Reads are not throttled by the write quota.
    assert_eq!(api.get("/users").await.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        api.post("/users", user("c")).await.status(),
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn limit_percentage_is_sent_above_80_percent() {
    let throttle = ThrottleConfig {
        ru_quota: RuQuota::Fixed(10),
        read_window: Duration::from_secs(60),
        ..ThrottleConfig::default()
    };
    let api = Api::start(SimConfig {
        throttle,
        ..SimConfig::default()
    })
    .await;
    let mut shares = Vec::new();
    for _ in 0..9 {
        let r = api.get("/groups").await;
        shares.push(
            r.headers()
                .get("x-ms-throttle-limit-percentage")
                .map(|v| v.to_str().unwrap().to_string()),
        );
    }
    assert!(shares[..8].iter().all(Option::is_none), "{shares:?}");
    assert_eq!(shares[8].as_deref(), Some("0.90"));
}

#[tokio::test]
async fn batch_runs_inner_requests_and_throttles_them_individually() {
    let api = Api::start(tiny_writes()).await;
    let requests: Vec<Value> = (0..3)
        .map(|i| json!({"id": format!("{i}"), "method": "POST", "url": "/users", "headers": {"Content-Type": "application/json"}, "body": user(&format!("b{i}"))}))
        .chain([json!({"id": "read", "method": "GET", "url": "/users?$select=id"})])
        .collect();
    let r = api.post("/$batch", json!({"requests": requests})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    let responses = body["responses"].as_array().unwrap();
    let by_id = |id: &str| responses.iter().find(|r| r["id"] == id).unwrap().clone();
    assert_eq!(by_id("0")["status"], 201);
    assert_eq!(by_id("1")["status"], 201);
    let throttled = by_id("2");
    assert_eq!(throttled["status"], 429);
    assert_eq!(throttled["headers"]["Retry-After"], "1");
    assert_eq!(throttled["body"]["error"]["code"], "TooManyRequests");
    assert_eq!(by_id("read")["status"], 200);
    let counters = api.sim.counters();
    assert_eq!(counters.with_status("POST", "users", 429), 1);
    assert_eq!(counters.get("POST", "$batch"), 1);

    let too_many: Vec<Value> = (0..21)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users"}))
        .collect();
    assert_eq!(
        api.post("/$batch", json!({"requests": too_many}))
            .await
            .status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn faults_are_seeded_and_changeable_at_run_time() {
    let api = Api::start(no_throttle()).await;
    let faults = FaultConfig {
        seed: 7,
        error_rate: 0.5,
        ..FaultConfig::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let faults = serde_json::to_value(&faults).unwrap();
        let r = api
            .control(reqwest::Method::PUT, "/faults", Some(&faults))
            .await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let mut statuses = Vec::new();
        for _ in 0..20 {
            statuses.push(api.get("/groups").await.status().as_u16());
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1], "same seed, same faults");
    assert!(runs[0].iter().any(|s| [500, 503, 504].contains(s)));
    assert!(runs[0].contains(&200));

    api.sim.set_faults(FaultConfig {
        drop_rate: 1.0,
        ..FaultConfig::default()
    });
    let dropped = api
        .http
        .get(api.url("/groups"))
        .bearer_auth(&api.token)
        .send()
        .await;
    let failed = match dropped {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(failed, "the connection was dropped");
    api.sim.set_faults(FaultConfig {
        latency_min_ms: 200,
        latency_max_ms: 200,
        ..FaultConfig::default()
    });
    let started = std::time::Instant::now();
    assert_eq!(api.get("/groups").await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn sim_endpoints_seed_dump_and_count() {
    let api = Api::start(no_throttle()).await;
    let seed = json!({
        "users": [{"id": "11111111-1111-1111-1111-111111111111", "userPrincipalName": "s@contoso.com"}],
        "groups": [{"id": "22222222-2222-2222-2222-222222222222", "displayName": "G"}],
        "members": [{"group": "22222222-2222-2222-2222-222222222222", "member": "11111111-1111-1111-1111-111111111111"}]
    });
    let ids: Value = api
        .control(reqwest::Method::POST, "/seed", Some(&seed))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids["users"][0], "11111111-1111-1111-1111-111111111111");
    let state: Value = api
        .control(reqwest::Method::GET, "/state", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        state["memberships"]["22222222-2222-2222-2222-222222222222"],
        json!(["11111111-1111-1111-1111-111111111111"])
    );
    api.get("/users").await;
    api.delete("/users/11111111-1111-1111-1111-111111111111")
        .await;
    let counters: Value = api
        .control(reqwest::Method::GET, "/counters", None)
        .await
        .json()
        .await
        .unwrap();
    let rows = counters.as_array().unwrap();
    assert!(rows.iter().any(|r| r["method"] == "GET"
        && r["path"] == "users"
        && r["status"] == 200
        && r["count"] == 1));
    assert!(
        rows.iter()
            .any(|r| r["method"] == "DELETE" && r["path"] == "users/{id}" && r["status"] == 204)
    );
    assert_eq!(api.sim.mutating_requests(), 1);
    assert_eq!(api.sim.counters().get("POST", "token"), 1);
}

#[tokio::test]
async fn group_kinds_keep_graphs_shapes_and_select_returns_them() {
    let api = Api::start(no_throttle()).await;
    let kinds = [
        shapes::security_group("Security"),
        shapes::microsoft_365_group("M365", "contoso.com"),
        shapes::dynamic_group("Dynamic", "(user.department -eq \"Sales\")"),
        shapes::mail_enabled_security_group("MailSec", "contoso.com"),
        shapes::distribution_group("Dist", "contoso.com"),
        shapes::role_assignable_group("Admins"),
        shapes::on_premises_group("Synced"),
    ];
    let select = "displayName,groupTypes,mailEnabled,securityEnabled,isAssignableToRole,onPremisesSyncEnabled,membershipRule";
    for kind in kinds {
        let id = api.sim.seed_group(kind.clone()).unwrap();
        let listed = api
            .get_json(&format!("/groups/{id}?$select={select}"))
            .await;
        for property in select.split(',') {
            assert_eq!(
                listed[property],
                kind.get(property).cloned().unwrap_or(Value::Null),
                "{property} of {kind}"
            );
        }
    }
    let bare = api
        .sim
        .seed_group(json!({"displayName": "Bare", "mailEnabled": false, "securityEnabled": true}))
        .unwrap();
    let listed = api
        .get_json(&format!("/groups/{bare}?$select=groupTypes"))
        .await;
    assert_eq!(
        listed["groupTypes"],
        json!([]),
        "Graph always has groupTypes"
    );
}

#[tokio::test]
async fn writes_graph_refuses_answer_with_its_errors() {
    let api = Api::start(no_throttle()).await;
    let user = api.create_user("a").await;
    let denied = "Authorization_RequestDenied";
    for kind in [
        shapes::dynamic_group("Dynamic", "(user.accountEnabled -eq true)"),
        shapes::mail_enabled_security_group("MailSec", "contoso.com"),
        shapes::distribution_group("Dist", "contoso.com"),
        shapes::role_assignable_group("Admins"),
    ] {
        let g = api.sim.seed_group(kind.clone()).unwrap();
        let (status, error) = error_of(api.add_member(&g, &user).await).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (403, Some(denied)),
            "{kind}"
        );
        assert_eq!(
            error["message"],
            "Insufficient privileges to complete the operation."
        );
    }
    let m365 = api
        .sim
        .seed_group(shapes::microsoft_365_group("Team", "contoso.com"))
        .unwrap();
    assert_eq!(
        api.add_member(&m365, &user).await.status(),
        StatusCode::NO_CONTENT
    );

    let dist = api
        .sim
        .seed_group(shapes::distribution_group("Read only", "contoso.com"))
        .unwrap();
    let (status, error) = error_of(
        api.patch(&format!("/groups/{dist}"), json!({"description": "x"}))
            .await,
    )
    .await;
    assert_eq!(status, 400);
    assert!(error["message"].as_str().unwrap().contains("mail-enabled"));

    let synced = api
        .sim
        .seed_user(shapes::on_premises_user("legacy@contoso.com"))
        .unwrap();
    for response in [
        api.patch(&format!("/users/{synced}"), json!({"jobTitle": "x"}))
            .await,
        api.delete(&format!("/users/{synced}")).await,
    ] {
        let (status, error) = error_of(response).await;
        assert_eq!(status, 400);
        assert_eq!(
            error["message"],
            "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration."
        );
    }

    let admin = api.create_user("admin").await;
    let refuse = api
        .control(
            reqwest::Method::POST,
            &format!("/refused-writes/{admin}"),
            None,
        )
        .await;
    assert_eq!(refuse.status(), StatusCode::NO_CONTENT);
    for response in [
        api.patch(&format!("/users/{admin}"), json!({"jobTitle": "x"}))
            .await,
        api.delete(&format!("/users/{admin}")).await,
    ] {
        assert_error(response, 403, denied).await;
    }
    assert_eq!(
        api.get(&format!("/users/{admin}")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        api.patch(&format!("/users/{user}"), json!({"jobTitle": "x"}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
}

/// The claims of a JWT access token.
fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

#[tokio::test]
async fn tokens_carry_the_grants_that_graph_enforces() {
    let mut api = Api::start(no_throttle()).await;
    assert_eq!(
        claims(&api.token)["roles"],
        json!(SimApp::DEFAULT_ROLES),
        "a JWT with the granted permissions in roles"
    );
    assert_eq!(claims(&api.token)["tid"], SimConfig::TENANT_ID);
    let roles = format!("/apps/{}/roles", SimConfig::CLIENT_ID);
    let granted = api
        .control(
            reqwest::Method::PUT,
            &roles,
            Some(&json!(["User.Read.All"])),
        )
        .await;
    assert_eq!(granted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        api.post("/users", user("old-token")).await.status(),
        StatusCode::CREATED,
        "a token keeps the grants it was issued with"
    );
    api.token = access_token(&api.http, &api.sim).await;
    assert_eq!(claims(&api.token)["roles"], json!(["User.Read.All"]));
    assert_eq!(api.get("/users").await.status(), StatusCode::OK);
    let denied = api.post("/users", user("new-token")).await;
    assert_error(denied, 403, "Authorization_RequestDenied").await;
    assert_eq!(api.get("/groups").await.status(), StatusCode::FORBIDDEN);

    api.sim
        .set_app_roles(SimConfig::CLIENT_ID, &["Group.ReadWrite.All"]);
    api.sim.revoke_tokens();
    api.token = access_token(&api.http, &api.sim).await;
    let role_group = json!({"displayName": "Admins", "mailEnabled": false, "mailNickname": "admins",
        "securityEnabled": true, "isAssignableToRole": true});
    assert_eq!(
        api.post("/groups", role_group).await.status(),
        StatusCode::FORBIDDEN,
        "role-assignable groups need RoleManagement.ReadWrite.Directory"
    );
    assert_eq!(api.create_group("plain").await.len(), 36);
}

#[tokio::test]
async fn tokens_without_a_roles_claim_still_work() {
    for format in [TokenFormat::JwtWithoutRoles, TokenFormat::Opaque] {
        let api = Api::start(SimConfig {
            apps: vec![SimApp {
                token_format: format,
                ..SimApp::new(SimConfig::CLIENT_ID, SimConfig::CLIENT_SECRET)
            }],
            ..no_throttle()
        })
        .await;
        match format {
            TokenFormat::Opaque => assert!(!api.token.contains('.'), "{}", api.token.len()),
            _ => assert!(claims(&api.token).get("roles").is_none()),
        }
        api.create_user("works").await;
    }
}

#[tokio::test]
async fn deleted_objects_wait_in_deleted_items_and_restore_with_their_id_and_memberships() {
    let api = Api::start(no_throttle()).await;
    let user = api.create_user("adele").await;
    let group = api.create_group("staff").await;
    assert_eq!(
        api.add_member(&group, &user).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.delete(&format!("/users/{user}")).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(api.sim.members(&group).is_empty());
    let listed = api
        .get_json("/directory/deletedItems/microsoft.graph.user?$select=id,userPrincipalName")
        .await;
    assert_eq!(listed["value"][0]["id"], json!(user));
    let item = api
        .get_json(&format!("/directory/deletedItems/{user}"))
        .await;
    assert_eq!(item["@odata.type"], json!("#microsoft.graph.user"));
    assert!(item["deletedDateTime"].is_string());

    let r = api.restore(&user).await;
    assert_eq!(r.status(), StatusCode::OK);
    let restored: Value = r.json().await.unwrap();
    assert_eq!(restored["id"], json!(user));
    assert_eq!(
        api.get(&format!("/users/{user}")).await.status(),
        StatusCode::OK
    );
    assert_eq!(api.sim.members(&group), vec![user.clone()]);
    let (status, _) = error_of(api.get(&format!("/directory/deletedItems/{user}")).await).await;
    assert_eq!(status, 404);

    // A security group is kept too, and comes back with its members.
    assert_eq!(
        api.delete(&format!("/groups/{group}")).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.sim.deleted_items(), vec![group.clone()]);
    let r = api.restore(&group).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(api.sim.members(&group), vec![user]);
}

#[tokio::test]
async fn portal_changes_bypass_the_apps_rules_and_a_purged_item_is_gone() {
    let api = Api::start(no_throttle()).await;
    let user = api.create_user("adele").await;
    let group = api.create_group("staff").await;
    api.sim.seed_member(&group, &user).unwrap();
    api.sim.refuse_writes(&user);
    api.sim
        .portal_update(&user, json!({"displayName": "Renamed", "jobTitle": null}))
        .unwrap();
    let read = api
        .get_json(&format!("/users/{user}?$select=displayName"))
        .await;
    assert_eq!(read["displayName"], json!("Renamed"));
    api.sim.portal_remove_member(&group, &user).unwrap();
    assert!(api.sim.members(&group).is_empty());
    api.sim.portal_delete(&user).unwrap();
    api.sim.portal_purge(&user).unwrap();
    assert!(api.sim.deleted_items().is_empty());
    let r = api.restore(&user).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(api.sim.portal_delete(&user).is_err());
}
