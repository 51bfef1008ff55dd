//! The long-running producer: leadership, health, readiness and metrics,
//! against the real PostgreSQL and RabbitMQ and the simulators.

mod common;

use common::Env;
use entra_sync_core::secret::Secret;
use entra_sync_producer::scheduler::ProviderSchedule;
use entra_sync_producer::service::{Intervals, ProducerError, ProducerParts, run_on};
use entra_sync_producer::webhook::WebhookSecret;
use entra_sync_provider::RunTrigger;
use entra_sync_store::Store;
use entra_sync_store::runs::RunState;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const HOOK_SECRET: &str = "hook-secret";

fn parts(env: &Env, store: Store, providers: Vec<ProviderSchedule>) -> ProducerParts {
    ProducerParts {
        store,
        amqp_url: Secret::new(env.vhost.url()),
        topology: env.topology.clone(),
        authentik: env.ctx.authentik.clone(),
        webhook_secret: WebhookSecret::new(HOOK_SECRET),
        listen: "127.0.0.1:0".parse().unwrap(),
        status_listen: None,
        intervals: Intervals {
            events_poll: Duration::from_millis(200),
            watermark_poll: None,
            run_poll: Duration::from_millis(50),
            schedule_tick: Duration::from_millis(100),
            leader_retry: Duration::from_millis(100),
            leader_check: Duration::from_millis(100),
        },
        providers,
    }
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ProducerError>>,
}

impl Running {
    async fn start(parts: ProducerParts) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run_on(listener, parts, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn is_leader(&self) -> bool {
        self.get("/metrics")
            .await
            .1
            .contains("entra_sync_producer_leader 1\n")
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(8), &mut self.task)
            .await
            .expect("the producer stops within a few seconds")
            .unwrap()
            .unwrap();
    }
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn one_of_two_producers_leads_and_the_other_takes_over_when_it_stops() {
    let env = Env::new().await;
    let a = Running::start(parts(&env, env.store().clone(), vec![])).await;
    eventually("a leads", async || a.is_leader().await).await;
    let b = Running::start(parts(&env, env.store().clone(), vec![])).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(a.is_leader().await);
    assert!(!b.is_leader().await, "only one producer is active");
    assert_eq!(b.get("/readyz").await.0, 200, "a standby is ready");
    a.stop().await;
    eventually("b takes over", async || b.is_leader().await).await;
    b.stop().await;
}

#[tokio::test]
async fn the_leader_syncs_a_new_provider_and_reports_health_and_metrics() {
    let env = Env::new().await;
    env.add_user("adele", "adele@contoso.com");
    let _worker = env.worker(Duration::ZERO).await;
    let provider = ProviderSchedule {
        provider: env.provider("p"),
        full_sync_interval: Duration::from_secs(3600),
    };
    let producer = Running::start(parts(&env, env.store().clone(), vec![provider])).await;
    assert_eq!(producer.get("/healthz").await.0, 200);
    eventually("the first full sync is done", async || {
        env.store()
            .latest_run("p")
            .await
            .unwrap()
            .is_some_and(|r| r.state == RunState::Done)
    })
    .await;
    let run = env.store().latest_run("p").await.unwrap().unwrap();
    assert_eq!(run.trigger, "provider_created");
    assert_eq!(producer.get("/readyz").await, (200, "ready\n".into()));
    let (status, metrics) = producer.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("entra_sync_producer_leader 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("entra_sync_full_syncs_started_total{provider=\"p\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("entra_sync_tasks_published_total{lane=\"bulk\"} 1\n"),
        "{metrics}"
    );
    assert!(!metrics.contains(HOOK_SECRET) && !metrics.contains("guest"));
    let hook = reqwest::Client::new()
        .post(format!("http://{}/hooks/authentik", producer.addr))
        .bearer_auth(HOOK_SECRET)
        .json(&serde_json::json!({"body": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status().as_u16(), 204);
    producer.stop().await;
}

#[tokio::test]
async fn without_postgresql_the_producer_is_alive_but_not_ready() {
    let env = Env::new().await;
    let nowhere = Store::connect("postgres://nobody:none@127.0.0.1:1/none", 2, None).unwrap();
    let producer = Running::start(parts(&env, nowhere, vec![])).await;
    assert_eq!(producer.get("/healthz").await.0, 200);
    assert_eq!(producer.get("/readyz").await.0, 503);
    assert!(!producer.is_leader().await);
    producer.stop().await;
}

#[tokio::test]
async fn a_leader_whose_lock_session_dies_steps_down() {
    let env = Env::new().await;
    let a = Running::start(parts(&env, env.store().clone(), vec![])).await;
    eventually("a leads", async || a.is_leader().await).await;
    let role = entra_sync_producer::service::LEADER_ROLE;
    let conn = env.store().conn().await.unwrap();
    // The store's advisory-lock key: `entra-sync/<database>/<connection options>/leader/<role>`.
    let database: String = conn
        .query_one("SELECT current_database()::text", &[])
        .await
        .unwrap()
        .get(0);
    let key = format!(
        "entra-sync/{database}/-c search_path={}/leader/{role}",
        env.db.schema
    );
    let killed = conn
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks
             WHERE locktype = 'advisory' AND objsubid = 1 AND granted
               AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)",
            &[&key],
        )
        .await
        .unwrap();
    assert_eq!(
        killed.get::<_, i64>(0),
        1,
        "the leader's lock session is found"
    );
    // Take the lock before the producer can take it back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let held = loop {
        if let Some(l) = env.store().try_lead(role).await.unwrap() {
            break l;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lock is released"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    eventually("a steps down", async || !a.is_leader().await).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !a.is_leader().await,
        "it stays on standby while another holds the lock"
    );
    held.resign().await.unwrap();
    eventually("a leads again", async || a.is_leader().await).await;
    a.stop().await;
}

#[tokio::test]
async fn a_rejected_authentik_token_halts_every_provider_from_the_events_follower() {
    let env = Env::new().await;
    let store = env.store();
    for provider in ["p", "q"] {
        store.register_provider(provider, "h").await.unwrap();
        let run = store
            .start_run(provider, RunTrigger::OnDemand)
            .await
            .unwrap()
            .id();
        store.finish_run(run, RunState::Done, None).await.unwrap();
    }
    let schedule = |name: &str| ProviderSchedule {
        provider: env.provider(name),
        full_sync_interval: Duration::from_secs(3600),
    };
    let mut parts = parts(&env, store.clone(), vec![schedule("p"), schedule("q")]);
    let mut config = entra_sync_authentik::ClientConfig::new(
        env.authentik.base_url().parse().unwrap(),
        entra_sync_authentik::ApiToken::new("wrong-token"),
    );
    config.retry = entra_sync_authentik::RetryPolicy {
        max_attempts: 1,
        backoff: entra_sync_core::backoff::Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(1),
        },
    };
    parts.authentik = entra_sync_authentik::AuthentikClient::new(config).unwrap();
    let producer = Running::start(parts).await;
    for provider in ["p", "q"] {
        eventually("the provider is halted", async || {
            store.halt_of(provider).await.unwrap().is_some()
        })
        .await;
        let reason = store.halt_of(provider).await.unwrap().unwrap().reason;
        assert!(
            reason.starts_with("authentik (events follower): "),
            "{reason}"
        );
        assert!(!reason.contains("wrong-token"), "no secret in the reason");
    }
    producer.stop().await;
}

#[tokio::test]
async fn a_webhook_that_reaches_a_standby_wakes_the_active_producer() {
    let env = Env::new().await;
    let provider = || ProviderSchedule {
        provider: env.provider("p"),
        full_sync_interval: Duration::from_secs(3600),
    };
    // Polls so rare that only a webhook can explain a quick hand-off.
    let rarely = |mut p: ProducerParts| {
        p.intervals.events_poll = Duration::from_secs(120);
        p
    };
    let _worker = env.worker(Duration::ZERO).await;
    let a = Running::start(rarely(parts(&env, env.store().clone(), vec![provider()]))).await;
    eventually("a leads", async || a.is_leader().await).await;
    let b = Running::start(rarely(parts(&env, env.store().clone(), vec![provider()]))).await;
    eventually("the events cursor exists", async || {
        env.store()
            .load_cursor(entra_sync_producer::events::EVENTS_CURSOR)
            .await
            .unwrap()
            .is_some()
    })
    .await;
    let published = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("entra_sync_tasks_published_total{lane=\"direct\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = published(&a.get("/metrics").await.1);
    env.authentik.sim.create_user(
        entra_sync_sim::authentik::NewUser {
            username: "hooked".into(),
            name: "Hooked".into(),
            email: "hooked@contoso.com".into(),
            is_active: true,
            ..Default::default()
        },
        entra_sync_sim::authentik::Mode::Evented,
    );
    assert!(!b.is_leader().await);
    let hook = reqwest::Client::new()
        .post(format!("http://{}/hooks/authentik", b.addr))
        .bearer_auth(HOOK_SECRET)
        .json(&serde_json::json!({"body": "model_created"}))
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status().as_u16(), 204);
    eventually("the leader handed the change off", async || {
        published(&a.get("/metrics").await.1) > before
    })
    .await;
    b.stop().await;
    a.stop().await;
}
