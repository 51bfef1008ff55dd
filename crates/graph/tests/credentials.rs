//! Certificate and federated (workload identity) credentials against the
//! Graph simulator's token endpoint, which verifies them as Entra does; and
//! secret files rotated while the client runs.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entra_sync_core::failure::{FailureClass, Operation};
use entra_sync_graph::{BuildError, Credential, GraphClient, GraphConfig, SecretSource};
use entra_sync_sim::graph::{
    FederatedCredential, GraphSim, Jwk, OidcIssuer, SimApp, SimConfig, ThrottleConfig,
};
use serde_json::json;
use std::path::{Path, PathBuf};

const ISSUER: &str = "https://oidc.prod-aks.azure.com/0000/";
const SUBJECT: &str = "system:serviceaccount:entra-sync:entra-sync";

/// A fresh directory for one test's files.
fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("entra-sync-creds-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A self-signed RSA certificate and its key, as PEM.
struct TestCertificate {
    certificate: String,
    key: String,
}

fn certificate() -> TestCertificate {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["entra-sync".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    TestCertificate {
        certificate: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// An RSA key of an OIDC issuer (a Kubernetes cluster) that signs service-account tokens.
struct Issuer {
    key: RsaKeyPair,
    jwk: Jwk,
}

fn issuer() -> Issuer {
    let generated = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let key = RsaKeyPair::from_pkcs8(&generated.serialize_der()).unwrap();
    let (n, e) = rsa_public_key(aws_lc_rs::signature::KeyPair::public_key(&key).as_ref());
    Issuer {
        key,
        jwk: Jwk {
            kid: Some("k1".into()),
            n: URL_SAFE_NO_PAD.encode(n),
            e: URL_SAFE_NO_PAD.encode(e),
        },
    }
}

/// Modulus and exponent of a DER `RSAPublicKey` (SEQUENCE of two INTEGERs).
fn rsa_public_key(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn read(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = der[0];
        let (len, start) = match der[1] {
            l if l < 0x80 => (usize::from(l), 2),
            l => {
                let n = usize::from(l & 0x7f);
                let len = der[2..2 + n]
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
                (len, 2 + n)
            }
        };
        (tag, &der[start..start + len], &der[start + len..])
    }
    let (_, sequence, _) = read(der);
    let (_, n, rest) = read(sequence);
    let (_, e, _) = read(rest);
    let strip = |v: &[u8]| v.iter().skip_while(|b| **b == 0).copied().collect();
    (strip(n), strip(e))
}

impl Issuer {
    /// A service-account token as the issuer signs it (RS256), valid `from`..`until` (seconds from now).
    fn token(&self, subject: &str, from: i64, until: i64) -> String {
        let now = chrono::Utc::now().timestamp();
        let header = json!({"alg": "RS256", "kid": "k1"});
        let claims = json!({
            "aud": [FederatedCredential::AUDIENCE],
            "iss": ISSUER,
            "sub": subject,
            "nbf": now + from,
            "iat": now + from,
            "exp": now + until,
        });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signed.as_bytes(),
                &mut signature,
            )
            .unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

fn sim_config(app: SimApp, issuers: Vec<OidcIssuer>) -> SimConfig {
    SimConfig {
        apps: vec![app],
        oidc_issuers: issuers,
        throttle: ThrottleConfig::disabled(),
        ..SimConfig::default()
    }
}

fn app() -> SimApp {
    SimApp::new(SimConfig::CLIENT_ID, SimConfig::CLIENT_SECRET)
}

fn client_for(sim: &GraphSim, credential: Credential) -> Result<GraphClient, BuildError> {
    GraphClient::new(
        GraphConfig::new(SimConfig::TENANT_ID, SimConfig::CLIENT_ID, credential)
            .with_base_url(&sim.base_url()),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn certificate_credential(dir: &Path, cert: &TestCertificate) -> Credential {
    Credential::Certificate {
        certificate: SecretSource::file(
            "client_certificate_file",
            write(dir, "cert.pem", &cert.certificate),
        ),
        private_key: SecretSource::file("client_key_file", write(dir, "key.pem", &cert.key)),
    }
}

/// The token request the client makes first fails with this class and AADSTS code.
async fn refused(client: &GraphClient, code: &str) {
    let failure = client.verified_domains().await.unwrap_err();
    assert_eq!(failure.operation, Operation::Token, "{failure}");
    assert_eq!(failure.class, FailureClass::Configuration, "{failure}");
    assert!(failure.to_string().contains(code), "{failure}");
}

#[tokio::test]
async fn a_client_assertion_signed_with_the_registered_certificate_gets_a_token() {
    let cert = certificate();
    let sim = GraphSim::start(sim_config(
        SimApp {
            certificates: vec![cert.certificate.clone()],
            ..app()
        },
        vec![],
    ))
    .await
    .unwrap();
    let dir = temp_dir();
    let client = client_for(&sim, certificate_credential(&dir, &cert)).unwrap();
    let domains = client.verified_domains().await.unwrap();
    assert!(!domains.is_empty());

    // One PEM holding both the certificate and the key works too.
    let both = write(
        &dir,
        "both.pem",
        &format!("{}{}", cert.key, cert.certificate),
    );
    let source = SecretSource::file("client_certificate_file", both);
    let combined = Credential::Certificate {
        certificate: source.clone(),
        private_key: source,
    };
    let combined = client_for(&sim, combined).unwrap();
    combined.verified_domains().await.unwrap();
}

#[tokio::test]
async fn an_assertion_the_registered_certificate_does_not_verify_is_refused() {
    let registered = certificate();
    let other = certificate();
    let sim = GraphSim::start(sim_config(
        SimApp {
            certificates: vec![registered.certificate.clone()],
            ..app()
        },
        vec![],
    ))
    .await
    .unwrap();
    let dir = temp_dir();
    // The registered certificate's thumbprint, but another key's signature.
    let forged = TestCertificate {
        certificate: registered.certificate.clone(),
        key: other.key.clone(),
    };
    let client_forged = client_for(&sim, certificate_credential(&dir, &forged)).unwrap();
    refused(&client_forged, "AADSTS700027").await;
    // A certificate the app does not have.
    let unregistered = client_for(&sim, certificate_credential(&temp_dir(), &other)).unwrap();
    refused(&unregistered, "AADSTS700027").await;
    // A wrong client secret is still refused as such.
    let wrong_secret =
        client_for(&sim, Credential::from(entra_sync_graph::Secret::new("x"))).unwrap();
    refused(&wrong_secret, "AADSTS7000215").await;
}

#[tokio::test]
async fn bad_key_files_fail_when_the_client_is_built_naming_the_key() {
    let dir = temp_dir();
    let cert = certificate();
    let cases = [
        (
            Credential::Certificate {
                certificate: SecretSource::file("client_certificate_file", dir.join("missing.pem")),
                private_key: SecretSource::file("client_key_file", write(&dir, "k.pem", &cert.key)),
            },
            "client_certificate_file",
            "cannot read",
        ),
        (
            Credential::Certificate {
                certificate: SecretSource::file(
                    "client_certificate_file",
                    write(&dir, "c.pem", &cert.certificate),
                ),
                private_key: SecretSource::file(
                    "client_key_file",
                    write(&dir, "not-a-key.pem", &cert.certificate),
                ),
            },
            "client_key_file",
            "no PEM private key",
        ),
        (
            Credential::Certificate {
                certificate: SecretSource::file(
                    "client_certificate_file",
                    write(&dir, "no-cert.pem", "hello"),
                ),
                private_key: SecretSource::file("client_key_file", dir.join("k.pem")),
            },
            "client_certificate_file",
            "no PEM certificate",
        ),
    ];
    let sim = GraphSim::start(sim_config(app(), vec![])).await.unwrap();
    for (credential, key, problem) in cases {
        let error = client_for(&sim, credential).unwrap_err().to_string();
        assert!(
            error.contains(key) && error.contains(problem),
            "{key}: {error}"
        );
    }
}

fn federated_sim_config(issuer: &Issuer) -> SimConfig {
    sim_config(
        SimApp {
            federated_credentials: vec![FederatedCredential::new(ISSUER, SUBJECT)],
            ..app()
        },
        vec![OidcIssuer {
            issuer: ISSUER.into(),
            keys: vec![issuer.jwk.clone()],
        }],
    )
}

#[tokio::test]
async fn a_service_account_token_matching_a_federated_credential_gets_a_token() {
    let issuer = issuer();
    let sim = GraphSim::start(federated_sim_config(&issuer))
        .await
        .unwrap();
    let dir = temp_dir();
    let token = write(&dir, "token", &issuer.token(SUBJECT, 0, 3600));
    let client = client_for(
        &sim,
        Credential::Federated(SecretSource::file("federated_token_file", token)),
    )
    .unwrap();
    client.verified_domains().await.unwrap();
}

#[tokio::test]
async fn federated_tokens_are_refused_for_another_subject_a_foreign_key_or_expiry() {
    let issuer_key = issuer();
    let sim = GraphSim::start(federated_sim_config(&issuer_key))
        .await
        .unwrap();
    let dir = temp_dir();
    let cases = [
        (
            issuer_key.token("system:serviceaccount:other:other", 0, 3600),
            "AADSTS70021",
        ),
        (issuer().token(SUBJECT, 0, 3600), "AADSTS700027"),
        (issuer_key.token(SUBJECT, -7200, -3600), "AADSTS700024"),
    ];
    for (i, (token, code)) in cases.into_iter().enumerate() {
        let path = write(&dir, &format!("token-{i}"), &token);
        let client = client_for(
            &sim,
            Credential::Federated(SecretSource::file("federated_token_file", path)),
        )
        .unwrap();
        refused(&client, code).await;
    }
}

#[tokio::test]
async fn a_secret_file_rotated_while_running_is_used_at_the_next_token_request() {
    let sim = GraphSim::start(sim_config(app(), vec![])).await.unwrap();
    let dir = temp_dir();
    let file = write(
        &dir,
        "client-secret",
        &format!("{}\n", SimConfig::CLIENT_SECRET),
    );
    let client = client_for(
        &sim,
        Credential::Secret(SecretSource::file("client_secret_file", &file)),
    )
    .unwrap();
    client.verified_domains().await.unwrap();

    // The app's secret is rotated in Entra and tokens revoked: the old file fails.
    sim.set_client_secret(SimConfig::CLIENT_ID, "rotated-secret-value");
    sim.revoke_tokens();
    refused(&client, "AADSTS7000215").await;

    // The mounted file is updated; the same client, not restarted, uses it.
    std::fs::write(&file, "rotated-secret-value\n").unwrap();
    client.verified_domains().await.unwrap();
}

#[tokio::test]
async fn a_projected_token_renewed_while_running_is_used_at_the_next_token_request() {
    let issuer = issuer();
    let sim = GraphSim::start(federated_sim_config(&issuer))
        .await
        .unwrap();
    let dir = temp_dir();
    let file = write(&dir, "token", &issuer.token(SUBJECT, 0, 3600));
    let client = client_for(
        &sim,
        Credential::Federated(SecretSource::file("federated_token_file", &file)),
    )
    .unwrap();
    client.verified_domains().await.unwrap();

    // The kubelet writes an expired token (as a stand-in for "the old one"), then a fresh one.
    std::fs::write(&file, issuer.token(SUBJECT, -7200, -3600)).unwrap();
    sim.revoke_tokens();
    refused(&client, "AADSTS700024").await;
    std::fs::write(&file, issuer.token(SUBJECT, 0, 3600)).unwrap();
    client.verified_domains().await.unwrap();
}
