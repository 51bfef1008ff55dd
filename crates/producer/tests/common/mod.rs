//! A test environment: a per-test schema and vhost, both simulators, and a
//! stand-in worker that consumes the bulk queue and reports each object done
//! through the store, as real workers do; and [`sink`], a change sink for the
//! followers' tests.

#![allow(dead_code)]

pub mod sink;

use entra_sync_authentik::{ApiToken, AuthentikClient, ClientConfig, RetryPolicy};
use entra_sync_core::task::{ObjectKind, Task};
use entra_sync_graph::{GraphClient, GraphConfig, Secret};
use entra_sync_producer::full_sync::SyncContext;
use entra_sync_producer::metrics::Metrics;
use entra_sync_provider::Provider;
use entra_sync_queue::testing::TestVhost;
use entra_sync_queue::{Lane, Publisher, Topology};
use entra_sync_sim::authentik::{self, Mode, NewGroup, NewUser, RunningSim};
use entra_sync_sim::graph::{GraphSim, SimConfig};
use entra_sync_store::Store;
use entra_sync_store::testing::TestDatabase;
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const AK_TOKEN: &str = "producer-test-token";

pub struct Env {
    pub db: TestDatabase,
    pub vhost: TestVhost,
    pub amqp: lapin::Connection,
    pub topology: Topology,
    pub graph: GraphSim,
    pub authentik: RunningSim,
    pub ctx: SyncContext,
}

impl Env {
    pub async fn new() -> Self {
        let db = TestDatabase::migrated().await;
        let vhost = TestVhost::new().await;
        let amqp = entra_sync_queue::connect(&vhost.url()).await.unwrap();
        let topology = Topology::new("es");
        let publisher = Publisher::open(&amqp, topology.clone()).await.unwrap();
        let graph = GraphSim::start(SimConfig::default()).await.unwrap();
        let authentik = authentik::start(authentik::SimConfig::new(AK_TOKEN))
            .await
            .unwrap();
        let ctx = SyncContext {
            authentik: authentik_client(&authentik.base_url()),
            store: db.store.clone(),
            publisher,
            poll_interval: Duration::from_millis(50),
            stall_timeout: Duration::from_secs(600),
            metrics: Arc::new(Metrics::default()),
        };
        Self {
            db,
            vhost,
            amqp,
            topology,
            graph,
            authentik,
            ctx,
        }
    }

    pub fn store(&self) -> &Store {
        &self.db.store
    }

    pub fn graph_client(&self) -> GraphClient {
        let config = GraphConfig::new(
            SimConfig::TENANT_ID,
            SimConfig::CLIENT_ID,
            Secret::new(SimConfig::CLIENT_SECRET),
        )
        .with_base_url(&self.graph.base_url());
        GraphClient::new(config).unwrap()
    }

    /// Provider `name` on the Graph simulator: deletes what is gone, up to 500 within 1 h.
    pub fn provider(&self, name: &str) -> Provider {
        entra_sync_provider::testing::provider(name, self.graph_client())
    }

    pub fn add_user(&self, username: &str, email: &str) -> i64 {
        self.authentik.sim.create_user(
            NewUser {
                username: username.into(),
                name: format!("{username} name"),
                email: email.into(),
                ..Default::default()
            },
            Mode::Evented,
        )
    }

    pub fn add_group(&self, name: &str) -> uuid::Uuid {
        self.authentik.sim.create_group(
            NewGroup {
                name: name.into(),
                ..Default::default()
            },
            Mode::Evented,
        )
    }

    /// A worker stand-in on the bulk queue; user tasks take `user_delay` each.
    pub async fn worker(&self, user_delay: Duration) -> FakeWorker {
        FakeWorker::start(
            &self.amqp,
            &self.topology.queue(Lane::Bulk),
            self.db.store.clone(),
            user_delay,
        )
        .await
    }

    /// Every task waiting in (or delivered from) a lane's queue within `wait`.
    pub async fn drain(&self, lane: Lane, wait: Duration) -> Vec<Task> {
        drain(&self.amqp, &self.topology.queue(lane), wait).await
    }
}

pub fn authentik_client(base: &str) -> AuthentikClient {
    let mut config = ClientConfig::new(base.parse().unwrap(), ApiToken::new(AK_TOKEN));
    config.retry = RetryPolicy {
        max_attempts: 2,
        backoff: entra_sync_core::backoff::Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_millis(20),
        },
    };
    AuthentikClient::new(config).unwrap()
}

pub async fn drain(amqp: &lapin::Connection, queue: &str, wait: Duration) -> Vec<Task> {
    let channel = amqp.create_channel().await.unwrap();
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "drain".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    while let Ok(Some(delivery)) = tokio::time::timeout(wait, consumer.next()).await {
        let delivery = delivery.unwrap();
        tasks.push(Task::decode(&delivery.data).unwrap());
        delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    let _ = channel.close(200, "done".into()).await;
    tasks
}

/// Consumes bulk tasks and finishes their run objects, checking on the way
/// that no task of a later phase arrives while an earlier phase has pending objects.
pub struct FakeWorker {
    pub seen: Arc<Mutex<Vec<Task>>>,
    pub violations: Arc<Mutex<Vec<String>>>,
    handle: tokio::task::JoinHandle<()>,
}

impl FakeWorker {
    async fn start(
        amqp: &lapin::Connection,
        queue: &str,
        store: Store,
        user_delay: Duration,
    ) -> Self {
        let channel = amqp.create_channel().await.unwrap();
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                "fake-worker".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (seen.clone(), violations.clone());
        let handle = tokio::spawn(async move {
            let _channel = channel;
            while let Some(Ok(delivery)) = consumer.next().await {
                let task = Task::decode(&delivery.data).unwrap();
                let run = task.run_id.expect("bulk tasks carry their run");
                let earlier = match task.object.kind() {
                    ObjectKind::User => None,
                    ObjectKind::Group => Some(ObjectKind::User),
                    ObjectKind::Membership => Some(ObjectKind::Group),
                };
                if let Some(earlier) = earlier {
                    let pending = store.pending_run_objects(run, earlier).await.unwrap();
                    if !pending.is_empty() {
                        v.lock().unwrap().push(format!(
                            "{} arrived while {} {:?} were pending",
                            task.object, earlier, pending
                        ));
                    }
                } else {
                    tokio::time::sleep(user_delay).await;
                }
                store
                    .finish_run_object(run, task.object.kind(), &task.object.id_string(), false)
                    .await
                    .unwrap();
                s.lock().unwrap().push(task);
                delivery.ack(BasicAckOptions::default()).await.unwrap();
            }
        });
        Self {
            seen,
            violations,
            handle,
        }
    }

    pub fn seen(&self) -> Vec<Task> {
        self.seen.lock().unwrap().clone()
    }

    /// The ids of the objects of `kind` whose tasks it has seen, in order.
    pub fn seen_ids(&self, kind: ObjectKind) -> Vec<String> {
        self.seen()
            .iter()
            .filter(|t| t.object.kind() == kind)
            .map(|t| t.object.id_string())
            .collect()
    }
}

impl Drop for FakeWorker {
    fn drop(&mut self) {
        self.handle.abort();
    }
}
