//! How the token endpoint checks a client's credential, as the Microsoft
//! identity platform does (entra-docs `certificate-credentials.md`,
//! `workload-identity-federation.md`, `microsoft-graph.md` §9):
//! - a client secret must equal one registered on the app;
//! - a client assertion whose `iss` is the app itself was signed with the
//!   private key of a certificate registered on the app, named by its
//!   `x5t#S256` (or SHA-1 `x5t`) thumbprint; the signature is verified with
//!   the certificate's public key (RS256 or PS256);
//! - any other client assertion is a federated token: its issuer, subject
//!   and audience must match a federated identity credential of the app, and
//!   its signature one of the keys the issuer publishes (its JWKS).
//!
//! Both kinds of assertion must be within their `nbf`..`exp` window, with
//! five minutes of clock skew.

use super::{FederatedCredential, OidcIssuer, SimApp};
use aws_lc_rs::signature::{
    RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `client_assertion_type` of a JWT client assertion (RFC 7523).
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Clock skew the identity platform allows on `nbf` and `exp`.
const SKEW_SECS: i64 = 300;

/// Why the token endpoint refuses a client: HTTP status, OAuth error, AADSTS code, description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: u16,
    pub error: &'static str,
    pub code: u32,
    pub description: String,
}

fn refuse(status: u16, error: &'static str, code: u32, description: impl Into<String>) -> Refusal {
    Refusal {
        status,
        error,
        code,
        description: description.into(),
    }
}

/// Checks the credential in a client-credentials `form` for `app`. `secret`
/// is the app's current client secret; `audience_ok` says whether an `aud`
/// names this tenant's token endpoint.
pub(crate) fn check(
    app: &SimApp,
    secret: &str,
    issuers: &[OidcIssuer],
    form: &dyn Fn(&str) -> Option<String>,
    audience_ok: &dyn Fn(&str) -> bool,
    now: i64,
) -> Result<(), Refusal> {
    let invalid_secret = || {
        refuse(
            401,
            "invalid_client",
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                app.client_id
            ),
        )
    };
    match (form("client_secret"), form("client_assertion")) {
        (Some(given), None) => (given == secret && !secret.is_empty())
            .then_some(())
            .ok_or_else(invalid_secret),
        (None, Some(assertion)) => {
            let kind = form("client_assertion_type").unwrap_or_default();
            if kind != JWT_BEARER {
                return Err(refuse(
                    400,
                    "invalid_request",
                    50027,
                    format!("Invalid client_assertion_type '{kind}'."),
                ));
            }
            let jwt = Jwt::parse(&assertion)?;
            if jwt.claim("iss") == Some(app.client_id.as_str()) {
                check_certificate_assertion(app, &jwt, audience_ok, now)
            } else {
                check_federated_assertion(app, issuers, &jwt, now)
            }
        }
        (Some(_), Some(_)) => Err(refuse(
            400,
            "invalid_request",
            90014,
            "Only one of 'client_secret' and 'client_assertion' may be sent.",
        )),
        (None, None) => Err(refuse(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )),
    }
}

/// A JWT split into its parts; the signature is not checked yet.
struct Jwt {
    header: Value,
    claims: Value,
    signed: String,
    signature: Vec<u8>,
}

impl Jwt {
    fn parse(text: &str) -> Result<Self, Refusal> {
        let malformed = || {
            refuse(
                400,
                "invalid_request",
                50027,
                "JWT token is invalid or malformed.",
            )
        };
        let mut parts = text.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| malformed());
        let json = |part: &str| -> Result<Value, Refusal> {
            serde_json::from_slice(&decode(part)?).map_err(|_| malformed())
        };
        Ok(Self {
            header: json(h)?,
            claims: json(c)?,
            signed: format!("{h}.{c}"),
            signature: decode(s)?,
        })
    }

    fn claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    fn audiences(&self) -> Vec<&str> {
        match self.claims.get("aud") {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// `nbf` ≤ now ≤ `exp`, with skew; `exp` is required.
    fn check_lifetime(&self, now: i64) -> Result<(), Refusal> {
        let time = |name: &str| self.claims.get(name).and_then(Value::as_i64);
        let in_window = time("exp").is_some_and(|exp| now <= exp + SKEW_SECS)
            && time("nbf").is_none_or(|nbf| nbf - SKEW_SECS <= now);
        in_window.then_some(()).ok_or_else(|| {
            refuse(
                401,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
            )
        })
    }
}

fn bad_signature(detail: &str) -> Refusal {
    refuse(
        401,
        "invalid_client",
        700027,
        format!("Client assertion failed signature validation. {detail}"),
    )
}

fn check_certificate_assertion(
    app: &SimApp,
    jwt: &Jwt,
    audience_ok: &dyn Fn(&str) -> bool,
    now: i64,
) -> Result<(), Refusal> {
    if jwt.claim("sub") != Some(app.client_id.as_str()) {
        return Err(refuse(
            401,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        ));
    }
    if !jwt.audiences().into_iter().any(audience_ok) {
        return Err(refuse(
            400,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed: its audience is not this tenant's token endpoint.",
        ));
    }
    if jwt.claim("jti").is_none_or(str::is_empty) {
        return Err(refuse(
            400,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed: no jti.",
        ));
    }
    jwt.check_lifetime(now)?;
    let header = |name: &str| jwt.header.get(name).and_then(Value::as_str);
    let certificates = app
        .certificates
        .iter()
        .filter_map(|pem| CertificateDer::from_pem_slice(pem.as_bytes()).ok());
    let certificate = certificates
        .into_iter()
        .find(|der| {
            header("x5t#S256") == Some(URL_SAFE_NO_PAD.encode(Sha256::digest(der)).as_str())
                || header("x5t") == Some(sha1_thumbprint(der).as_str())
        })
        .ok_or_else(|| {
            bad_signature(&format!(
                "The key was not found: no certificate with that thumbprint is registered on app '{}'.",
                app.client_id
            ))
        })?;
    let algorithm = match header("alg") {
        Some("PS256") => webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        Some("RS256") => webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
        other => return Err(bad_signature(&format!("Unsupported algorithm {other:?}."))),
    };
    let certificate = webpki::EndEntityCert::try_from(&certificate)
        .map_err(|e| bad_signature(&format!("The registered certificate is unreadable: {e:?}.")))?;
    certificate
        .verify_signature(algorithm, jwt.signed.as_bytes(), &jwt.signature)
        .map_err(|_| bad_signature("Client assertion contains an invalid signature."))
}

fn check_federated_assertion(
    app: &SimApp,
    issuers: &[OidcIssuer],
    jwt: &Jwt,
    now: i64,
) -> Result<(), Refusal> {
    let issuer = jwt.claim("iss").unwrap_or_default();
    let subject = jwt.claim("sub").unwrap_or_default();
    let audiences = jwt.audiences();
    let matches = |f: &FederatedCredential| {
        f.issuer == issuer
            && f.subject == subject
            && audiences.iter().any(|a| f.audiences.iter().any(|x| x == a))
    };
    if !app.federated_credentials.iter().any(matches) {
        return Err(refuse(
            400,
            "invalid_request",
            70021,
            format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{issuer}'. Assertion Subject: '{subject}'. Assertion Audience: '{}'.",
                audiences.join(",")
            ),
        ));
    }
    jwt.check_lifetime(now)?;
    let kid = jwt.header.get("kid").and_then(Value::as_str);
    let keys = issuers
        .iter()
        .filter(|i| i.issuer == issuer)
        .flat_map(|i| i.keys.iter())
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid);
    let algorithm = match jwt.header.get("alg").and_then(Value::as_str) {
        Some("RS256") => &RSA_PKCS1_2048_8192_SHA256,
        Some("PS256") => &RSA_PSS_2048_8192_SHA256,
        other => return Err(bad_signature(&format!("Unsupported algorithm {other:?}."))),
    };
    let verified = keys.into_iter().any(|key| {
        let (Ok(n), Ok(e)) = (
            URL_SAFE_NO_PAD.decode(&key.n),
            URL_SAFE_NO_PAD.decode(&key.e),
        ) else {
            return false;
        };
        RsaPublicKeyComponents { n, e }
            .verify(algorithm, jwt.signed.as_bytes(), &jwt.signature)
            .is_ok()
    });
    verified.then_some(()).ok_or_else(|| {
        bad_signature(&format!(
            "The signature does not match a key issuer '{issuer}' publishes."
        ))
    })
}

/// Base64url SHA-1 of a certificate's DER: the legacy `x5t` header.
fn sha1_thumbprint(der: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}
