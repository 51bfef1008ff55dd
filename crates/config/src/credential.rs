//! A provider's credential: exactly one of a client secret, a certificate,
//! or a federated token (workload identity). Files are checked now, naming
//! the key at fault, and read again at each token request.

use crate::raw::{RawProvider, file_source, secret_source};
use crate::{Environment, InvalidConfig};
use entra_sync_core::secret::{ClientCredential, SecretSource};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

/// Where Azure Workload Identity's webhook puts the service-account token's path.
pub const AZURE_FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";

/// The credential of provider `key` (`providers[name]`).
pub(crate) fn provider_credential(
    key: &str,
    p: &RawProvider,
    base: &Path,
    env: &impl Environment,
) -> Result<ClientCredential, InvalidConfig> {
    if !env.reads_secrets() {
        return Ok(ClientCredential::Secret(SecretSource::Value(
            entra_sync_core::secret::Secret::new(String::new()),
        )));
    }
    let k = |field: &str| format!("{key}.{field}");
    let secret = p.client_secret_env.is_some() || p.client_secret_file.is_some();
    let certificate = p.client_certificate_file.is_some();
    let federated = p.federated_token_file.is_some() || p.workload_identity;
    if usize::from(secret) + usize::from(certificate) + usize::from(federated) > 1 {
        return Err(InvalidConfig::new(
            key,
            "set one credential: client_secret_env or client_secret_file, client_certificate_file, or federated_token_file / workload_identity",
        ));
    }
    if p.client_key_file.is_some() && !certificate {
        return Err(InvalidConfig::new(
            k("client_key_file"),
            "needs client_certificate_file",
        ));
    }
    if let Some(file) = &p.client_certificate_file {
        let certificate = file_source(&k("client_certificate_file"), file, base)?;
        let private_key = match &p.client_key_file {
            Some(key_file) => file_source(&k("client_key_file"), key_file, base)?,
            None => certificate.clone(),
        };
        check_certificate(&certificate, &private_key, &k("client_key_file"))?;
        return Ok(ClientCredential::Certificate {
            certificate,
            private_key,
        });
    }
    if federated {
        let (token_key, file) = match &p.federated_token_file {
            Some(file) => (k("federated_token_file"), file.clone()),
            None => {
                let file = env.var(AZURE_FEDERATED_TOKEN_FILE).ok_or_else(|| {
                    InvalidConfig::new(
                        k("workload_identity"),
                        format!("{AZURE_FEDERATED_TOKEN_FILE} is not set: is the pod labelled azure.workload.identity/use=true?"),
                    )
                })?;
                (AZURE_FEDERATED_TOKEN_FILE.to_owned(), file)
            }
        };
        let token = file_source(&token_key, &file, base)?;
        let is_jwt = token
            .read()
            .map(|t| t.expose().split('.').count() == 3)
            .unwrap_or(false);
        if !is_jwt {
            return Err(InvalidConfig::new(
                token_key,
                format!(
                    "{file}: not a JWT (a service-account token has three dot-separated parts)"
                ),
            ));
        }
        return Ok(ClientCredential::Federated(token));
    }
    if !secret {
        return Err(InvalidConfig::new(
            k("client_secret_env"),
            "missing: set client_secret_env, client_secret_file, client_certificate_file, federated_token_file or workload_identity = true",
        ));
    }
    secret_source(
        &k("client_secret"),
        p.client_secret_env.clone(),
        p.client_secret_file.clone(),
        base,
        env,
    )
    .map(ClientCredential::Secret)
}

/// The certificate file holds a certificate, and the key file a private key
/// that is not an elliptic-curve one (Entra's client assertions are RSA).
/// Whether the key is a usable RSA key is checked when the Graph client is built.
fn check_certificate(
    certificate: &SecretSource,
    private_key: &SecretSource,
    key_file_key: &str,
) -> Result<(), InvalidConfig> {
    let invalid = |source: &SecretSource, problem: String| {
        let e = source.error(&problem);
        InvalidConfig::new(e.key, format!("{}: {}", e.path, e.problem))
    };
    let cert_pem = certificate
        .read_raw()
        .map_err(|e| invalid(certificate, e.problem))?;
    match CertificateDer::pem_slice_iter(cert_pem.as_bytes()).next() {
        Some(Ok(_)) => {}
        Some(Err(e)) => {
            return Err(invalid(
                certificate,
                format!("unreadable PEM certificate: {e}"),
            ));
        }
        None => {
            return Err(invalid(
                certificate,
                "no PEM certificate (-----BEGIN CERTIFICATE-----) in the file".into(),
            ));
        }
    }
    let key_pem = private_key
        .read_raw()
        .map_err(|e| invalid(private_key, e.problem))?;
    let hint = if certificate == private_key {
        format!("; put the key in this file or set {key_file_key}")
    } else {
        String::new()
    };
    match PrivateKeyDer::from_pem_slice(key_pem.as_bytes()) {
        Ok(PrivateKeyDer::Pkcs1(_) | PrivateKeyDer::Pkcs8(_)) => Ok(()),
        Ok(_) => Err(invalid(
            private_key,
            "the private key is an elliptic-curve key; Entra client assertions need an RSA key"
                .into(),
        )),
        Err(_) => Err(invalid(
            private_key,
            format!(
                "no PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----) in the file{hint}"
            ),
        )),
    }
}
