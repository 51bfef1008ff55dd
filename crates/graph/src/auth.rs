//! OAuth2 client credentials with a cached token (`microsoft-graph.md` §9),
//! and the application permissions the token says were granted.

use crate::client::GraphClient;
use crate::credential::{self, Credential};
use crate::outcome::GraphFailure;
use crate::signals::ThrottleSignals;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entra_sync_core::failure::{
    FailureClass, FailureContext, GraphError, Operation, Target, classify,
};
use entra_sync_core::secret::Secret;
use serde::Deserialize;
use std::collections::BTreeSet;
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
    credential: Credential,
    cached: Mutex<Option<Cached>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: u64,
}

impl TokenCache {
    pub fn new(login_url: &str, tenant: &str, client_id: &str, credential: Credential) -> Self {
        Self {
            token_url: format!(
                "{}/{tenant}/oauth2/v2.0/token",
                login_url.trim_end_matches('/')
            ),
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            credential,
            cached: Mutex::new(None),
        }
    }

    /// The tenant and the application (client) id the tokens are for.
    pub(crate) fn app(&self) -> (&str, &str) {
        (&self.tenant, &self.client_id)
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

    /// A new token, fetched now whatever the cached one's age, and cached.
    pub async fn renew(&self, http: &reqwest::Client) -> Result<Secret, GraphFailure> {
        let mut cached = self.cached.lock().await;
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

    #[tracing::instrument(name = "graph.token", level = "info", skip_all, fields(tenant = %self.tenant, client_id = %self.client_id))]
    async fn fetch(&self, http: &reqwest::Client) -> Result<Cached, GraphFailure> {
        let action = format!(
            "token request for tenant '{}' and client '{}'",
            self.tenant, self.client_id
        );
        // Read now: a rotated secret file takes effect at this request.
        let credential =
            credential::form_fields(&self.credential, &self.client_id, &self.token_url).map_err(
                |e| GraphFailure {
                    class: FailureClass::Configuration,
                    message: format!("the credential cannot be used: {e}"),
                    ..GraphFailure::transport(Operation::Token, &action, String::new())
                },
            )?;
        let mut form = vec![
            ("client_id", self.client_id.as_str()),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ];
        form.extend(
            credential
                .iter()
                .map(|(name, value)| (*name, value.expose())),
        );
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

/// The application permissions an access token carries in its `roles` claim,
/// read best-effort: the signature is not checked, and `None` means the token
/// is not a JWT, does not decode, or has no `roles` claim. Microsoft documents
/// access tokens as opaque, so nothing may depend on this.
fn granted_roles(token: &Secret) -> Option<BTreeSet<String>> {
    #[derive(Deserialize)]
    struct Claims {
        roles: Option<BTreeSet<String>>,
    }
    let mut parts = token.expose().split('.');
    let (Some(_header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let json = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<Claims>(&json).ok()?.roles
}

impl GraphClient {
    /// The application permissions the current access token says were granted
    /// (its `roles` claim); `Ok(None)` when the token doesn't tell (see
    /// `entra_sync_core::permissions`). Fetches a token if none is cached.
    pub async fn granted_roles(&self) -> Result<Option<BTreeSet<String>>, GraphFailure> {
        let token = self.inner.auth.token(&self.inner.http).await?;
        Ok(granted_roles(&token))
    }

    /// Fetches a new access token now, so that permissions granted or removed
    /// since the last one take effect (for `resume`). Clones share it.
    pub async fn renew_token(&self) -> Result<(), GraphFailure> {
        self.inner.auth.renew(&self.inner.http).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> Secret {
        let encode = |s: &str| URL_SAFE_NO_PAD.encode(s);
        Secret::new(format!(
            "{}.{}.{}",
            encode(r#"{"typ":"JWT","alg":"RS256"}"#),
            encode(payload),
            encode("signature")
        ))
    }

    #[test]
    fn roles_are_read_from_the_payload() {
        let token = jwt(
            r#"{"aud":"https://graph.microsoft.com","roles":["User.ReadWrite.All","Group.ReadWrite.All"]}"#,
        );
        let roles = granted_roles(&token).unwrap();
        assert_eq!(
            roles.into_iter().collect::<Vec<_>>(),
            ["Group.ReadWrite.All", "User.ReadWrite.All"]
        );
    }

    #[test]
    fn padded_payloads_decode_too() {
        let token = Secret::new(format!(
            "h.{}.s",
            base64::engine::general_purpose::URL_SAFE.encode(r#"{"roles":["A"]}"#)
        ));
        assert_eq!(granted_roles(&token).map(|r| r.len()), Some(1));
    }

    #[test]
    fn tokens_that_say_nothing_give_none() {
        assert_eq!(granted_roles(&jwt(r#"{"aud":"x"}"#)), None, "no claim");
        assert_eq!(granted_roles(&Secret::new("opaque-token")), None);
        assert_eq!(granted_roles(&Secret::new("a.%%%.c")), None, "not base64");
        assert_eq!(granted_roles(&jwt("not json")), None);
        assert_eq!(granted_roles(&Secret::new("a.b.c.d")), None, "four parts");
    }
}
