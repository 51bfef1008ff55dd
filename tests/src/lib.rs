//! The end-to-end harness: one test's own PostgreSQL schema, RabbitMQ vhost,
//! Graph simulator(s) and authentik simulator, a configuration file pointing at
//! them, and the producer and workers run in-process (or as `entra-sync`
//! processes, for the crash tests).

use entra_sync_authentik::{ApiToken, AuthentikClient, ClientConfig, GroupQuery, UserQuery};
use entra_sync_cli::wiring;
use entra_sync_config::{Config, ProcessEnv};
use entra_sync_core::authentik::{AkGroup, AkUser};
use entra_sync_core::mapping::{
    CompiledMapping, Mapped, Mapper, MappingInput, ProviderInfo, Subject,
};
use entra_sync_core::scope::Scope;
use entra_sync_producer::events::{EVENTS_CURSOR, SILENT_SCAN_CURSOR, WATERMARK_CURSOR};
use entra_sync_producer::service::Intervals;
use entra_sync_provider::{Provider, RunTrigger, request_full_sync};
use entra_sync_queue::Topology;
use entra_sync_queue::testing::TestVhost;
use entra_sync_sim::authentik::RunningSim;
use entra_sync_sim::graph::{GraphSim, SimConfig};
use entra_sync_store::runs::{Run, RunState};
use entra_sync_store::testing::TestDatabase;
use futures_util::TryStreamExt;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod bench;
pub mod throwaway;

/// The authentik API token the simulator accepts.
pub const AUTHENTIK_TOKEN: &str = "e2e-authentik-token";
/// The webhook secret.
pub const WEBHOOK_SECRET: &str = "e2e-webhook-secret";
/// The queue prefix of every test (each test has its own vhost).
pub const QUEUE_PREFIX: &str = "e2e";

/// One provider of a test, with the Graph simulator it talks to.
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    /// Provider name.
    pub name: String,
    /// Index into [`Stack::graphs`].
    pub graph: usize,
    /// `filter_group`.
    pub filter_group: Option<String>,
    /// `exclude_users_service_account`.
    pub exclude_service_accounts: bool,
    /// `user_delete_action`.
    pub user_delete_action: String,
    /// `group_delete_action`.
    pub group_delete_action: String,
    /// `dry_run`.
    pub dry_run: bool,
    /// `deletion_threshold`.
    pub deletion_threshold: u32,
    /// Custom mappings: (name, applies_to, expression).
    pub mappings: Vec<(String, String, String)>,
    /// `write_quota` and `write_window` (in seconds).
    pub write_budget: (u32, u64),
    /// `remove_unmanaged_members`.
    pub remove_unmanaged_members: bool,
}

impl ProviderSpec {
    /// A provider with the defaults: no filter, service accounts excluded, delete on delete.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            graph: 0,
            filter_group: None,
            exclude_service_accounts: true,
            user_delete_action: "delete".into(),
            group_delete_action: "delete".into(),
            dry_run: false,
            deletion_threshold: 500,
            mappings: Vec::new(),
            write_budget: (3000, 150),
            remove_unmanaged_members: false,
        }
    }

    /// Two providers on their own Graph tenants: `broken`, whose mapping
    /// `40-department` fails on every user (it halts the provider), and `healthy`.
    pub fn broken_and_healthy() -> Vec<ProviderSpec> {
        let mut broken = ProviderSpec::new("broken");
        broken.mappings.push((
            "40-department".into(),
            "user".into(),
            "return {\"department\": user.attributes[\"no-such-key\"]}".into(),
        ));
        let mut healthy = ProviderSpec::new("healthy");
        healthy.graph = 1;
        vec![broken, healthy]
    }

    fn toml(&self, graph_url: &str) -> String {
        let mut t = format!(
            r#"
[[providers]]
name = "{name}"
tenant_id = "{tenant}"
client_id = "{client}"
client_secret_file = "client-secret"
graph_url = "{graph_url}"
login_url = "{graph_url}"
exclude_users_service_account = {exclude}
user_delete_action = "{uda}"
group_delete_action = "{gda}"
dry_run = {dry}
full_sync_interval = "4h"
deletion_threshold = {threshold}
write_quota = {quota}
write_window = "{window}s"
remove_unmanaged_members = {unmanaged}
"#,
            name = self.name,
            tenant = SimConfig::TENANT_ID,
            client = SimConfig::CLIENT_ID,
            exclude = self.exclude_service_accounts,
            uda = self.user_delete_action,
            gda = self.group_delete_action,
            dry = self.dry_run,
            threshold = self.deletion_threshold,
            quota = self.write_budget.0,
            window = self.write_budget.1,
            unmanaged = self.remove_unmanaged_members,
        );
        if let Some(group) = &self.filter_group {
            t.push_str(&format!("filter_group = {group:?}\n"));
        }
        for (name, applies_to, expression) in &self.mappings {
            t.push_str(&format!(
                "\n[[providers.mappings]]\nname = {name:?}\napplies_to = {applies_to:?}\nexpression = '''\n{expression}\n'''\n"
            ));
        }
        t
    }
}

/// Everything one end-to-end test runs against.
pub struct Stack {
    /// Its own schema.
    pub db: TestDatabase,
    /// Its own vhost.
    pub vhost: TestVhost,
    /// Graph simulators (providers pick one by index).
    pub graphs: Vec<GraphSim>,
    /// The authentik simulator.
    pub authentik: RunningSim,
    /// The providers.
    pub providers: Vec<ProviderSpec>,
    /// Where the configuration and secret files are.
    pub dir: PathBuf,
}

impl Stack {
    /// Starts everything for `providers`, with as many Graph simulators as they name.
    pub async fn start(providers: Vec<ProviderSpec>) -> Self {
        Self::start_with(providers, SimConfig::default()).await
    }

    /// Like [`Stack::start`], with Graph simulators configured by `graph`.
    pub async fn start_with(providers: Vec<ProviderSpec>, graph: SimConfig) -> Self {
        let db = TestDatabase::migrated().await;
        let vhost = TestVhost::new().await;
        Self::start_on(providers, graph, db, vhost).await
    }

    /// Like [`Stack::start`], with an authentik simulator imitating `release`.
    pub async fn start_release(
        providers: Vec<ProviderSpec>,
        release: entra_sync_sim::authentik::Release,
    ) -> Self {
        let authentik =
            entra_sync_sim::authentik::SimConfig::new(AUTHENTIK_TOKEN).with_release(release);
        let db = TestDatabase::migrated().await;
        let vhost = TestVhost::new().await;
        Self::start_configured(providers, SimConfig::default(), authentik, db, vhost).await
    }

    /// Like [`Stack::start_with`], on the database schema `db` and the vhost
    /// `vhost` given (e.g. on throwaway servers, see [`throwaway`]).
    pub async fn start_on(
        providers: Vec<ProviderSpec>,
        graph: SimConfig,
        db: TestDatabase,
        vhost: TestVhost,
    ) -> Self {
        let authentik = entra_sync_sim::authentik::SimConfig::new(AUTHENTIK_TOKEN);
        Self::start_configured(providers, graph, authentik, db, vhost).await
    }

    /// The stack with both simulators configured, on `db` and `vhost`.
    async fn start_configured(
        providers: Vec<ProviderSpec>,
        graph: SimConfig,
        authentik: entra_sync_sim::authentik::SimConfig,
        db: TestDatabase,
        vhost: TestVhost,
    ) -> Self {
        let graph_count = providers.iter().map(|p| p.graph + 1).max().unwrap_or(1);
        let mut graphs = Vec::new();
        for _ in 0..graph_count {
            graphs.push(GraphSim::start(graph.clone()).await.expect("graph sim"));
        }
        let authentik = entra_sync_sim::authentik::start(authentik)
            .await
            .expect("authentik sim");
        let dir = std::env::temp_dir().join(format!("entra-sync-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("client-secret"), SimConfig::CLIENT_SECRET).unwrap();
        std::fs::write(dir.join("authentik-token"), AUTHENTIK_TOKEN).unwrap();
        std::fs::write(dir.join("webhook-secret"), WEBHOOK_SECRET).unwrap();
        let stack = Self {
            db,
            vhost,
            graphs,
            authentik,
            providers,
            dir,
        };
        stack.write_config();
        stack
    }

    /// The first Graph simulator.
    pub fn graph(&self) -> &GraphSim {
        &self.graphs[0]
    }

    /// The configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// Rewrites the configuration file from [`Stack::providers`].
    pub fn write_config(&self) {
        self.write_config_to(&self.config_path(), "127.0.0.1:0", "127.0.0.1:0");
    }

    /// Writes a configuration file for one `entra-sync` process, with its own
    /// free producer and worker ports.
    pub fn process_config(&self) -> ProcessConfig {
        let producer_port = free_port();
        let worker_port = free_port();
        let path = self
            .dir
            .join(format!("config-{producer_port}-{worker_port}.toml"));
        self.write_config_to(
            &path,
            &format!("127.0.0.1:{producer_port}"),
            &format!("127.0.0.1:{worker_port}"),
        );
        ProcessConfig {
            path,
            producer_port,
            worker_port,
        }
    }

    fn write_config_to(&self, path: &std::path::Path, producer_listen: &str, worker_listen: &str) {
        let mut t = format!(
            r#"
[database]
url = "{db}"
max_connections = 16

[amqp]
url = "{amqp}"
queue_prefix = "{QUEUE_PREFIX}"
management_url = "{management}"

[producer]
listen = "{producer_listen}"
events_poll_interval = "300ms"
watermark_poll_interval = "500ms"

[worker]
concurrency = 4
max_attempts = 5
listen = "{worker_listen}"

[authentik]
url = "{ak}"
token_file = "authentik-token"
webhook_secret_file = "webhook-secret"
"#,
            db = self.db.url_with_schema(),
            amqp = self.vhost.url(),
            management = self.vhost.management_url(),
            ak = self.authentik.base_url(),
        );
        for p in &self.providers {
            t.push_str(&p.toml(&self.graphs[p.graph].base_url()));
        }
        std::fs::write(path, t).expect("write config");
    }

    /// The parsed configuration.
    pub fn config(&self) -> Config {
        Config::load(&self.config_path(), &ProcessEnv).expect("valid test configuration")
    }

    /// The authentik client.
    pub fn authentik_client(&self) -> AuthentikClient {
        let url = self.authentik.base_url().parse().expect("sim url");
        AuthentikClient::new(ClientConfig::new(url, ApiToken::new(AUTHENTIK_TOKEN))).unwrap()
    }

    /// Short retry tiers, so retries happen within a test.
    pub fn topology() -> Topology {
        Topology::with_tiers(
            QUEUE_PREFIX,
            &[
                Duration::from_millis(300),
                Duration::from_secs(1),
                Duration::from_secs(3),
            ],
        )
    }

    /// Starts an in-process worker, wired as `entra-sync worker` is, with
    /// short retry delays.
    pub fn worker(&self, concurrency: usize) -> Service {
        self.worker_on(self.db.store.clone(), concurrency)
    }

    /// Like [`Stack::worker`], with a database pool of its own sized as
    /// `entra-sync worker` sizes it, as a separate worker process has.
    pub fn worker_with_own_pool(&self, concurrency: usize) -> Service {
        let store = wiring::store(&self.config(), wiring::worker_pool_size(concurrency))
            .expect("a worker's pool");
        self.worker_on(store, concurrency)
    }

    fn worker_on(&self, store: entra_sync_store::Store, concurrency: usize) -> Service {
        let config = self.config();
        let mut parts = wiring::worker_parts(&config, store, Some(concurrency)).unwrap();
        parts.topology = Self::topology();
        parts.listen = None;
        parts.settings.lock_timeout = Duration::from_secs(10);
        parts.settings.shutdown_grace = Duration::from_secs(5);
        parts.settings.retry_backoff.base = Duration::from_millis(200);
        Service::spawn(|shutdown| async move {
            entra_sync_worker::runner::run(parts, shutdown)
                .await
                .expect("worker runs");
        })
    }

    /// Starts an in-process producer, wired as `entra-sync producer` is, with
    /// short poll intervals.
    pub fn producer(&self) -> Service {
        self.producer_with_stall_timeout(Duration::from_secs(600))
    }

    /// Like [`Stack::producer`], with a phase stalled after `stall_timeout`.
    pub fn producer_with_stall_timeout(&self, stall_timeout: Duration) -> Service {
        let config = self.config();
        let mut parts = wiring::producer_parts(&config, self.db.store.clone()).unwrap();
        parts.topology = Self::topology();
        parts.intervals = Intervals {
            events_poll: Duration::from_millis(300),
            watermark_poll: Some(Duration::from_millis(500)),
            silent_scan: Some(Duration::from_millis(500)),
            release_check: Duration::from_secs(60),
            run_poll: Duration::from_millis(100),
            schedule_tick: Duration::from_millis(200),
            leader_retry: Duration::from_millis(200),
            leader_check: Duration::from_millis(500),
            stall_timeout,
        };
        Service::spawn(|shutdown| async move {
            entra_sync_producer::service::run(parts, shutdown)
                .await
                .expect("producer runs");
        })
    }

    /// A producer and a worker, started; returns once the first full syncs
    /// (the new providers' and the events feed's initial one) are over.
    pub async fn services(&self) -> Services {
        let services = self.services_unsettled();
        self.settle().await;
        services
    }

    /// A producer and a worker, started; returns at once.
    pub fn services_unsettled(&self) -> Services {
        Services {
            producer: self.producer(),
            worker: self.worker(4),
        }
    }

    /// Waits until the events follower and the silent-change follower of
    /// authentik's release (the watermark, or the silent scan before 2025.8)
    /// hold a cursor and no full sync runs.
    pub async fn settle(&self) {
        let store = &self.db.store;
        self.eventually("services settled", Duration::from_secs(60), || async {
            let has = |name| async move { store.load_cursor(name).await.unwrap().is_some() };
            if !has(EVENTS_CURSOR).await
                || !(has(WATERMARK_CURSOR).await || has(SILENT_SCAN_CURSOR).await)
            {
                return false;
            }
            for p in &self.providers {
                match store.latest_run(&p.name).await.unwrap() {
                    Some(run) if run.state != RunState::Running => {}
                    _ => return false,
                }
            }
            true
        })
        .await;
    }

    /// Requests a full sync of `provider` the way `entra-sync sync` does.
    pub async fn request_full_sync(&self, provider: &str) -> uuid::Uuid {
        let config = self.config();
        let p = config.provider(provider).expect("configured provider");
        let store = &self.db.store;
        let provider = Provider::from_config(p, store).unwrap();
        request_full_sync(store, &provider, RunTrigger::OnDemand)
            .await
            .unwrap()
            .run()
            .expect("the provider is not halted")
    }

    /// Waits until run `id` ends; panics after `timeout`.
    pub async fn wait_for_run(&self, id: uuid::Uuid, timeout: Duration) -> Run {
        let started = Instant::now();
        loop {
            let run = self.db.store.run(id).await.unwrap().expect("run exists");
            if run.state != RunState::Running {
                return run;
            }
            assert!(
                started.elapsed() < timeout,
                "run {id} still running after {timeout:?}: {run:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the latest full sync of `provider` has `reached` a point, and
    /// returns it as it is then; panics with `what` after `timeout`.
    pub async fn wait_for_latest_run(
        &self,
        provider: &str,
        what: &str,
        timeout: Duration,
        reached: impl Fn(&Run) -> bool,
    ) -> Run {
        let store = &self.db.store;
        self.eventually(what, timeout, || async {
            let run = store.latest_run(provider).await.unwrap();
            run.is_some_and(|r| reached(&r))
        })
        .await;
        store.latest_run(provider).await.unwrap().expect("a run")
    }

    /// What Entra should hold for `provider`: authentik's state through the provider's mappings.
    pub async fn expected(&self, provider: &str) -> Directory {
        let spec = self
            .providers
            .iter()
            .find(|p| p.name == provider)
            .expect("provider");
        let client = self.authentik_client();
        let users: Vec<AkUser> = client
            .users(&UserQuery::default())
            .try_concat()
            .await
            .expect("list users");
        let groups: Vec<AkGroup> = client
            .groups(&GroupQuery::default())
            .try_concat()
            .await
            .expect("list groups");
        let filter_group = spec.filter_group.as_ref().map(|name| {
            groups
                .iter()
                .find(|g| &g.name == name)
                .expect("filter group exists")
                .pk
        });
        let scope = Scope {
            filter_group,
            exclude_service_accounts: spec.exclude_service_accounts,
        };
        let mapper = Mapper::new(
            spec.mappings
                .iter()
                .map(|(name, applies_to, expr)| {
                    let applies_to = match applies_to.as_str() {
                        "user" => entra_sync_core::mapping::AppliesTo::User,
                        _ => entra_sync_core::mapping::AppliesTo::Group,
                    };
                    CompiledMapping::compile(name, applies_to, expr).expect("mapping compiles")
                })
                .collect(),
        );
        let info = ProviderInfo {
            name: provider.to_owned(),
            tenant_id: SimConfig::TENANT_ID.into(),
            client_id: SimConfig::CLIENT_ID.into(),
            domains: vec!["contoso.com".into()],
        };
        let map = |subject| match mapper.map(&MappingInput {
            subject,
            provider: &info,
            connection: None,
        }) {
            Ok(Mapped::Body(body)) => Some(body),
            _ => None,
        };
        let mut dir = Directory::default();
        let mut upn_of = BTreeMap::new();
        for user in users.iter().filter(|u| scope.includes_user(u)) {
            if let Some(body) = map(Subject::User(user)) {
                let upn = body["userPrincipalName"].as_str().unwrap().to_lowercase();
                upn_of.insert(user.pk, upn.clone());
                dir.users.insert(upn, body);
            }
        }
        for group in &groups {
            if let Some(body) = map(Subject::Group(group)) {
                let name = body["displayName"].as_str().unwrap().to_owned();
                let members = group
                    .users
                    .iter()
                    .filter_map(|pk| upn_of.get(pk).cloned())
                    .collect();
                dir.members.insert(name.clone(), members);
                dir.groups.insert(name, body);
            }
        }
        dir
    }

    /// What the Graph simulator `graph` holds, restricted to the properties
    /// `expected` sets (so Graph's own defaults are not compared).
    pub fn actual(&self, graph: usize, expected: &Directory) -> Directory {
        let state = self.graphs[graph].state();
        let mut dir = Directory::default();
        let mut upn_by_id = BTreeMap::new();
        for user in state["users"].as_array().unwrap() {
            let upn = user["userPrincipalName"].as_str().unwrap().to_lowercase();
            upn_by_id.insert(user["id"].as_str().unwrap().to_lowercase(), upn.clone());
            let keys = expected.users.get(&upn);
            let mut body = restrict(user, keys);
            // Graph compares UPNs without regard to case, and so does
            // entra-sync: a difference in case alone is not drift.
            if let (Some(Value::String(held)), Some(Value::String(wanted))) = (
                body.get("userPrincipalName"),
                keys.and_then(|k| k.get("userPrincipalName")),
            ) && held.eq_ignore_ascii_case(wanted)
            {
                body.insert("userPrincipalName".into(), Value::String(wanted.clone()));
            }
            dir.users.insert(upn, body);
        }
        for group in state["groups"].as_array().unwrap() {
            let name = group["displayName"].as_str().unwrap().to_owned();
            let id = group["id"].as_str().unwrap().to_lowercase();
            let members = state["memberships"][&id]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(|v| upn_by_id.get(&v.as_str().unwrap().to_lowercase()).cloned())
                        .collect()
                })
                .unwrap_or_default();
            assert!(
                dir.groups
                    .insert(name.clone(), restrict(group, expected.groups.get(&name)))
                    .is_none(),
                "two Entra groups named {name:?}"
            );
            dir.members.insert(name, members);
        }
        dir
    }

    /// Deletes a user in Entra behind entra-sync's back, through Graph itself.
    pub async fn delete_user_in_entra(&self, graph: usize, id: &str) {
        let config = entra_sync_graph::GraphConfig::new(
            SimConfig::TENANT_ID,
            SimConfig::CLIENT_ID,
            entra_sync_graph::Secret::new(SimConfig::CLIENT_SECRET),
        )
        .with_base_url(&self.graphs[graph].base_url());
        let client = entra_sync_graph::GraphClient::new(config).unwrap();
        let id = entra_sync_core::ids::EntraObjectId::parse(id).unwrap();
        client.delete_user(&id).await.expect("delete in Entra");
    }

    /// Requests of `method` on the Graph path class `path` (e.g. `users/{id}`) so far.
    pub fn requests(&self, method: &str, path: &str) -> u64 {
        self.graph().counters().get(method, path)
    }

    /// Waits until `check` holds; panics with `what` after `timeout`.
    pub async fn eventually<F, Fut>(&self, what: &str, timeout: Duration, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let started = Instant::now();
        while !check().await {
            assert!(
                started.elapsed() < timeout,
                "not within {timeout:?}: {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An authentik user `name` with the e-mail `name@contoso.com`.
pub fn new_user(name: &str) -> entra_sync_sim::authentik::NewUser {
    entra_sync_sim::authentik::NewUser {
        username: name.to_owned(),
        name: format!("{name} (display)"),
        email: format!("{name}@contoso.com"),
        is_active: true,
        ..Default::default()
    }
}

/// An authentik group `name`.
pub fn new_group(name: &str) -> entra_sync_sim::authentik::NewGroup {
    entra_sync_sim::authentik::NewGroup {
        name: name.to_owned(),
        ..Default::default()
    }
}

/// A configuration file for one process and the ports it serves on.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// The file.
    pub path: PathBuf,
    /// `[producer] listen` port.
    pub producer_port: u16,
    /// `[worker] listen` port.
    pub worker_port: u16,
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A directory's users (by lower-case UPN), groups (by name) and memberships
/// (group name → member UPNs).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Directory {
    /// Users.
    pub users: BTreeMap<String, Map<String, Value>>,
    /// Groups.
    pub groups: BTreeMap<String, Map<String, Value>>,
    /// Memberships.
    pub members: BTreeMap<String, BTreeSet<String>>,
}

/// `object` with only the keys of `like` (all of them when `like` is None).
fn restrict(object: &Value, like: Option<&Map<String, Value>>) -> Map<String, Value> {
    let all = object.as_object().cloned().unwrap_or_default();
    match like {
        None => all,
        Some(like) => like
            .keys()
            .map(|k| (k.clone(), all.get(k).cloned().unwrap_or(Value::Null)))
            .collect(),
    }
}

/// A producer and a worker.
pub struct Services {
    /// The producer.
    pub producer: Service,
    /// The worker.
    pub worker: Service,
}

impl Services {
    /// Stops both.
    pub async fn stop(self) {
        self.producer.stop().await;
        self.worker.stop().await;
    }
}

/// An in-process service (producer or worker) that stops on request.
pub struct Service {
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
}

impl Service {
    /// Runs `run(shutdown)` on the runtime.
    pub fn spawn<F, Fut>(run: F) -> Self
    where
        F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = Box::pin(async move {
            let _ = rx.await;
        });
        Self {
            shutdown: Some(tx),
            handle: tokio::spawn(run(shutdown)),
        }
    }

    /// Asks it to stop and waits until it has.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(15), &mut self.handle)
            .await
            .expect("service stops within 15 s")
            .expect("service did not panic");
    }
}
