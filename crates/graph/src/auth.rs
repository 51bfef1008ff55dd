//! OAuth2 client credentials with a cached token (`microsoft-graph.md` §9).

use crate::outcome::GraphFailure;
use crate::signals::ThrottleSignals;
use entra_sync_core::failure::{FailureContext, GraphError, Operation, Target, classify};
use entra_sync_core::secret::Secret;
use serde::Deserialize;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Mutex;

/// Renew at most this long before expiry.
const MAX_EARLY_REFRESH: Duration = Duration::from_secs(300);

struct Cached {
    token: Secret,
    refresh_at: Instant,
}

/// Fetches and caches the app-only access token. One refresh at a time.
pub(crate) struct TokenCache {
    token_url: String,
    tenant: String,
    client_id: String,
    client_secret: Secret,
    cached: Mutex<Option<Cached>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

impl TokenCache {
    pub fn new(login_url: &str, tenant: &str, client_id: &str, client_secret: Secret) -> Self {
        Self {
            token_url: format!(
                "{}/{tenant}/oauth2/v2.0/token",
                login_url.trim_end_matches('/')
            ),
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            client_secret,
            cached: Mutex::new(None),
        }
    }

    /// A valid token: the cached one, or a new one if it is near expiry.
    pub async fn token(&self, http: &reqwest::Client) -> Result<Secret, GraphFailure> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref()
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch(http).await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Forgets `stale` after Graph refused it, unless another task already replaced it.
    pub async fn invalidate(&self, stale: &Secret) {
        let mut cached = self.cached.lock().await;
        if cached.as_ref().is_some_and(|c| c.token == *stale) {
            *cached = None;
        }
    }

    #[tracing::instrument(name = "graph.token", level = "debug", skip_all, fields(tenant = %self.tenant, client_id = %self.client_id))]
    async fn fetch(&self, http: &reqwest::Client) -> Result<Cached, GraphFailure> {
        let action = format!(
            "token request for tenant '{}' and client '{}'",
            self.tenant, self.client_id
        );
        let form = [
            ("client_id", self.client_id.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
            ("client_secret", self.client_secret.expose()),
            ("grant_type", "client_credentials"),
        ];
        let started = Instant::now();
        let response = http
            .post(&self.token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                GraphFailure::transport(Operation::Token, &action, e.without_url().to_string())
            })?;
        let status = response.status().as_u16();
        let signals = ThrottleSignals::from_headers(response.headers(), SystemTime::now());
        let body = response.bytes().await.map_err(|e| {
            GraphFailure::transport(Operation::Token, &action, e.without_url().to_string())
        })?;
        let context = FailureContext::new(Operation::Token, Target::Tenant);
        let error = GraphError::parse(&body);
        if let Some(class) = classify(status, &error, context) {
            let mut failure =
                GraphFailure::from_answer(class, context, &action, status, error, signals);
            if failure.error.code.is_empty() {
                failure.message = format!("the token endpoint answered {status}");
            } else {
                failure.message = format!(
                    "the identity platform refused the credentials ({}): {}",
                    failure.error.code, failure.error.message
                );
            }
            return Err(failure);
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            GraphFailure::transport(
                Operation::Token,
                &action,
                format!("unreadable token answer: {e}"),
            )
        })?;
        let lifetime = Duration::from_secs(answer.expires_in);
        let early = MAX_EARLY_REFRESH.min(lifetime / 2);
        Ok(Cached {
            token: Secret::new(answer.access_token),
            refresh_at: started + lifetime - early,
        })
    }
}
