//! Access tokens as Entra issues them for the client-credentials flow: a JWT
//! whose payload names the app and tenant and lists the granted application
//! permissions in `roles` (entra-docs `access-tokens.md`). The signature is
//! random: nothing verifies it, since Microsoft documents tokens as opaque.

use super::{SimApp, TokenFormat};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

/// A new access token for `app` in `tenant`, carrying `roles` as its format says.
pub(crate) fn access_token(
    app: &SimApp,
    tenant: &str,
    roles: &BTreeSet<String>,
    lifetime: Duration,
) -> String {
    let unique = || uuid::Uuid::new_v4().simple().to_string();
    if app.token_format == TokenFormat::Opaque {
        return format!("sim-opaque-{}{}", unique(), unique());
    }
    let now = chrono::Utc::now().timestamp();
    let expires = now.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
    let mut claims = json!({
        "aud": "https://graph.microsoft.com",
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": now,
        "nbf": now,
        "exp": expires,
        "appid": app.client_id,
        "appidacr": "1",
        "idtyp": "app",
        "tid": tenant,
        "uti": unique(),
        "ver": "1.0",
    });
    if app.token_format == TokenFormat::Jwt && !roles.is_empty() {
        claims["roles"] = json!(roles);
    }
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": "sim"});
    let encode = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let signature = URL_SAFE_NO_PAD.encode(format!("{}{}", unique(), unique()));
    format!("{}.{}.{signature}", encode(&header), encode(&claims))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(token: &str) -> Value {
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    fn app(format: TokenFormat) -> SimApp {
        SimApp {
            token_format: format,
            ..SimApp::new("app", "secret")
        }
    }

    #[test]
    fn jwts_carry_the_roles_and_the_tenant() {
        let roles: BTreeSet<String> = ["User.ReadWrite.All".to_string()].into();
        let token = access_token(
            &app(TokenFormat::Jwt),
            "t1",
            &roles,
            Duration::from_secs(60),
        );
        assert_eq!(token.split('.').count(), 3);
        let claims = payload(&token);
        assert_eq!(claims["roles"], json!(["User.ReadWrite.All"]));
        assert_eq!(
            (claims["tid"].as_str(), claims["appid"].as_str()),
            (Some("t1"), Some("app"))
        );
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            60
        );
    }

    #[test]
    fn no_grants_or_a_format_without_roles_gives_no_claim() {
        let roles: BTreeSet<String> = ["User.ReadWrite.All".to_string()].into();
        let lifetime = Duration::from_secs(60);
        let without = access_token(&app(TokenFormat::JwtWithoutRoles), "t", &roles, lifetime);
        assert!(payload(&without).get("roles").is_none());
        let none = access_token(&app(TokenFormat::Jwt), "t", &BTreeSet::new(), lifetime);
        assert!(payload(&none).get("roles").is_none());
        let opaque = access_token(&app(TokenFormat::Opaque), "t", &roles, lifetime);
        assert!(!opaque.contains('.'));
    }
}
