//! How the app proves who it is to the token endpoint, per the Microsoft
//! identity platform's client-credentials flow:
//! - a client secret;
//! - a certificate: a client assertion (a JWT signed with the app's private
//!   key, PS256, `x5t#S256` naming the certificate), per entra-docs
//!   `certificate-credentials.md`;
//! - a federated token (workload identity federation): a token another
//!   issuer signed, e.g. a Kubernetes service-account token, sent as the
//!   client assertion as it is.
//!
//! Files are read at each token request, so a rotated secret, certificate or
//! projected token takes effect without a restart.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PSS_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entra_sync_core::secret::{ClientCredential, Secret, SecretFileError, SecretSource};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use sha2::{Digest, Sha256};

/// `client_assertion_type` of a JWT client assertion (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a client assertion is valid; Microsoft advises 5 to 10 minutes.
const ASSERTION_LIFETIME_SECS: i64 = 600;

/// The app's credential (defined in `entra_sync_core`, so configuration can
/// build it without this crate).
pub type Credential = ClientCredential;

/// The credential cannot be used now; names the key and file at fault.
pub type CredentialError = SecretFileError;

/// The form fields that authenticate the client at `token_url`, read (and
/// signed) now.
pub(crate) fn form_fields(
    credential: &Credential,
    client_id: &str,
    token_url: &str,
) -> Result<Vec<(&'static str, Secret)>, CredentialError> {
    Ok(match credential {
        Credential::Secret(secret) => vec![("client_secret", secret.read()?)],
        Credential::Certificate {
            certificate,
            private_key,
        } => {
            let signer = CertificateSigner::load(certificate, private_key)?;
            let assertion = signer.assertion(client_id, token_url, private_key)?;
            vec![
                ("client_assertion_type", Secret::new(JWT_BEARER)),
                ("client_assertion", assertion),
            ]
        }
        Credential::Federated(token) => vec![
            ("client_assertion_type", Secret::new(JWT_BEARER)),
            ("client_assertion", token.read()?),
        ],
    })
}

/// Reads and checks the credential's files now: a missing file, a file
/// without a certificate or an RSA key is an error naming its key. A secret
/// given as a value was checked when the configuration was read (and is left
/// empty by commands that only touch the database).
pub fn check_credential(credential: &Credential) -> Result<(), CredentialError> {
    match credential {
        Credential::Secret(SecretSource::Value(_)) => Ok(()),
        Credential::Secret(secret) | Credential::Federated(secret) => secret.read().map(drop),
        Credential::Certificate {
            certificate,
            private_key,
        } => CertificateSigner::load(certificate, private_key).map(drop),
    }
}

/// A certificate's key pair, ready to sign client assertions.
struct CertificateSigner {
    key: RsaKeyPair,
    /// Base64url SHA-256 of the certificate's DER: the `x5t#S256` header.
    thumbprint: String,
}

impl CertificateSigner {
    fn load(
        certificate: &SecretSource,
        private_key: &SecretSource,
    ) -> Result<Self, CredentialError> {
        let cert_pem = certificate.read_raw()?;
        let cert = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .next()
            .ok_or_else(|| certificate.error("no PEM certificate (BEGIN CERTIFICATE) in the file"))?
            .map_err(|e| certificate.error(&format!("unreadable PEM certificate: {e}")))?;
        let key_pem = private_key.read_raw()?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
            private_key.error(&format!(
                "no PEM private key (BEGIN PRIVATE KEY or BEGIN RSA PRIVATE KEY) in the file: {e}"
            ))
        })?;
        let key = match &key {
            PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
            _ => {
                return Err(private_key.error(
                    "the private key is not an RSA key (Entra client assertions are RSA-signed)",
                ));
            }
        }
        .map_err(|e| private_key.error(&format!("not a usable RSA private key: {e}")))?;
        Ok(Self {
            key,
            thumbprint: URL_SAFE_NO_PAD.encode(Sha256::digest(cert.as_ref())),
        })
    }

    /// A client assertion for `client_id` at `token_url`, valid for ten minutes.
    fn assertion(
        &self,
        client_id: &str,
        token_url: &str,
        private_key: &SecretSource,
    ) -> Result<Secret, CredentialError> {
        let now = chrono::Utc::now().timestamp();
        let header = json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.thumbprint});
        let claims = json!({
            "aud": token_url,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PSS_SHA256,
                &SystemRandom::new(),
                signed.as_bytes(),
                &mut signature,
            )
            .map_err(|_| private_key.error("signing the client assertion failed"))?;
        Ok(Secret::new(format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}
