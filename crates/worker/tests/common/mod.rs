//! The test environment shared by the reconciler tests: a per-test PostgreSQL
//! schema with provider `p`, and both simulators.

#![allow(dead_code, reason = "each test binary uses a different part of it")]

use entra_sync_authentik::{ApiToken, AuthentikClient, ClientConfig};
use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_core::mapping::ProviderInfo;
use entra_sync_graph::{GraphClient, GraphConfig, Secret};
use entra_sync_provider::{DeletionGuard, GuardLimit, ScopeSettings, SharedScope};
use entra_sync_sim::authentik::{Mode, NewGroup, NewUser, RunningSim};
use entra_sync_sim::graph::{GraphSim, SimConfig};
use entra_sync_store::testing::TestDatabase;
use serde_json::Value;

/// A database, a Graph simulator and an authentik simulator.
pub struct Env {
    pub db: TestDatabase,
    pub graph: GraphSim,
    pub authentik: RunningSim,
}

impl Env {
    pub async fn new() -> Self {
        let db = TestDatabase::migrated().await;
        db.store.register_provider("p", "h").await.unwrap();
        let graph = GraphSim::start(SimConfig::default()).await.unwrap();
        let authentik =
            entra_sync_sim::authentik::start(entra_sync_sim::authentik::SimConfig::new("ak-token"))
                .await
                .unwrap();
        Self {
            db,
            graph,
            authentik,
        }
    }

    /// The Graph configuration of the simulator's app.
    pub fn graph_config(&self, dry_run: bool) -> GraphConfig {
        let mut config = GraphConfig::new(
            SimConfig::TENANT_ID,
            SimConfig::CLIENT_ID,
            Secret::new(SimConfig::CLIENT_SECRET),
        )
        .with_base_url(&self.graph.base_url());
        config.dry_run = dry_run;
        config
    }

    pub fn graph_client(&self, dry_run: bool) -> GraphClient {
        GraphClient::new(self.graph_config(dry_run)).unwrap()
    }

    /// Provider `p`'s deletion guard, at the default limit (500 within 1 h).
    pub fn guard(&self, dry_run: bool) -> DeletionGuard {
        self.guard_with(500, dry_run)
    }

    /// Provider `p`'s deletion guard, letting `threshold` through within 1 h.
    pub fn guard_with(&self, threshold: u32, dry_run: bool) -> DeletionGuard {
        let limit = GuardLimit {
            threshold,
            window: std::time::Duration::from_secs(3600),
        };
        DeletionGuard::new(self.db.store.clone(), "p", limit, dry_run)
    }

    pub fn authentik_client(&self) -> AuthentikClient {
        let url = url::Url::parse(&self.authentik.base_url()).unwrap();
        AuthentikClient::new(ClientConfig::new(url, ApiToken::new("ak-token"))).unwrap()
    }

    /// Provider `p` with the simulator's verified domain.
    pub fn provider(&self) -> ProviderInfo {
        ProviderInfo {
            name: "p".into(),
            domains: vec!["contoso.com".into()],
            ..Default::default()
        }
    }

    /// Provider `p`'s shared scope, filtered by the group named `filter_group`.
    pub fn scope(&self, filter_group: Option<&str>) -> SharedScope {
        let settings = ScopeSettings {
            filter_group: filter_group.map(str::to_owned),
            exclude_service_accounts: true,
        };
        SharedScope::new("p", settings, &self.authentik_client(), &self.db.store)
    }

    pub fn add_user(&self, username: &str, email: &str) -> AkUserPk {
        let user = NewUser {
            username: username.into(),
            name: format!("{username} name"),
            email: email.into(),
            ..Default::default()
        };
        AkUserPk(self.authentik.sim.create_user(user, Mode::Evented))
    }

    pub fn add_group(&self, name: &str) -> AkGroupPk {
        let group = NewGroup {
            name: name.into(),
            ..Default::default()
        };
        AkGroupPk(self.authentik.sim.create_group(group, Mode::Evented))
    }

    /// The simulator's users or groups (`"users"` / `"groups"`).
    pub fn entra(&self, kind: &str) -> Vec<Value> {
        self.graph.state()[kind]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}
