//! The Microsoft Graph simulator.
//!
//! An in-memory Graph v1.0 for users, groups and memberships, with the token
//! endpoint, `$batch`, Graph's validation rules and error bodies, application
//! permissions, the group kinds Graph won't let an app change, replication
//! delay, token-bucket throttling, seeded fault injection, answers lost after
//! commit ([`CommitFault`]), the group upsert by `uniqueName` and soft-deleted
//! groups in `directory/deletedItems` (`store::deleted_items`), following
//! `microsoft-graph.md`. Start it in-process with [`GraphSim::start`], or serve
//! it on a listener with [`serve`]. [`shapes`] builds objects of each kind.
//!
//! Inspection endpoints: `GET /_sim/state`, `GET /_sim/counters`,
//! `POST /_sim/seed`, `PUT /_sim/faults`, `POST`/`DELETE /_sim/faults/after-commit`,
//! `POST /_sim/refused-writes/{id}`,
//! `PUT /_sim/apps/{client_id}/roles`.
//!
//! Changes "made in the portal", which bypass the app's permissions, write
//! rules and throttling: `PATCH`/`DELETE /_sim/portal/objects/{id}` and
//! `DELETE /_sim/portal/groups/{group}/members/{member}` (and the
//! `portal_*` methods of [`GraphSim`]). A deleted user or group goes to
//! `/directory/deletedItems`, from which `POST …/{id}/restore` brings it back.

mod after_commit;
mod credentials;
mod error;
mod permissions;
mod properties;
mod server;
pub mod shapes;
mod store;
mod throttle;
mod token;
mod validate;

pub use after_commit::{CommitFault, LostAnswer};
pub use server::{Counters, RequestCount, router, serve};
pub use throttle::{RuQuota, ThrottleConfig};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use server::Sim;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// An application registered in the simulated tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimApp {
    /// The application (client) id.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
    /// The application permissions granted to it (with admin consent), e.g.
    /// `User.ReadWrite.All`. Graph refuses with 403 what its token's grants don't cover.
    #[serde(default = "SimApp::default_roles")]
    pub roles: Vec<String>,
    /// How its access tokens show the grants.
    #[serde(default)]
    pub token_format: TokenFormat,
    /// Certificates registered on it (PEM), for client assertions signed with their keys.
    #[serde(default)]
    pub certificates: Vec<String>,
    /// Its federated identity credentials (workload identity federation).
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredential>,
}

/// A federated identity credential: which external tokens the app accepts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FederatedCredential {
    /// The token issuer, e.g. a Kubernetes cluster's OIDC issuer URL.
    pub issuer: String,
    /// The subject, e.g. `system:serviceaccount:entra-sync:entra-sync`.
    pub subject: String,
    /// Accepted audiences; Entra's default is `api://AzureADTokenExchange`.
    #[serde(default = "FederatedCredential::default_audiences")]
    pub audiences: Vec<String>,
}

impl FederatedCredential {
    /// The audience Entra recommends for federated credentials.
    pub const AUDIENCE: &'static str = "api://AzureADTokenExchange";

    /// A credential for `issuer` and `subject` with the default audience.
    pub fn new(issuer: impl Into<String>, subject: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            subject: subject.into(),
            audiences: Self::default_audiences(),
        }
    }

    fn default_audiences() -> Vec<String> {
        vec![Self::AUDIENCE.to_owned()]
    }
}

/// An external OIDC issuer and the signing keys it publishes (its JWKS),
/// which Entra fetches through the issuer's discovery document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OidcIssuer {
    /// The issuer URL, as in the tokens' `iss`.
    pub issuer: String,
    /// Its RSA signing keys.
    pub keys: Vec<Jwk>,
}

/// An RSA public key as a JWKS lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Jwk {
    /// Key id, matched against a token's `kid` header.
    #[serde(default)]
    pub kid: Option<String>,
    /// Modulus, base64url without padding.
    pub n: String,
    /// Public exponent, base64url without padding.
    pub e: String,
}

impl SimApp {
    /// The permissions an entra-sync app is usually granted.
    pub const DEFAULT_ROLES: [&'static str; 3] = [
        "Group.ReadWrite.All",
        "GroupMember.ReadWrite.All",
        "User.ReadWrite.All",
    ];

    /// An app with [`SimApp::DEFAULT_ROLES`] and JWT access tokens.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            roles: Self::default_roles(),
            token_format: TokenFormat::default(),
            certificates: Vec::new(),
            federated_credentials: Vec::new(),
        }
    }

    fn default_roles() -> Vec<String> {
        Self::DEFAULT_ROLES.map(String::from).to_vec()
    }
}

/// How the token endpoint shapes an app's access tokens. Microsoft documents
/// them as opaque; in practice Entra issues JWTs with a `roles` claim.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenFormat {
    /// A JWT whose payload lists the granted permissions in `roles` (left out
    /// when none are granted, as Entra does).
    #[default]
    Jwt,
    /// A JWT without a `roles` claim.
    JwtWithoutRoles,
    /// A string that is not a JWT.
    Opaque,
}

/// Injected faults. Decisions come from a RNG seeded with `seed`, so a run is repeatable.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Seed of the fault RNG.
    pub seed: u64,
    /// Share (0–1) of Graph requests answered with one of `error_statuses`.
    pub error_rate: f64,
    /// Statuses to pick from for injected errors; empty means 500, 503 and 504.
    pub error_statuses: Vec<u16>,
    /// Share (0–1) of Graph requests whose connection is dropped before the body.
    pub drop_rate: f64,
    /// Minimum added latency in milliseconds.
    pub latency_min_ms: u64,
    /// Maximum added latency in milliseconds (equal to the minimum for a fixed latency).
    pub latency_max_ms: u64,
}

/// Settings of a simulator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// The tenant id (a GUID); the token endpoint also accepts a verified domain.
    pub tenant_id: String,
    /// Verified domains, the first being the default.
    pub domains: Vec<String>,
    /// Registered applications.
    pub apps: Vec<SimApp>,
    /// Lifetime of issued access tokens.
    #[serde(with = "throttle::millis")]
    pub token_lifetime: Duration,
    /// How long a created object stays invisible to get-by-id, PATCH and member adds.
    #[serde(with = "throttle::millis")]
    pub replication_delay: Duration,
    /// Throttling budgets.
    pub throttle: ThrottleConfig,
    /// Injected faults.
    pub faults: FaultConfig,
    /// External issuers whose tokens federated credentials may name.
    pub oidc_issuers: Vec<OidcIssuer>,
}

impl SimConfig {
    /// The tenant id of the default configuration.
    pub const TENANT_ID: &'static str = "0785a1c2-7f1e-4a6e-9f1b-3c2d5e6f7a80";
    /// The client id of the default application.
    pub const CLIENT_ID: &'static str = "9a3d5b1c-2e4f-4a6b-8c0d-1e2f3a4b5c6d";
    /// The client secret of the default application.
    pub const CLIENT_SECRET: &'static str = "sim-client-secret-value";
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            tenant_id: Self::TENANT_ID.into(),
            domains: vec!["contoso.com".into()],
            apps: vec![SimApp::new(Self::CLIENT_ID, Self::CLIENT_SECRET)],
            token_lifetime: Duration::from_secs(3599),
            replication_delay: Duration::ZERO,
            throttle: ThrottleConfig::default(),
            faults: FaultConfig::default(),
            oidc_issuers: Vec::new(),
        }
    }
}

/// What to put into the directory before a test: objects as Graph would return them
/// (an `id` is generated when missing) and memberships.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Seed {
    /// Users, as JSON objects with Graph's property names.
    pub users: Vec<Value>,
    /// Groups, as JSON objects with Graph's property names.
    pub groups: Vec<Value>,
    /// Memberships.
    pub members: Vec<SeedMember>,
}

/// A membership to seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedMember {
    /// The group id.
    pub group: String,
    /// The member id.
    pub member: String,
}

/// Seeding failed: an invalid id or a membership naming a missing object.
#[derive(Debug, thiserror::Error)]
#[error("seeding the Graph simulator failed: {0}")]
pub struct SeedError(String);

/// A change "made in the portal" failed: no such object or member.
#[derive(Debug, thiserror::Error)]
#[error("a portal change in the Graph simulator failed: {0}")]
pub struct PortalError(String);

/// A simulator running in this process on `127.0.0.1` and a free port.
/// Dropping the handle stops it.
pub struct GraphSim {
    addr: SocketAddr,
    sim: Arc<Sim>,
    task: tokio::task::JoinHandle<()>,
}

impl GraphSim {
    /// Binds `127.0.0.1:0` and serves in a background task.
    pub async fn start(config: SimConfig) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let sim = Arc::new(Sim::new(config));
        let app = server::routes(sim.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "Graph simulator stopped");
            }
        });
        Ok(Self { addr, sim, task })
    }

    /// `http://127.0.0.1:{port}`: both the Graph base URL (`/v1.0/…`) and the login URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration it was started with (faults as of start).
    pub fn config(&self) -> &SimConfig {
        self.sim.config()
    }

    /// Requests served so far, by method, path class and status.
    pub fn counters(&self) -> Counters {
        self.sim.counters()
    }

    /// Graph requests that could change state (POST, PATCH, PUT, DELETE under `/v1.0`,
    /// including `$batch` and its inner requests), whatever their status.
    pub fn mutating_requests(&self) -> u64 {
        self.sim.counters().mutating()
    }

    /// Resource units charged so far to the requests Graph admitted (§1.2 costs).
    pub fn resource_units(&self) -> u64 {
        self.sim.resource_units()
    }

    /// Graph requests that carried `x-ms-throttle-priority: Low`.
    pub fn low_priority_requests(&self) -> u64 {
        self.sim.low_priority_requests()
    }

    /// Writes charged against the write quota for the requests it admitted
    /// (a `members@odata.bind` PATCH counts as several).
    pub fn writes_charged(&self) -> u64 {
        self.sim.writes_charged()
    }

    /// Seeds users, groups and memberships; returns the ids of the users and groups, in order.
    pub fn seed(&self, seed: Seed) -> Result<(Vec<String>, Vec<String>), SeedError> {
        self.sim.seed(seed).map_err(|e| SeedError(e.message))
    }

    /// Seeds one user (always replicated, not validated); returns its id.
    pub fn seed_user(&self, user: Value) -> Result<String, SeedError> {
        let (users, _) = self.seed(Seed {
            users: vec![user],
            ..Seed::default()
        })?;
        Ok(users.into_iter().next().unwrap_or_default())
    }

    /// Seeds one group (always replicated, not validated); returns its id.
    pub fn seed_group(&self, group: Value) -> Result<String, SeedError> {
        let (_, groups) = self.seed(Seed {
            groups: vec![group],
            ..Seed::default()
        })?;
        Ok(groups.into_iter().next().unwrap_or_default())
    }

    /// Seeds one membership.
    pub fn seed_member(&self, group: &str, member: &str) -> Result<(), SeedError> {
        self.seed(Seed {
            members: vec![SeedMember {
                group: group.into(),
                member: member.into(),
            }],
            ..Seed::default()
        })
        .map(|_| ())
    }

    /// Users, groups and memberships, as `GET /_sim/state` returns them.
    pub fn state(&self) -> Value {
        self.sim.state()
    }

    /// The member ids of a group, sorted.
    pub fn members(&self, group: &str) -> Vec<String> {
        self.sim.members(group)
    }

    /// Replaces the fault settings (and reseeds the fault RNG).
    pub fn set_faults(&self, faults: FaultConfig) {
        self.sim.set_faults(faults);
    }

    /// Loses the answers of requests matching `fault` after the directory
    /// committed them ([`CommitFault`]).
    pub fn fail_after_commit(&self, fault: CommitFault) {
        self.sim.fail_after_commit(fault);
    }

    /// Drops every [`CommitFault`] rule.
    pub fn clear_commit_faults(&self) {
        self.sim.clear_commit_faults();
    }

    /// Verifies one more domain in the tenant: it is listed in
    /// `verifiedDomains` and accepted in UPNs from now on.
    pub fn verify_domain(&self, domain: &str) {
        self.sim.verify_domain(domain);
    }

    /// Invalidates every issued access token, as if they had been revoked.
    pub fn revoke_tokens(&self) {
        self.sim.revoke_tokens();
    }

    /// Replaces the client secret of app `client_id` (a rotation): from now
    /// on only the new one is accepted.
    pub fn set_client_secret(&self, client_id: &str, secret: &str) {
        self.sim.set_client_secret(client_id, secret);
    }

    /// Replaces the permissions granted to app `client_id`. As in Entra, tokens
    /// already issued keep the grants they carry; call [`GraphSim::revoke_tokens`]
    /// to make them apply at once.
    pub fn set_app_roles(&self, client_id: &str, roles: &[&str]) {
        self.sim
            .set_app_roles(client_id, roles.iter().map(|r| r.to_string()).collect());
    }

    /// Makes every write to object `id` answer 403 `Authorization_RequestDenied`
    /// "Insufficient privileges to complete the operation.": PATCH and DELETE
    /// of it and, for a group, member adds and removals. This is how Graph
    /// answers an app with `User.ReadWrite.All` that changes a user holding a
    /// privileged admin role.
    pub fn refuse_writes(&self, id: &str) {
        self.sim.refuse_writes(id);
    }

    /// Changes object `id` as an admin would in the portal: `changes` are
    /// merged in (a `null` removes the property), without Graph's checks.
    pub fn portal_update(&self, id: &str, changes: Value) -> Result<(), PortalError> {
        let Value::Object(changes) = changes else {
            return Err(PortalError("portal changes must be a JSON object".into()));
        };
        self.sim
            .portal_update(id, changes)
            .map_err(|e| PortalError(e.message))
    }

    /// Deletes user or group `id` as an admin would in the portal: it goes to
    /// the deleted items (a distribution group is gone for good).
    pub fn portal_delete(&self, id: &str) -> Result<(), PortalError> {
        self.sim
            .portal_delete(id)
            .map_err(|e| PortalError(e.message))
    }

    /// Removes `member` from `group` as an admin would in the portal.
    pub fn portal_remove_member(&self, group: &str, member: &str) -> Result<(), PortalError> {
        self.sim
            .portal_remove_member(group, member)
            .map_err(|e| PortalError(e.message))
    }

    /// Deletes deleted item `id` for good, as an admin would in the portal.
    pub fn portal_purge(&self, id: &str) -> Result<(), PortalError> {
        self.sim
            .portal_purge(id)
            .map_err(|e| PortalError(e.message))
    }

    /// The ids of the deleted items (restorable users and groups), sorted.
    pub fn deleted_items(&self) -> Vec<String> {
        self.sim.deleted_items()
    }
}

impl Drop for GraphSim {
    fn drop(&mut self) {
        self.task.abort();
    }
}
