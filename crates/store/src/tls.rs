//! TLS to PostgreSQL, with libpq's meanings of `sslmode` and `sslrootcert`.
//!
//! tokio-postgres 0.7 knows only `disable`, `prefer` and `require`, and no
//! `sslrootcert`, so the connection string is read libpq-style first: these
//! two options are taken out and become a rustls configuration; the rest goes
//! to tokio-postgres. Both URLs (`postgres://…?sslmode=verify-full`) and
//! key-value strings (`host=db sslmode=require`) are read.
//!
//! | `sslmode`          | TLS                      | certificate chain checked | host name checked |
//! |--------------------|--------------------------|---------------------------|-------------------|
//! | `disable`          | never                    | –                         | –                 |
//! | `prefer` (default) | when the server offers it | no                       | no                |
//! | `require`          | always                   | no (yes with `sslrootcert`, as libpq) | no    |
//! | `verify-ca`        | always                   | yes                       | no                |
//! | `verify-full`      | always                   | yes                       | yes               |
//!
//! `sslrootcert` names a PEM file of CA certificates, or `system` for the
//! system's store; with `system`, `sslmode` defaults to `verify-full` and a
//! weaker mode is refused, as in libpq. `verify-ca` and `verify-full` without
//! `sslrootcert` trust the system's CAs (libpq would read `~/.postgresql/root.crt`).

use crate::StoreError;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, certificate unchecked.
    Prefer,
    /// TLS always, certificate unchecked.
    Require,
    /// TLS always, the certificate chains to a trusted CA.
    VerifyCa,
    /// TLS always, the certificate chains to a trusted CA and names the host.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, String> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode {other:?} is not supported: use disable, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }

    /// The name in a connection string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: whether TLS is tried, and required.
    fn driver_mode(self) -> tokio_postgres::config::SslMode {
        match self {
            Self::Disable => tokio_postgres::config::SslMode::Disable,
            Self::Prefer => tokio_postgres::config::SslMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }
}

/// Where trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// A PEM file (`sslrootcert=/path`).
    File(PathBuf),
    /// The system's store (`sslrootcert=system`).
    System,
}

/// The TLS settings of a connection string, with libpq's rules applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The mode in force (`require` with `sslrootcert` reads as `verify-ca`).
    pub mode: SslMode,
    /// The trusted CAs, when certificates are checked.
    pub roots: Option<RootCerts>,
}

impl TlsSettings {
    fn resolve(mode: Option<&str>, root: Option<&str>) -> Result<Self, String> {
        let mode = mode.map(SslMode::parse).transpose()?;
        let roots = root.map(|r| match r {
            "system" => RootCerts::System,
            path => RootCerts::File(PathBuf::from(path)),
        });
        let mode = match (mode, &roots) {
            (None, Some(RootCerts::System)) => SslMode::VerifyFull,
            (Some(weak), Some(RootCerts::System)) if weak != SslMode::VerifyFull => {
                return Err(format!(
                    "sslmode {:?} may not be used with sslrootcert=system (use verify-full)",
                    weak.as_str()
                ));
            }
            (None, _) => SslMode::Prefer,
            (Some(SslMode::Require), Some(_)) => SslMode::VerifyCa,
            (Some(mode), _) => mode,
        };
        let roots = match mode {
            SslMode::VerifyCa | SslMode::VerifyFull => Some(roots.unwrap_or(RootCerts::System)),
            _ => None,
        };
        Ok(Self { mode, roots })
    }

    /// The rustls connector for these settings.
    fn connector(&self) -> Result<MakeRustlsConnect, StoreError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match (&self.roots, self.mode) {
            (Some(roots), mode) => {
                let chain = WebPkiServerVerifier::builder_with_provider(
                    Arc::new(root_store(roots)?),
                    provider.clone(),
                )
                .build()
                .map_err(|e| StoreError::Tls(format!("cannot check certificates: {e}")))?;
                if mode == SslMode::VerifyFull {
                    chain
                } else {
                    Arc::new(Lenient {
                        chain: Some(chain),
                        provider: provider.clone(),
                    })
                }
            }
            (None, _) => Arc::new(Lenient {
                chain: None,
                provider: provider.clone(),
            }),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }
}

/// Reads a connection string: the tokio-postgres settings and the TLS connector.
pub(crate) fn connect_settings(
    url: &str,
) -> Result<(tokio_postgres::Config, MakeRustlsConnect, TlsSettings), StoreError> {
    let (rest, tls) = split(url).map_err(StoreError::Url)?;
    let mut config =
        tokio_postgres::Config::from_str(&rest).map_err(|e| StoreError::Url(e.to_string()))?;
    config.ssl_mode(tls.mode.driver_mode());
    let connector = tls.connector()?;
    Ok((config, connector, tls))
}

/// Splits a connection string into what tokio-postgres reads and the TLS settings.
pub fn split(url: &str) -> Result<(String, TlsSettings), String> {
    let (rest, mode, root) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        split_url(url)
    } else {
        split_key_values(url)?
    };
    Ok((
        rest,
        TlsSettings::resolve(mode.as_deref(), root.as_deref())?,
    ))
}

type Split = (String, Option<String>, Option<String>);

/// `postgres://…?sslmode=…&sslrootcert=…&…`.
fn split_url(url: &str) -> Split {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None, None);
    };
    let (mut mode, mut root, mut kept) = (None, None, Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        match decode(key).as_str() {
            "sslmode" => mode = Some(decode(value)),
            "sslrootcert" => root = Some(decode(value)),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, mode, root)
}

/// `host=… sslmode=… sslrootcert='…'`, with libpq's quoting.
fn split_key_values(text: &str) -> Result<Split, String> {
    let (mut mode, mut root, mut kept) = (None, None, Vec::new());
    for (key, value) in key_values(text)? {
        match key.as_str() {
            "sslmode" => mode = Some(value),
            "sslrootcert" => root = Some(value),
            _ => kept.push(format!(
                "{key}='{}'",
                value.replace('\\', "\\\\").replace('\'', "\\'")
            )),
        }
    }
    Ok((kept.join(" "), mode, root))
}

/// The pairs of a libpq key-value string: `key = value`, values optionally
/// single-quoted, `\` escaping the next character.
fn key_values(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut chars = text.chars().peekable();
    let mut pairs = Vec::new();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("connection string: missing \"=\" after {key:?}"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\'') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => {
                        return Err(format!("connection string: unterminated quote in {key:?}"));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// The trusted CAs.
fn root_store(roots: &RootCerts) -> Result<RootCertStore, StoreError> {
    let mut store = RootCertStore::empty();
    match roots {
        RootCerts::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    StoreError::Tls(format!("cannot read sslrootcert {}: {e}", path.display()))
                })?;
            for cert in certs {
                store
                    .add(cert)
                    .map_err(|e| StoreError::Tls(format!("sslrootcert {}: {e}", path.display())))?;
            }
            if store.is_empty() {
                return Err(StoreError::Tls(format!(
                    "sslrootcert {} holds no certificate",
                    path.display()
                )));
            }
        }
        RootCerts::System => {
            let found = rustls_native_certs::load_native_certs();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                return Err(StoreError::Tls(
                    "sslrootcert=system: no CA certificate found in the system's store".into(),
                ));
            }
        }
    }
    Ok(store)
}

/// A check weaker than `verify-full`: `prefer` and `require` take any
/// certificate, as libpq (no `chain`); `verify-ca` wants the chain to lead to
/// a trusted CA, whatever the name. The handshake's signatures are always
/// checked, with the provider's algorithms.
#[derive(Debug)]
struct Lenient {
    /// The chain's check, for `verify-ca`.
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the chain before the name: a name error means the chain is trusted.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> (String, TlsSettings) {
        split(url).unwrap()
    }

    fn tls(mode: SslMode, roots: Option<RootCerts>) -> TlsSettings {
        TlsSettings { mode, roots }
    }

    #[test]
    fn a_url_without_tls_options_prefers_tls_unchecked_as_libpq() {
        let (rest, t) = settings("postgres://u:p@db:5432/x?application_name=a");
        assert_eq!(rest, "postgres://u:p@db:5432/x?application_name=a");
        assert_eq!(t, tls(SslMode::Prefer, None));
    }

    #[test]
    fn the_tls_options_leave_the_url_and_the_rest_stays() {
        let (rest, t) = settings(
            "postgresql://db/x?sslmode=verify-full&options=-c%20search_path%3Ds&sslrootcert=%2Fetc%2Fca.pem",
        );
        assert_eq!(rest, "postgresql://db/x?options=-c%20search_path%3Ds");
        assert_eq!(
            t,
            tls(
                SslMode::VerifyFull,
                Some(RootCerts::File("/etc/ca.pem".into()))
            )
        );
        assert_eq!(
            settings("postgres://db/x?sslmode=disable").0,
            "postgres://db/x"
        );
    }

    #[test]
    fn libpq_meanings_of_each_mode() {
        let mode = |url: &str| settings(url).1;
        assert_eq!(
            mode("postgres://db?sslmode=disable"),
            tls(SslMode::Disable, None)
        );
        assert_eq!(
            mode("postgres://db?sslmode=require"),
            tls(SslMode::Require, None)
        );
        assert_eq!(
            mode("postgres://db?sslmode=require&sslrootcert=ca.pem"),
            tls(SslMode::VerifyCa, Some(RootCerts::File("ca.pem".into()))),
            "require with a root certificate checks the chain, as libpq"
        );
        assert_eq!(
            mode("postgres://db?sslmode=verify-ca"),
            tls(SslMode::VerifyCa, Some(RootCerts::System))
        );
        assert_eq!(
            mode("postgres://db?sslrootcert=system"),
            tls(SslMode::VerifyFull, Some(RootCerts::System))
        );
    }

    #[test]
    fn bad_tls_options_are_refused_by_name() {
        let error = split("postgres://db?sslmode=allow").unwrap_err();
        assert!(error.contains("sslmode \"allow\""), "{error}");
        let error = split("postgres://db?sslmode=require&sslrootcert=system").unwrap_err();
        assert!(error.contains("sslrootcert=system"), "{error}");
        let error = split("host=db sslmode='verify-full").unwrap_err();
        assert!(error.contains("unterminated"), "{error}");
    }

    #[test]
    fn key_value_strings_are_read_with_libpq_quoting() {
        let (rest, t) =
            settings("host=db user = 'o\\'brien' sslmode=verify-ca sslrootcert='/my certs/ca.pem'");
        assert_eq!(rest, "host='db' user='o\\'brien'");
        assert_eq!(
            t,
            tls(
                SslMode::VerifyCa,
                Some(RootCerts::File("/my certs/ca.pem".into()))
            )
        );
        let config = tokio_postgres::Config::from_str(&rest).unwrap();
        assert_eq!(config.get_user(), Some("o'brien"));
    }

    #[test]
    fn a_missing_root_certificate_file_is_an_error_naming_it() {
        let error =
            connect_settings("postgres://db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .err()
                .unwrap()
                .to_string();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}
