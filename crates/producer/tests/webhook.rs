//! The webhook: its auth, its limits, and the wake-up it gives the events follower.

use entra_sync_authentik::{ApiToken, AuthentikClient, ClientConfig};
use entra_sync_core::ids::AkUserPk;
use entra_sync_producer::events::{
    ChangeSink, EVENTS_CURSOR, EventFollower, FollowerConfig, Handoff, ObjectChange, SinkError, run,
};
use entra_sync_producer::webhook::{self, MAX_BODY_BYTES, WebhookSecret};
use entra_sync_sim::authentik::{self, Mode, NewUser, SimConfig, WebhookTarget};
use entra_sync_store::testing::TestDatabase;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

const SECRET: &str = "hook-secret-7b1c";

/// Serves the webhook router on a free port; returns its URL and the follower's Notify.
async fn serve() -> (String, Arc<Notify>) {
    let wake = Arc::new(Notify::new());
    let app = webhook::router(WebhookSecret::new(SECRET), wake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{}", listener.local_addr().unwrap(), webhook::PATH);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, wake)
}

async fn woken(wake: &Notify) -> bool {
    tokio::time::timeout(Duration::from_millis(200), wake.notified())
        .await
        .is_ok()
}

fn default_body() -> serde_json::Value {
    serde_json::json!({
        "body": "model_updated: {'model': {'app': 'authentik_core', 'model_name': 'user', 'pk': 5, 'name': 'u'}}",
        "severity": "notice", "user_email": "root@localhost", "user_username": "akadmin",
    })
}

#[tokio::test]
async fn only_the_bearer_secret_is_accepted() {
    let (url, wake) = serve().await;
    let http = reqwest::Client::new();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("hook-secret-7b1c"),
        Some("Basic aG9vaw=="),
        Some("Bearer hook-secret-7b1"),
    ] {
        let mut req = http.post(&url).json(&default_body());
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        assert_eq!(req.send().await.unwrap().status(), 401, "{auth:?}");
    }
    assert!(
        !woken(&wake).await,
        "an unauthenticated call woke the follower"
    );
    let ok = http
        .post(&url)
        .bearer_auth(SECRET)
        .json(&default_body())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 204);
    assert!(woken(&wake).await);
    // Any JSON is fine, e.g. a custom webhook_mapping_body.
    let custom = http
        .post(&url)
        .bearer_auth(SECRET)
        .json(&serde_json::json!(["model_deleted", 5]))
        .send()
        .await
        .unwrap();
    assert_eq!(custom.status(), 204);
    assert!(woken(&wake).await);
    assert_eq!(
        http.get(&url)
            .bearer_auth(SECRET)
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_rejected_without_a_wake_up() {
    let (url, wake) = serve().await;
    let http = reqwest::Client::new();
    for body in [&b"not json"[..], b"", b"{\"body\": ", b"{} trailing"] {
        let r = http
            .post(&url)
            .bearer_auth(SECRET)
            .header("Content-Type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{}", String::from_utf8_lossy(body));
    }
    let huge = serde_json::json!({ "body": "x".repeat(MAX_BODY_BYTES) });
    let r = http
        .post(&url)
        .bearer_auth(SECRET)
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Without a Content-Length (chunked), the limit still holds.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(b"{\"body\": \"".to_vec()),
        Ok(vec![b'y'; MAX_BODY_BYTES]),
        Ok(b"\"}".to_vec()),
    ];
    let r = http
        .post(&url)
        .bearer_auth(SECRET)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(!woken(&wake).await, "a rejected body woke the follower");
}

struct Channel(mpsc::UnboundedSender<Handoff>);

impl ChangeSink for Channel {
    async fn handle(&mut self, handoff: Handoff) -> Result<(), SinkError> {
        self.0.send(handoff).map_err(|e| e.to_string().into())
    }
}

#[tokio::test]
async fn an_authentik_webhook_wakes_the_follower_long_before_its_poll_interval() {
    let db = TestDatabase::migrated().await;
    let (url, wake) = serve().await;
    let mut config = SimConfig::new("api-token");
    config.webhook = Some(WebhookTarget {
        url,
        secret: SECRET.into(),
    });
    let sim = authentik::start(config).await.unwrap();
    let client = AuthentikClient::new(ClientConfig::new(
        sim.base_url().parse().unwrap(),
        ApiToken::new("api-token"),
    ))
    .unwrap();
    let follower = EventFollower::new(client, db.store.clone(), FollowerConfig::new(EVENTS_CURSOR));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let loop_wake = wake.clone();
    let task = tokio::spawn(async move {
        let mut sink = Channel(tx);
        run(
            &follower,
            &mut sink,
            loop_wake,
            Duration::from_secs(3600),
            std::future::pending(),
        )
        .await
    });
    // The first poll finds no cursor and asks for a full sync.
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(first, Handoff::FullSyncNeeded(_)));

    let pk = sim.sim.create_user(
        NewUser {
            username: "hooked".into(),
            ..Default::default()
        },
        Mode::Evented,
    );
    let next = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("woken by the webhook")
        .unwrap();
    match next {
        Handoff::Changes { changes, .. } => {
            assert_eq!(changes, vec![ObjectChange::User(AkUserPk(pk))])
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.sim.stats().webhooks_delivered, 1);
    // A silent change sends no webhook and wakes nothing.
    sim.sim.create_user(
        NewUser {
            username: "quiet".into(),
            ..Default::default()
        },
        Mode::Silent,
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err()
    );
    task.abort();
}
