//! Loads and validates the entra-sync TOML configuration and resolves its secrets.
//!
//! The file is given by `--config FILE` or `ENTRA_SYNC_CONFIG`; `DATABASE_URL`
//! and `AMQP_URL` override its URLs. Secrets are read from the environment
//! variable or file the configuration names (`*_env` / `*_file` keys). Every
//! error names the key at fault and says what is wrong.

mod credential;
mod raw;

pub use credential::AZURE_FEDERATED_TOKEN_FILE;
pub use entra_sync_core::secret::{ClientCredential, Secret, SecretSource};

use entra_sync_core::mapping::AppliesTo;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration problem, naming the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config error at {key}: {message}")]
pub struct InvalidConfig {
    /// The key at fault, e.g. `providers[0].user_delete_action`, or the file.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl InvalidConfig {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration, validated, with secrets resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// PostgreSQL connection.
    pub database: DatabaseConfig,
    /// RabbitMQ connection.
    pub amqp: AmqpConfig,
    /// The producer process.
    pub producer: ProducerConfig,
    /// The worker processes.
    pub worker: WorkerConfig,
    /// How long the provisioning log, dead letters and runs are kept.
    pub retention: RetentionConfig,
    /// The authentik instance that is the source of truth.
    pub authentik: AuthentikConfig,
    /// Entra tenants to keep in step, each with its settings.
    pub providers: Vec<ProviderConfig>,
}

/// `[database]`.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// Connection URL; it may hold a password, so it is a secret.
    pub url: Secret,
    /// Most connections one process opens.
    pub max_connections: usize,
}

/// `[amqp]`.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// Connection URL, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`; a secret.
    pub url: Secret,
    /// Prefix of exchange and queue names.
    pub queue_prefix: String,
    /// The management HTTP API, e.g. `http://rabbitmq:15672`: when set, the
    /// worker sets the queues' policies (delivery limit, dead-lettering)
    /// through it at start, as the user of `url`.
    pub management_url: Option<url::Url>,
}

/// `[producer]`; keys left out take the defaults of [`ProducerConfig::default`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProducerConfig {
    /// Address for the webhook, health and metrics.
    pub listen: SocketAddr,
    /// Address for the read-only status page; none when unset. Not the
    /// webhook's: the page shows user names, so keep it internal.
    pub status_listen: Option<SocketAddr>,
    /// How often the events feed is polled when no webhook wakes it.
    #[serde(deserialize_with = "raw::duration_value")]
    pub events_poll_interval: Duration,
    /// How often the users' `last_updated` watermark is polled (authentik 2025.8+).
    #[serde(deserialize_with = "raw::duration_value")]
    pub watermark_poll_interval: Duration,
    /// How long a running full-sync phase may record no outcome, with
    /// nothing queued and its provider neither halted nor throttled, before
    /// its unfinished objects are published again.
    #[serde(deserialize_with = "raw::duration_value")]
    pub stall_timeout: Duration,
    /// How often the silent scan looks for users changed without an event,
    /// where the watermark cannot run (authentik before 2025.8).
    #[serde(deserialize_with = "raw::duration_value")]
    pub silent_scan_interval: Duration,
}

impl Default for ProducerConfig {
    /// Listen on `127.0.0.1:8080`, no status page; poll events every 5 s and
    /// the watermark every 10 s; scan for silent changes every 10 min; a
    /// phase stalls after 10 min.
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            status_listen: None,
            events_poll_interval: Duration::from_secs(5),
            watermark_poll_interval: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(600),
            silent_scan_interval: Duration::from_secs(600),
        }
    }
}

/// `[worker]`; keys left out take the defaults of [`WorkerConfig::default`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Tasks one worker process handles at once.
    pub concurrency: usize,
    /// Attempts before a task goes to the dead-letter queue.
    pub max_attempts: u32,
    /// Address for health and metrics. Port 0 takes a free port (logged at
    /// start), so several workers with one configuration run on one host.
    pub listen: SocketAddr,
}

impl Default for WorkerConfig {
    /// 16 tasks at once, 8 attempts, health and metrics on a free port of 127.0.0.1.
    fn default() -> Self {
        Self {
            concurrency: 16,
            max_attempts: 8,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

/// `[retention]`: the producer prunes old state in the background, so the
/// tables stay bounded at any directory size. Keys left out take the defaults
/// of [`RetentionConfig::default`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// How often the producer prunes.
    #[serde(deserialize_with = "raw::duration_value")]
    pub interval: Duration,
    /// Provisioning-log rows (`object_outcomes`) older than this are deleted.
    #[serde(deserialize_with = "raw::duration_value")]
    pub outcomes_max_age: Duration,
    /// At most this many provisioning-log rows are kept, the newest.
    pub outcomes_max_rows: u64,
    /// Dead letters older than this are deleted.
    #[serde(deserialize_with = "raw::duration_value")]
    pub dead_letters_max_age: Duration,
    /// At most this many dead letters are kept, the newest.
    pub dead_letters_max_rows: u64,
    /// Finished full syncs kept per provider, the newest; older ones go with
    /// their per-object rows.
    pub runs_kept: u64,
    /// The per-object rows of a finished full sync (`sync_run_objects`) are
    /// deleted this long after it finished; its counts stay.
    #[serde(deserialize_with = "raw::duration_value")]
    pub run_objects_max_age: Duration,
}

impl Default for RetentionConfig {
    /// Prune hourly; keep 30 days and at most 1,000,000 rows of the
    /// provisioning log, 90 days and at most 100,000 dead letters, the newest
    /// 100 full syncs per provider, and a finished sync's per-object rows for a day.
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Self {
            interval: Duration::from_secs(3600),
            outcomes_max_age: Duration::from_secs(30 * DAY),
            outcomes_max_rows: 1_000_000,
            dead_letters_max_age: Duration::from_secs(90 * DAY),
            dead_letters_max_rows: 100_000,
            runs_kept: 100,
            run_objects_max_age: Duration::from_secs(DAY),
        }
    }
}

/// `[authentik]`.
#[derive(Debug, Clone)]
pub struct AuthentikConfig {
    /// Base URL, e.g. `https://authentik.example.com`.
    pub url: url::Url,
    /// API token; a file is read again at each request (rotation without restart).
    pub token: SecretSource,
    /// Bearer secret the notification webhook must present.
    pub webhook_secret: Secret,
}

/// What happens in Entra when a user is deleted in authentik or leaves scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserDeleteAction {
    /// Delete the Entra user.
    Delete,
    /// Disable it (`accountEnabled` false) and keep the link.
    Suspend,
    /// Leave it alone.
    DoNothing,
}

/// What happens in Entra when a group is deleted in authentik.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupDeleteAction {
    /// Delete the Entra group.
    Delete,
    /// Leave it alone.
    DoNothing,
}

/// One `[[providers]]` entry: an Entra tenant and how to sync into it.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Unique name, used in the database, queues, logs and the CLI.
    pub name: String,
    /// Entra tenant id (GUID or domain).
    pub tenant_id: String,
    /// Application (client) id of the app registration.
    pub client_id: String,
    /// How the app authenticates: a client secret, a certificate or a
    /// federated token; files are read again at each token request.
    pub credential: ClientCredential,
    /// Microsoft Graph base URL.
    pub graph_url: url::Url,
    /// Microsoft identity platform base URL.
    pub login_url: url::Url,
    /// Only direct members of this authentik group are synced, when set.
    pub filter_group: Option<String>,
    /// Leave out authentik service accounts.
    pub exclude_users_service_account: bool,
    /// What to do with a deleted or out-of-scope user.
    pub user_delete_action: UserDeleteAction,
    /// What to do with a deleted group.
    pub group_delete_action: GroupDeleteAction,
    /// Log every write instead of sending it.
    pub dry_run: bool,
    /// Also remove members of managed groups that are not entra-sync-linked
    /// users (cloud-only users, devices, service principals, groups); by
    /// default they are left alone.
    pub remove_unmanaged_members: bool,
    /// Time between scheduled full syncs.
    pub full_sync_interval: Duration,
    /// Most deletes and suspends within `deletion_window` (at least 1).
    pub deletion_threshold: u32,
    /// The rolling window `deletion_threshold` counts over.
    pub deletion_window: Duration,
    /// Graph write quota per (app, tenant): requests per window.
    pub write_quota: u32,
    /// The window of the write quota.
    pub write_window: Duration,
    /// Custom property mappings, in name order.
    pub mappings: Vec<MappingConfig>,
}

/// One `[[providers.mappings]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MappingConfig {
    /// Name; mappings merge in name order.
    pub name: String,
    /// Users or groups.
    pub applies_to: AppliesTo,
    /// The Starlark function body.
    pub expression: String,
    /// The file it was read from, if any.
    pub file: Option<PathBuf>,
}

impl ProviderConfig {
    /// A hash of every setting that changes what a full sync does (secrets
    /// excluded): when it changes, the producer starts a full sync.
    pub fn settings_hash(&self) -> String {
        let settings = serde_json::json!({
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "graph_url": self.graph_url.as_str(),
            "filter_group": self.filter_group,
            "exclude_users_service_account": self.exclude_users_service_account,
            "user_delete_action": self.user_delete_action,
            "group_delete_action": self.group_delete_action,
            "dry_run": self.dry_run,
            "remove_unmanaged_members": self.remove_unmanaged_members,
            "mappings": self.mappings.iter().map(|m| (&m.name, m.applies_to, &m.expression)).collect::<Vec<_>>(),
        });
        hex::encode(Sha256::digest(settings.to_string().as_bytes()))
    }
}

/// Where values come from besides the file: the process environment in
/// production, a map in tests.
pub trait Environment {
    /// The value of an environment variable, if set.
    fn var(&self, name: &str) -> Option<String>;

    /// Whether secrets are read; see [`Config::load_without_secrets`].
    fn reads_secrets(&self) -> bool {
        true
    }
}

/// An environment whose secrets are left unread.
struct WithoutSecrets<'a, E>(&'a E);

impl<E: Environment> Environment for WithoutSecrets<'_, E> {
    fn var(&self, name: &str) -> Option<String> {
        self.0.var(name)
    }

    fn reads_secrets(&self) -> bool {
        false
    }
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Environment for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

impl Config {
    /// Reads, validates and resolves the configuration file at `path`.
    pub fn load(path: &Path, env: &impl Environment) -> Result<Self, InvalidConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            InvalidConfig::new(
                path.display().to_string(),
                format!("cannot read the file: {e}"),
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base, env).map_err(|mut e| {
            e.key = format!("{}: {}", path.display(), e.key);
            e
        })
    }

    /// Reads and validates the configuration like [`Config::load`] but leaves
    /// every secret (authentik token, webhook secret, client secrets) unread
    /// and empty: for the commands that touch only the database and the broker
    /// (`status`, `sync`, `resume`, `why`, `dead-letters`), so they run where
    /// the Graph and authentik secrets are not mounted. Such a configuration
    /// can never authenticate to Graph or authentik.
    pub fn load_without_secrets(
        path: &Path,
        env: &impl Environment,
    ) -> Result<Self, InvalidConfig> {
        Self::load(path, &WithoutSecrets(env))
    }

    /// Parses configuration text; relative mapping files resolve against `base`.
    pub fn parse(text: &str, base: &Path, env: &impl Environment) -> Result<Self, InvalidConfig> {
        raw::parse(text, base, env)
    }

    /// The provider called `name`.
    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.name == name)
    }
}

impl From<UserDeleteAction> for entra_sync_core::reconcile::DeleteAction {
    fn from(action: UserDeleteAction) -> Self {
        match action {
            UserDeleteAction::Delete => Self::Delete,
            UserDeleteAction::Suspend => Self::Suspend,
            UserDeleteAction::DoNothing => Self::DoNothing,
        }
    }
}

impl From<GroupDeleteAction> for entra_sync_core::reconcile::DeleteAction {
    fn from(action: GroupDeleteAction) -> Self {
        match action {
            GroupDeleteAction::Delete => Self::Delete,
            GroupDeleteAction::DoNothing => Self::DoNothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    fn secrets() -> impl Fn(&str) -> Option<String> {
        env(&[
            ("AUTHENTIK_TOKEN", "ak-token"),
            ("WEBHOOK_SECRET", "wh-secret-value"),
            ("ENTRA_CLIENT_SECRET", "s3cret"),
        ])
    }

    /// The smallest valid configuration, shared with the provider room's tests.
    const MINIMAL: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/minimal-config.toml"
    ));

    fn parse(text: &str) -> Result<Config, InvalidConfig> {
        Config::parse(text, Path::new("."), &secrets())
    }

    fn client_secret(p: &ProviderConfig) -> String {
        match &p.credential {
            ClientCredential::Secret(s) => s.read().unwrap().expose().to_owned(),
            other => panic!("not a client secret: {other:?}"),
        }
    }

    fn error(text: &str) -> InvalidConfig {
        parse(text).expect_err("must be refused")
    }

    #[test]
    fn the_example_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/example.toml");
        let config = Config::load(&path, &secrets()).unwrap();
        let p = config.provider("contoso").unwrap();
        assert_eq!(p.user_delete_action, UserDeleteAction::Suspend);
        assert_eq!(p.filter_group.as_deref(), Some("entra"));
        assert_eq!(p.mappings.len(), 2);
        assert!(p.mappings[1].expression.contains("job_title"));
        assert_eq!(client_secret(p), "s3cret");
        assert_eq!(p.full_sync_interval, Duration::from_secs(4 * 3600));
        assert_eq!(
            config.retention,
            RetentionConfig::default(),
            "the example shows the defaults"
        );
    }

    #[test]
    fn defaults_apply() {
        let c = parse(MINIMAL).unwrap();
        let p = &c.providers[0];
        assert_eq!(p.user_delete_action, UserDeleteAction::Delete);
        assert_eq!(p.group_delete_action, GroupDeleteAction::Delete);
        assert_eq!(p.graph_url.as_str(), "https://graph.microsoft.com/");
        assert_eq!(p.deletion_threshold, 500);
        assert_eq!(p.deletion_window, Duration::from_secs(3600));
        assert!(!p.dry_run);
        assert_eq!(c.producer.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.producer.status_listen, None,
            "no status page unless asked for"
        );
        assert_eq!(c.producer.events_poll_interval, Duration::from_secs(5));
        assert_eq!(c.producer.watermark_poll_interval, Duration::from_secs(10));
        assert_eq!(c.producer.stall_timeout, Duration::from_secs(600));
        assert_eq!(c.amqp.management_url, None);
        assert_eq!(c.producer.silent_scan_interval, Duration::from_secs(600));
        assert_eq!((c.worker.concurrency, c.worker.max_attempts), (16, 8));
        assert_eq!(c.worker.listen.to_string(), "127.0.0.1:0");
        assert_eq!(c.retention, RetentionConfig::default());
        assert_eq!(
            c.retention.outcomes_max_age,
            Duration::from_secs(30 * 86400)
        );
    }

    #[test]
    fn retention_keys_are_read_and_checked() {
        let c = parse(&format!(
            "[retention]\noutcomes_max_age = \"7d\"\nruns_kept = 5\n{MINIMAL}"
        ))
        .unwrap();
        assert_eq!(c.retention.outcomes_max_age, Duration::from_secs(7 * 86400));
        assert_eq!(c.retention.runs_kept, 5);
        assert_eq!(c.retention.dead_letters_max_rows, 100_000);
        let e = error(&format!("[retention]\noutcomes_max_rows = 0\n{MINIMAL}"));
        assert_eq!(e.key, "retention.outcomes_max_rows", "{e}");
        let e = error(&format!("[retention]\ninterval = \"often\"\n{MINIMAL}"));
        assert_eq!(e.key, "retention.interval", "{e}");
    }

    #[test]
    fn without_secrets_the_configuration_loads_with_no_secret_set() {
        let dir = std::env::temp_dir().join(format!("entra-sync-nosecrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = MINIMAL.replace(
            "token_env = \"AUTHENTIK_TOKEN\"",
            "token_file = \"missing-token-file\"",
        );
        std::fs::write(dir.join("c.toml"), &text).unwrap();
        let nothing = |_: &str| None;
        let e = Config::load(&dir.join("c.toml"), &nothing).unwrap_err();
        assert!(e.key.contains("authentik.token_file"), "{e}");
        let c = Config::load_without_secrets(&dir.join("c.toml"), &nothing).unwrap();
        assert_eq!(c.providers[0].name, "contoso");
        assert!(
            matches!(&c.providers[0].credential, ClientCredential::Secret(SecretSource::Value(s)) if s.expose().is_empty()),
            "no credential was read"
        );
        assert_eq!(
            c.providers[0].settings_hash(),
            parse(MINIMAL).unwrap().providers[0].settings_hash()
        );
    }

    #[test]
    fn keys_left_out_of_a_section_keep_their_defaults() {
        let c = parse(&format!(
            "[producer]\nevents_poll_interval = \"1s\"\n[worker]\nlisten = \"0.0.0.0:9000\"\n{MINIMAL}"
        ))
        .unwrap();
        assert_eq!(c.producer.events_poll_interval, Duration::from_secs(1));
        assert_eq!(c.producer.watermark_poll_interval, Duration::from_secs(10));
        assert_eq!(c.worker.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.worker.concurrency, 16);
    }

    #[test]
    fn the_status_page_listens_where_configured() {
        let c = parse(&format!(
            "[producer]\nstatus_listen = \"127.0.0.1:8081\"\n{MINIMAL}"
        ))
        .unwrap();
        assert_eq!(
            c.producer.status_listen,
            Some("127.0.0.1:8081".parse().unwrap())
        );
    }

    #[test]
    fn the_deletion_guard_needs_a_positive_threshold_and_window() {
        let p = parse(&format!(
            "{MINIMAL}deletion_threshold = 20\ndeletion_window = \"30m\""
        ))
        .unwrap()
        .providers
        .remove(0);
        assert_eq!(p.deletion_threshold, 20);
        assert_eq!(p.deletion_window, Duration::from_secs(1800));
        let cases = [
            (
                "deletion_threshold = 0",
                "providers[contoso].deletion_threshold",
                "not a count",
            ),
            (
                "deletion_threshold = -5",
                "providers[contoso].deletion_threshold",
                "-5",
            ),
            (
                "deletion_threshold = \"many\"",
                "providers[0].deletion_threshold",
                "many",
            ),
            (
                "deletion_threshold = 2.5",
                "providers[0].deletion_threshold",
                "2.5",
            ),
            (
                "deletion_window = \"0s\"",
                "providers[contoso].deletion_window",
                "longer than zero",
            ),
            (
                "deletion_window = \"-1h\"",
                "providers[contoso].deletion_window",
                "not a duration",
            ),
            (
                "deletion_window = \"soon\"",
                "providers[contoso].deletion_window",
                "not a duration",
            ),
            ("deletion_window = 60", "providers[0].deletion_window", "60"),
        ];
        for (line, key, message) in cases {
            let e = error(&format!("{MINIMAL}{line}"));
            assert_eq!(e.key, key, "{line}: {e}");
            assert!(e.message.contains(message), "{line}: {e}");
        }
    }

    #[test]
    fn url_overrides_come_from_the_environment() {
        let text = format!("[database]\nurl = \"postgres://file\"\n{MINIMAL}");
        let e = env(&[
            ("AUTHENTIK_TOKEN", "t"),
            ("WEBHOOK_SECRET", "w"),
            ("ENTRA_CLIENT_SECRET", "s"),
            ("DATABASE_URL", "postgres://env"),
            ("AMQP_URL", "amqp://env"),
        ]);
        let c = Config::parse(&text, Path::new("."), &e).unwrap();
        assert_eq!(c.database.url.expose(), "postgres://env");
        assert_eq!(c.amqp.url.expose(), "amqp://env");
    }

    #[test]
    fn secrets_come_from_files() {
        let dir = std::env::temp_dir().join(format!("entra-sync-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("secret"), "from-file\n").unwrap();
        let text = MINIMAL.replace(
            "client_secret_env = \"ENTRA_CLIENT_SECRET\"",
            "client_secret_file = \"secret\"",
        );
        let c = Config::parse(&text, &dir, &secrets()).unwrap();
        assert_eq!(client_secret(&c.providers[0]), "from-file");
    }

    /// A fresh directory holding `files`.
    fn dir_with(files: &[(&str, &str)]) -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "entra-sync-config-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    fn with_credential(lines: &str) -> String {
        MINIMAL.replace("client_secret_env = \"ENTRA_CLIENT_SECRET\"", lines)
    }

    fn rsa_certificate() -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["entra-sync".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";

    #[test]
    fn certificate_and_federated_credentials_load_as_files_read_at_each_use() {
        let (cert, key) = rsa_certificate();
        let both = format!("{cert}{key}");
        let dir = dir_with(&[
            ("c.pem", &cert),
            ("k.pem", &key),
            ("both.pem", &both),
            ("token", JWT),
        ]);
        let parse_in =
            |text: &str| Config::parse(text, &dir, &secrets()).map(|mut c| c.providers.remove(0));

        // The certificate and key that credential `lines` load.
        let certificate_of =
            |lines: &str| match parse_in(&with_credential(lines)).unwrap().credential {
                ClientCredential::Certificate {
                    certificate,
                    private_key,
                } => (certificate, private_key),
                other => panic!("{other:?}"),
            };

        let (certificate, private_key) =
            certificate_of("client_certificate_file = \"c.pem\"\nclient_key_file = \"k.pem\"");
        assert_eq!(certificate.path(), Some(dir.join("c.pem").as_path()));
        assert_eq!(private_key.path(), Some(dir.join("k.pem").as_path()));

        let (certificate, private_key) = certificate_of("client_certificate_file = \"both.pem\"");
        assert_eq!(certificate, private_key, "one PEM holds both");

        let p = parse_in(&with_credential("federated_token_file = \"token\"")).unwrap();
        assert_eq!(
            p.credential,
            ClientCredential::Federated(SecretSource::file(
                "providers[contoso].federated_token_file",
                dir.join("token")
            ))
        );
    }

    #[test]
    fn workload_identity_takes_the_token_file_ids_and_authority_from_the_environment() {
        let dir = dir_with(&[("wi-token", JWT)]);
        let token = dir.join("wi-token").display().to_string();
        let text = MINIMAL
            .replace("tenant_id = \"t\"\n", "")
            .replace("client_id = \"c\"\n", "")
            .replace(
                "client_secret_env = \"ENTRA_CLIENT_SECRET\"",
                "workload_identity = true",
            );
        let pairs = [
            ("AUTHENTIK_TOKEN", "ak"),
            ("WEBHOOK_SECRET", "wh"),
            ("AZURE_FEDERATED_TOKEN_FILE", token.as_str()),
            ("AZURE_CLIENT_ID", "wi-client"),
            ("AZURE_TENANT_ID", "wi-tenant"),
            ("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/"),
        ];
        let vars = env(&pairs);
        let p = Config::parse(&text, Path::new("."), &vars)
            .unwrap()
            .providers
            .remove(0);
        assert_eq!(
            (p.client_id.as_str(), p.tenant_id.as_str()),
            ("wi-client", "wi-tenant")
        );
        assert_eq!(p.login_url.as_str(), "https://login.microsoftonline.us/");
        assert_eq!(
            p.credential,
            ClientCredential::Federated(SecretSource::file(AZURE_FEDERATED_TOKEN_FILE, &token))
        );

        let unset = Config::parse(&text, Path::new("."), &secrets()).unwrap_err();
        assert_eq!(unset.key, "providers[contoso].tenant_id", "{unset}");
        assert!(unset.message.contains("AZURE_TENANT_ID"), "{unset}");
    }

    #[test]
    fn credential_errors_name_their_key() {
        let (cert, private_key) = rsa_certificate();
        let key_material = private_key.lines().nth(1).unwrap().to_owned();
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA==\n-----END EC PRIVATE KEY-----\n";
        let dir = dir_with(&[
            ("c.pem", &cert),
            ("k.pem", &private_key),
            ("ec.pem", sec1),
            ("token", "not-a-jwt"),
            ("empty", ""),
        ]);
        let cases = [
            (
                "client_secret_env = \"ENTRA_CLIENT_SECRET\"\nclient_certificate_file = \"c.pem\"",
                "providers[contoso]",
                "set one credential",
            ),
            (
                "client_key_file = \"k.pem\"",
                "providers[contoso].client_key_file",
                "needs client_certificate_file",
            ),
            (
                "client_certificate_file = \"nope.pem\"",
                "providers[contoso].client_certificate_file",
                "cannot read the file",
            ),
            (
                "client_certificate_file = \"k.pem\"",
                "providers[contoso].client_certificate_file",
                "no PEM certificate",
            ),
            (
                "client_certificate_file = \"c.pem\"",
                "providers[contoso].client_certificate_file",
                "or set providers[contoso].client_key_file",
            ),
            (
                "client_certificate_file = \"c.pem\"\nclient_key_file = \"c.pem\"",
                "providers[contoso].client_key_file",
                "no PEM private key",
            ),
            (
                "client_certificate_file = \"c.pem\"\nclient_key_file = \"ec.pem\"",
                "providers[contoso].client_key_file",
                "elliptic-curve",
            ),
            (
                "client_certificate_file = \"c.pem\"\nclient_key_file = \"empty\"",
                "providers[contoso].client_key_file",
                "empty",
            ),
            (
                "federated_token_file = \"token\"",
                "providers[contoso].federated_token_file",
                "not a JWT",
            ),
            (
                "workload_identity = true",
                "providers[contoso].workload_identity",
                "AZURE_FEDERATED_TOKEN_FILE",
            ),
            (
                "client_secret_file = \"empty\"",
                "providers[contoso].client_secret_file",
                "empty",
            ),
            (
                "",
                "providers[contoso].client_secret_env",
                "client_certificate_file",
            ),
        ];
        for (lines, key, message) in cases {
            let e = Config::parse(&with_credential(lines), &dir, &secrets()).expect_err(lines);
            assert_eq!(e.key, key, "{lines}: {e}");
            assert!(e.message.contains(message), "{lines}: {e}");
            assert!(
                !e.to_string().contains(&key_material),
                "no key material in errors: {e}"
            );
        }
    }

    #[test]
    fn every_error_names_its_key() {
        let cases = [
            (
                MINIMAL.replace("ENTRA_CLIENT_SECRET", "MISSING_VAR"),
                "providers[contoso].client_secret_env",
                "MISSING_VAR is not set",
            ),
            (
                format!("{MINIMAL}user_delete_action = \"purge\""),
                "providers[contoso].user_delete_action",
                "\"purge\"",
            ),
            (
                format!("{MINIMAL}group_delete_action = \"suspend\""),
                "providers[contoso].group_delete_action",
                "cannot be suspended",
            ),
            (
                format!("{MINIMAL}full_sync_interval = \"soon\""),
                "providers[contoso].full_sync_interval",
                "not a duration",
            ),
            (
                format!("{MINIMAL}graph_url = \"ftp://x\""),
                "providers[contoso].graph_url",
                "http or https",
            ),
            (
                MINIMAL.replace("name = \"contoso\"", "name = \"bad name\""),
                "providers[0].name",
                "letters",
            ),
            (
                format!(
                    "{MINIMAL}[[providers.mappings]]\nname = \"m\"\napplies_to = \"device\"\nexpression = \"return None\""
                ),
                "providers[contoso].mappings[0].applies_to",
                "device",
            ),
            (
                format!("{MINIMAL}[[providers.mappings]]\nname = \"m\"\napplies_to = \"user\""),
                "providers[contoso].mappings[0]",
                "needs an expression",
            ),
            (
                format!(
                    "{MINIMAL}[[providers.mappings]]\nname = \"m\"\napplies_to = \"user\"\nfile = \"nope.star\""
                ),
                "providers[contoso].mappings[0].file",
                "cannot read",
            ),
            (
                format!(
                    "{MINIMAL}[[providers]]\nname = \"contoso\"\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret_env = \"ENTRA_CLIENT_SECRET\""
                ),
                "providers[1].name",
                "defined twice",
            ),
            (
                MINIMAL.replace("[authentik]", "[authentik]\nbogus = 1"),
                "authentik.bogus",
                "unknown field `bogus`",
            ),
            (
                MINIMAL.replace("webhook_secret_env = \"WEBHOOK_SECRET\"", ""),
                "authentik.webhook_secret_env",
                "missing",
            ),
            (format!("{MINIMAL}\n[[providers]"), "file", "(line 12)"),
            (
                format!("[amqp]\nurl = \"http://x\"\n{MINIMAL}"),
                "amqp.url",
                "amqp://",
            ),
            (
                format!("[producer]\nstall_timeout = \"never\"\n{MINIMAL}"),
                "producer.stall_timeout",
                "not a duration",
            ),
            (
                format!("[amqp]\nmanagement_url = \"rabbitmq:15672\"\n{MINIMAL}"),
                "amqp.management_url",
                "http",
            ),
            (
                format!("[producer]\nevents_poll_interval = \"soon\"\n{MINIMAL}"),
                "producer.events_poll_interval",
                "not a duration",
            ),
            (
                format!("[worker]\nlisten = \"localhost\"\n{MINIMAL}"),
                "worker.listen",
                "socket address",
            ),
            (
                format!("[worker]\nconcurrency = 0\n{MINIMAL}"),
                "worker.concurrency",
                "at least 1",
            ),
        ];
        for (text, key, message) in cases {
            let e = error(&text);
            assert_eq!(e.key, key, "{e}");
            assert!(e.message.contains(message), "{e}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug_or_errors() {
        let c = parse(MINIMAL).unwrap();
        let debug = format!("{c:?}");
        for secret in ["ak-token", "wh-secret-value", "s3cret"] {
            assert!(!debug.contains(secret), "{secret} leaked");
        }
    }

    #[test]
    fn settings_hash_tracks_what_changes_a_sync() {
        let a = parse(MINIMAL).unwrap().providers.remove(0);
        let b = parse(&format!("{MINIMAL}dry_run = true"))
            .unwrap()
            .providers
            .remove(0);
        let mapped = parse(&format!(
            "{MINIMAL}[[providers.mappings]]\nname = \"m\"\napplies_to = \"user\"\nexpression = \"return None\""
        ))
        .unwrap()
        .providers
        .remove(0);
        assert_eq!(
            a.settings_hash(),
            parse(MINIMAL).unwrap().providers[0].settings_hash()
        );
        assert_ne!(a.settings_hash(), b.settings_hash());
        assert_ne!(a.settings_hash(), mapped.settings_hash());
        let other_secret = Config::parse(
            MINIMAL,
            Path::new("."),
            &env(&[
                ("AUTHENTIK_TOKEN", "x"),
                ("WEBHOOK_SECRET", "y"),
                ("ENTRA_CLIENT_SECRET", "z"),
            ]),
        )
        .unwrap()
        .providers
        .remove(0);
        assert_eq!(
            a.settings_hash(),
            other_secret.settings_hash(),
            "secrets are not settings"
        );
    }
}
