//! The client: configuration, the shared connection pool and the one place
//! where requests are sent, classified and retried.

use crate::auth::TokenCache;
use crate::credential::Credential;
use crate::gate::{NoopGate, RequestCost, RequestGate};
use crate::outcome::{GraphFailure, RequestRecord};
use crate::retry::RetryPolicy;
use crate::signals::ThrottleSignals;
use bytes::Bytes;
use entra_sync_core::failure::{FailureClass, FailureContext, GraphError, classify};
use entra_sync_core::secret::Secret;
use reqwest::Method;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// `x-ms-throttle-priority` (`microsoft-graph.md` §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Throttled first; for bulk and background traffic.
    Low,
    /// Graph's default.
    Normal,
    /// For user-initiated requests only.
    High,
}

impl Priority {
    fn header_value(self) -> &'static str {
        match self {
            Priority::Low => "Low",
            Priority::Normal => "Normal",
            Priority::High => "High",
        }
    }
}

/// Settings of a [`GraphClient`].
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// Tenant id (GUID) or verified domain.
    pub tenant: String,
    /// Application (client) id.
    pub client_id: String,
    /// How the app authenticates: a client secret, a certificate or a federated token.
    pub credential: Credential,
    /// Graph root without `/v1.0`, e.g. `https://graph.microsoft.com`.
    pub graph_url: String,
    /// Identity platform root, e.g. `https://login.microsoftonline.com`.
    pub login_url: String,
    /// When on, no mutating request leaves the process.
    pub dry_run: bool,
    /// Inline retries.
    pub retry: RetryPolicy,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// `x-ms-throttle-priority` sent on every request; see also [`GraphClient::bulk`].
    pub priority: Option<Priority>,
}

impl GraphConfig {
    /// Settings for the public Microsoft cloud, with default retries and no
    /// dry run; `credential` is a [`Credential`] or a client [`Secret`].
    pub fn new(
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        credential: impl Into<Credential>,
    ) -> Self {
        Self {
            tenant: tenant.into(),
            client_id: client_id.into(),
            credential: credential.into(),
            graph_url: "https://graph.microsoft.com".into(),
            login_url: "https://login.microsoftonline.com".into(),
            dry_run: false,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            priority: None,
        }
    }

    /// Points both Graph and the token endpoint at one base URL (a simulator).
    pub fn with_base_url(mut self, base: &str) -> Self {
        self.graph_url = base.trim_end_matches('/').to_string();
        self.login_url = self.graph_url.clone();
        self
    }
}

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The HTTP client could not be built.
    #[error("cannot build the Graph HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// The credential's files are unreadable or hold no usable key.
    #[error("the credential cannot be used: {0}")]
    Credential(#[from] crate::credential::CredentialError),
}

pub(crate) struct Inner {
    pub http: reqwest::Client,
    pub root: String,
    pub auth: TokenCache,
    pub gate: Arc<dyn RequestGate>,
    pub retry: RetryPolicy,
    pub dry_run: bool,
}

/// A Microsoft Graph client for one (application, tenant). Cheap to clone: clones
/// share the connection pool, the token and the gate.
#[derive(Clone)]
pub struct GraphClient {
    pub(crate) inner: Arc<Inner>,
    priority: Option<Priority>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("root", &self.inner.root)
            .field("dry_run", &self.inner.dry_run)
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

/// One request as the operations describe it.
pub(crate) struct Call<'a> {
    pub method: Method,
    pub url: String,
    pub body: Option<Value>,
    pub context: FailureContext,
    pub action: &'a str,
    /// Defaults to [`RequestCost::estimate`]; `$batch` passes the sum of its parts.
    pub cost: Option<RequestCost>,
    /// Statuses ≥ 400 to treat as an answer rather than a failure (424 for `$batch`).
    pub accept: &'a [u16],
    /// A `Prefer` header, e.g. `create-if-missing` for an upsert.
    pub prefer: Option<&'a str>,
}

/// A received answer.
pub(crate) struct Answer {
    pub status: u16,
    pub body: Bytes,
    pub signals: ThrottleSignals,
}

/// What sending a call led to.
pub(crate) enum Sent {
    Answer(Answer),
    DryRun(RequestRecord),
}

impl GraphClient {
    /// A client with no rate gate.
    pub fn new(config: GraphConfig) -> Result<Self, BuildError> {
        Self::with_gate(config, Arc::new(NoopGate))
    }

    /// A client that asks `gate` before every request. Its credential's files
    /// are read once now, so a bad one fails here, naming its key.
    pub fn with_gate(config: GraphConfig, gate: Arc<dyn RequestGate>) -> Result<Self, BuildError> {
        crate::credential::check_credential(&config.credential)?;
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("entra-sync/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                root: format!("{}/v1.0", config.graph_url.trim_end_matches('/')),
                auth: TokenCache::new(
                    &config.login_url,
                    &config.tenant,
                    &config.client_id,
                    config.credential,
                ),
                gate,
                retry: config.retry,
                dry_run: config.dry_run,
            }),
            priority: config.priority,
        })
    }

    /// A clone that sends `x-ms-throttle-priority: Low`, for bulk traffic.
    pub fn bulk(&self) -> Self {
        self.with_priority(Some(Priority::Low))
    }

    /// A clone with another priority header (`None` sends none).
    pub fn with_priority(&self, priority: Option<Priority>) -> Self {
        Self {
            inner: self.inner.clone(),
            priority,
        }
    }

    /// Whether mutating requests are withheld.
    pub fn is_dry_run(&self) -> bool {
        self.inner.dry_run
    }

    /// The tenant and the application (client) id this client acts for.
    pub fn app(&self) -> (&str, &str) {
        self.inner.auth.app()
    }

    /// `https://graph.microsoft.com/v1.0` or the configured equivalent.
    pub fn root(&self) -> &str {
        &self.inner.root
    }

    /// Sends a call with auth, the gate, classification and inline retries.
    pub(crate) async fn execute(&self, call: Call<'_>) -> Result<Sent, GraphFailure> {
        let inner = &self.inner;
        if inner.dry_run && call.method != Method::GET {
            tracing::info!(method = %call.method, url = %call.url, "dry run: request withheld");
            return Ok(Sent::DryRun(RequestRecord::new(
                call.method.to_string(),
                call.url,
                call.body,
            )));
        }
        let cost = call
            .cost
            .unwrap_or_else(|| RequestCost::estimate(&call.method, &call.url));
        let mut attempts = 0;
        let mut refreshed = false;
        loop {
            attempts += 1;
            inner.gate.before(cost).await;
            let token = inner.auth.token(&inner.http).await?;
            let started = Instant::now();
            let failure = match self.send_once(&call, &token).await {
                Err(failure) => {
                    observe(&call.method, Some(failure.class), None, started);
                    failure
                }
                Ok(answer) => {
                    inner.gate.observe(cost, answer.status, &answer.signals);
                    if answer.status < 400 || call.accept.contains(&answer.status) {
                        observe(&call.method, None, Some(answer.status), started);
                        return Ok(Sent::Answer(answer));
                    }
                    let error = GraphError::parse(&answer.body);
                    let class = classify(answer.status, &error, call.context)
                        .unwrap_or(FailureClass::Permanent);
                    observe(&call.method, Some(class), Some(answer.status), started);
                    if answer.status == 401
                        && error.code == "InvalidAuthenticationToken"
                        && !refreshed
                    {
                        tracing::debug!("access token refused; fetching a new one");
                        refreshed = true;
                        attempts -= 1;
                        inner.auth.invalidate(&token).await;
                        continue;
                    }
                    let failure = GraphFailure::from_answer(
                        class,
                        call.context,
                        call.action,
                        answer.status,
                        error,
                        answer.signals,
                    );
                    if failure.status == Some(429) {
                        entra_sync_telemetry::series().graph_throttled(failure.retry_after);
                        let pause = failure
                            .retry_after
                            .unwrap_or_else(|| inner.retry.backoff.ceiling(attempts));
                        inner.gate.throttled(pause, &failure.signals).await;
                    }
                    failure
                }
            };
            match inner
                .retry
                .next_delay(attempts, failure.class, failure.retry_after)
            {
                Some(wait) => {
                    tracing::debug!(attempt = attempts, wait_ms = wait.as_millis() as u64, status = ?failure.status, "retrying Graph request");
                    tokio::time::sleep(wait).await;
                }
                None => return Err(failure),
            }
        }
    }

    /// One HTTP exchange with Graph, in an info span of its own (so a trace
    /// shows every Graph request of a task).
    #[tracing::instrument(name = "graph.request", level = "info", skip_all, fields(otel.kind = "client", http.request.method = %call.method, action = call.action, http.response.status_code = tracing::field::Empty))]
    async fn send_once(&self, call: &Call<'_>, token: &Secret) -> Result<Answer, GraphFailure> {
        let mut request = self
            .inner
            .http
            .request(call.method.clone(), &call.url)
            .bearer_auth(token.expose())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(priority) = self.priority {
            request = request.header("x-ms-throttle-priority", priority.header_value());
        }
        if let Some(prefer) = call.prefer {
            request = request.header("Prefer", prefer);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let transport = |e: reqwest::Error| {
            let kind = if e.is_timeout() {
                "timed out"
            } else {
                "network error"
            };
            GraphFailure::transport(
                call.context.operation,
                call.action,
                format!("{kind}: {}", e.without_url()),
            )
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        tracing::Span::current().record("http.response.status_code", status);
        let signals = ThrottleSignals::from_headers(response.headers(), SystemTime::now());
        let body = response.bytes().await.map_err(transport)?;
        Ok(Answer {
            status,
            body,
            signals,
        })
    }
}

/// Records one ended request in the process's series: `class` is `None` when
/// it succeeded, `status` is `None` when no answer came.
fn observe(method: &Method, class: Option<FailureClass>, status: Option<u16>, started: Instant) {
    let class = match class {
        None => "ok",
        Some(FailureClass::Transient) => "transient",
        Some(FailureClass::AlreadyDone) => "already_done",
        Some(FailureClass::Conflict) => "conflict",
        Some(FailureClass::StaleLink) => "stale_link",
        Some(FailureClass::Permanent) => "permanent",
        Some(FailureClass::Forbidden) => "forbidden",
        Some(FailureClass::Configuration) => "configuration",
    };
    entra_sync_telemetry::series().graph_request(method.as_str(), class, status, started.elapsed());
}
