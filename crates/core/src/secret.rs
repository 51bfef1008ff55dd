//! A secret string that never prints, and where one comes from: a value fixed
//! at start, or a file read again at each use so that a rotated file takes
//! effect without a restart.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::path::{Path, PathBuf};

/// A client secret or access token. `Debug` prints `***`; there is no `Display`,
/// so it cannot end up in a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_string())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

/// Where a secret comes from. A file is read at each use, so a secret rotated
/// in place (a Kubernetes Secret volume, a renewed certificate, a projected
/// service-account token) takes effect at the next use, with no restart.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A value fixed at start, e.g. from an environment variable.
    Value(Secret),
    /// A file, named with the configuration key that set it (for errors).
    File {
        /// The configuration key, e.g. `providers[contoso].client_secret_file`.
        key: String,
        /// The file.
        path: PathBuf,
    },
}

/// A secret file could not be used; names the key and the file, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {path}: {problem}")]
pub struct SecretFileError {
    /// The configuration key that names the file.
    pub key: String,
    /// The file, as displayed.
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

impl SecretSource {
    /// A source that reads `path` at each use; `key` names it in errors.
    pub fn file(key: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self::File {
            key: key.into(),
            path: path.into(),
        }
    }

    /// The secret now: the fixed value, or the file's content without its
    /// final line break. An empty file is an error.
    pub fn read(&self) -> Result<Secret, SecretFileError> {
        let text = self.read_raw()?;
        let value = text.trim_end_matches(['\n', '\r']);
        if value.is_empty() {
            return Err(self.error("the file is empty"));
        }
        Ok(Secret::new(value))
    }

    /// The whole content now (PEM files keep their line breaks).
    pub fn read_raw(&self) -> Result<String, SecretFileError> {
        match self {
            Self::Value(secret) => Ok(secret.expose().to_owned()),
            Self::File { path, .. } => std::fs::read_to_string(path)
                .map_err(|e| self.error(&format!("cannot read the file: {e}"))),
        }
    }

    /// The file, if the secret comes from one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Value(_) => None,
            Self::File { path, .. } => Some(path),
        }
    }

    /// An error about this source, naming its key and file.
    pub fn error(&self, problem: &str) -> SecretFileError {
        let (key, path) = match self {
            Self::Value(_) => (String::from("(value)"), String::new()),
            Self::File { key, path } => (key.clone(), path.display().to_string()),
        };
        SecretFileError {
            key,
            path,
            problem: problem.to_owned(),
        }
    }
}

/// How an app proves who it is to the Microsoft identity platform.
/// `entra_sync_graph` turns it into the token request's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCredential {
    /// A client secret.
    Secret(SecretSource),
    /// A certificate registered on the app, and its RSA private key: a
    /// client assertion signed with the key.
    Certificate {
        /// PEM holding the certificate (the first one is used).
        certificate: SecretSource,
        /// PEM holding the private key (PKCS#8 or PKCS#1 RSA); may be the same file.
        private_key: SecretSource,
    },
    /// A token from an issuer the app trusts (workload identity federation),
    /// e.g. a projected Kubernetes service-account token.
    Federated(SecretSource),
}

impl From<Secret> for ClientCredential {
    fn from(secret: Secret) -> Self {
        Self::Secret(SecretSource::Value(secret))
    }
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Value(_) => f.write_str("Value(***)"),
            Self::File { key, path } => f
                .debug_struct("File")
                .field("key", key)
                .field("path", path)
                .finish(),
        }
    }
}

impl From<Secret> for SecretSource {
    fn from(secret: Secret) -> Self {
        Self::Value(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_source_reads_the_file_again_at_each_use() {
        let path = std::env::temp_dir().join(format!("entra-sync-secret-{}", std::process::id()));
        std::fs::write(&path, "first\n").unwrap();
        let source = SecretSource::file("k_file", &path);
        assert_eq!(source.read().unwrap().expose(), "first");
        std::fs::write(&path, "second").unwrap();
        assert_eq!(source.read().unwrap().expose(), "second");
        std::fs::write(&path, "\n").unwrap();
        let empty = source.read().unwrap_err();
        assert_eq!(
            (empty.key.as_str(), empty.problem.as_str()),
            ("k_file", "the file is empty")
        );
        std::fs::remove_file(&path).unwrap();
        let gone = source.read().unwrap_err().to_string();
        assert!(
            gone.starts_with("k_file: ") && gone.contains("cannot read the file"),
            "{gone}"
        );
    }

    #[test]
    fn debug_of_a_source_shows_no_value() {
        let source = SecretSource::from(Secret::new("hunter2"));
        assert_eq!(format!("{source:?}"), "Value(***)");
        assert_eq!(source.read().unwrap().expose(), "hunter2");
    }

    #[test]
    fn debug_hides_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(&s)), "Some(***)");
        assert_eq!(s.expose(), "hunter2");
    }
}
