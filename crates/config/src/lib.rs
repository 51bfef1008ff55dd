//! Loads and validates the entra-sync TOML configuration and resolves its secrets.
//!
//! The file is given by `--config FILE` or `ENTRA_SYNC_CONFIG`; `DATABASE_URL`
//! and `AMQP_URL` override its URLs. Secrets are read from the environment
//! variable or file the configuration names (`*_env` / `*_file` keys). Every
//! error names the key at fault and says what is wrong.

mod raw;

pub use entra_sync_core::secret::Secret;

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
}

/// `[producer]`; keys left out take the defaults of [`ProducerConfig::default`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProducerConfig {
    /// Address for the webhook, health and metrics.
    pub listen: SocketAddr,
    /// How often the events feed is polled when no webhook wakes it.
    #[serde(deserialize_with = "raw::duration_value")]
    pub events_poll_interval: Duration,
    /// How often the users' `last_updated` watermark is polled.
    #[serde(deserialize_with = "raw::duration_value")]
    pub watermark_poll_interval: Duration,
}

impl Default for ProducerConfig {
    /// Listen on `127.0.0.1:8080`; poll events every 5 s and the watermark every 10 s.
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            events_poll_interval: Duration::from_secs(5),
            watermark_poll_interval: Duration::from_secs(10),
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

/// `[authentik]`.
#[derive(Debug, Clone)]
pub struct AuthentikConfig {
    /// Base URL, e.g. `https://authentik.example.com`.
    pub url: url::Url,
    /// API token.
    pub token: Secret,
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
    /// The app's client secret.
    pub client_secret: Secret,
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

    const MINIMAL: &str = r#"
[authentik]
url = "http://127.0.0.1:9000"
token_env = "AUTHENTIK_TOKEN"
webhook_secret_env = "WEBHOOK_SECRET"
[[providers]]
name = "contoso"
tenant_id = "t"
client_id = "c"
client_secret_env = "ENTRA_CLIENT_SECRET"
"#;

    fn parse(text: &str) -> Result<Config, InvalidConfig> {
        Config::parse(text, Path::new("."), &secrets())
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
        assert_eq!(p.client_secret.expose(), "s3cret");
        assert_eq!(p.full_sync_interval, Duration::from_secs(4 * 3600));
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
        assert_eq!(c.producer.events_poll_interval, Duration::from_secs(5));
        assert_eq!(c.producer.watermark_poll_interval, Duration::from_secs(10));
        assert_eq!((c.worker.concurrency, c.worker.max_attempts), (16, 8));
        assert_eq!(c.worker.listen.to_string(), "127.0.0.1:0");
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
        assert_eq!(c.providers[0].client_secret.expose(), "from-file");
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
