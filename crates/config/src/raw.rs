//! The file's shape as written, and its validation into [`crate::Config`].

use crate::{
    AmqpConfig, AuthentikConfig, Config, DatabaseConfig, Environment, GroupDeleteAction,
    InvalidConfig, MappingConfig, ProducerConfig, ProviderConfig, RetentionConfig, Secret,
    UserDeleteAction, WorkerConfig, credential,
};
use entra_sync_core::mapping::AppliesTo;
use entra_sync_core::secret::SecretSource;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    database: Option<RawDatabase>,
    amqp: Option<RawAmqp>,
    #[serde(default)]
    producer: ProducerConfig,
    #[serde(default)]
    worker: WorkerConfig,
    #[serde(default)]
    retention: RetentionConfig,
    authentik: RawAuthentik,
    #[serde(default)]
    providers: Vec<RawProvider>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<String>,
    max_connections: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAmqp {
    url: Option<String>,
    queue_prefix: Option<String>,
    management_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthentik {
    url: String,
    token_env: Option<String>,
    token_file: Option<String>,
    webhook_secret_env: Option<String>,
    webhook_secret_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProvider {
    name: String,
    tenant_id: Option<String>,
    client_id: Option<String>,
    pub(crate) client_secret_env: Option<String>,
    pub(crate) client_secret_file: Option<String>,
    pub(crate) client_certificate_file: Option<String>,
    pub(crate) client_key_file: Option<String>,
    pub(crate) federated_token_file: Option<String>,
    #[serde(default)]
    pub(crate) workload_identity: bool,
    graph_url: Option<String>,
    login_url: Option<String>,
    filter_group: Option<String>,
    #[serde(default)]
    exclude_users_service_account: bool,
    user_delete_action: Option<String>,
    group_delete_action: Option<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    remove_unmanaged_members: bool,
    full_sync_interval: Option<String>,
    deletion_threshold: Option<i64>,
    deletion_window: Option<String>,
    write_quota: Option<u32>,
    write_window: Option<String>,
    #[serde(default)]
    mappings: Vec<RawMapping>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    name: String,
    applies_to: String,
    expression: Option<String>,
    file: Option<String>,
}

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/entra_sync";
const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub(crate) fn parse(
    text: &str,
    base: &Path,
    env: &impl Environment,
) -> Result<Config, InvalidConfig> {
    let raw: RawConfig = deserialize(text)?;

    let database = raw.database.unwrap_or(RawDatabase {
        url: None,
        max_connections: None,
    });
    let database = DatabaseConfig {
        url: Secret::new(
            env.var("DATABASE_URL")
                .or(database.url)
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
        ),
        max_connections: positive(
            "database.max_connections",
            database.max_connections.unwrap_or(32),
        )?,
    };
    let amqp = raw.amqp.unwrap_or(RawAmqp {
        url: None,
        queue_prefix: None,
        management_url: None,
    });
    let amqp_url = env
        .var("AMQP_URL")
        .or(amqp.url)
        .unwrap_or_else(|| DEFAULT_AMQP_URL.to_owned());
    if !(amqp_url.starts_with("amqp://") || amqp_url.starts_with("amqps://")) {
        return Err(InvalidConfig::new(
            "amqp.url",
            "must start with amqp:// or amqps://",
        ));
    }
    let queue_prefix = amqp.queue_prefix.unwrap_or_else(|| "entra-sync".to_owned());
    if queue_prefix.is_empty()
        || !queue_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(InvalidConfig::new(
            "amqp.queue_prefix",
            "must be letters, digits, '-', '_' or '.'",
        ));
    }
    let amqp = AmqpConfig {
        url: Secret::new(amqp_url),
        queue_prefix,
        management_url: amqp
            .management_url
            .map(|u| http_url("amqp.management_url", &u))
            .transpose()?,
    };

    if raw.producer.stall_timeout.is_zero() {
        return Err(InvalidConfig::new(
            "producer.stall_timeout",
            "must be longer than zero",
        ));
    }
    positive("worker.concurrency", raw.worker.concurrency)?;
    positive("worker.max_attempts", raw.worker.max_attempts as usize)?;
    for (key, rows) in [
        (
            "retention.outcomes_max_rows",
            raw.retention.outcomes_max_rows,
        ),
        (
            "retention.dead_letters_max_rows",
            raw.retention.dead_letters_max_rows,
        ),
        ("retention.runs_kept", raw.retention.runs_kept),
    ] {
        positive(key, usize::try_from(rows).unwrap_or(usize::MAX))?;
    }

    let a = raw.authentik;
    let authentik = AuthentikConfig {
        url: http_url("authentik.url", &a.url)?,
        token: secret_source("authentik.token", a.token_env, a.token_file, base, env)?,
        webhook_secret: secret(
            "authentik.webhook_secret",
            a.webhook_secret_env,
            a.webhook_secret_file,
            base,
            env,
        )?,
    };

    let mut names = HashSet::new();
    let providers = raw
        .providers
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let key = format!("providers[{i}]");
            if !names.insert(p.name.clone()) {
                return Err(InvalidConfig::new(
                    format!("{key}.name"),
                    format!("provider {:?} is defined twice", p.name),
                ));
            }
            provider(&key, p, base, env)
        })
        .collect::<Result<Vec<_>, _>>()?;

    Ok(Config {
        database,
        amqp,
        producer: raw.producer,
        worker: raw.worker,
        retention: raw.retention,
        authentik,
        providers,
    })
}

fn provider(
    key: &str,
    p: RawProvider,
    base: &Path,
    env: &impl Environment,
) -> Result<ProviderConfig, InvalidConfig> {
    let k = |field: &str| format!("{key}.{field}");
    if p.name.is_empty()
        || !p
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(InvalidConfig::new(
            k("name"),
            format!("{:?} must be non-empty letters, digits, '-' or '_'", p.name),
        ));
    }
    let key = format!("providers[{}]", p.name);
    let k = |field: &str| format!("{key}.{field}");
    // Azure Workload Identity's webhook sets these for the pod's identity.
    let from_workload_identity = |var: &str| p.workload_identity.then(|| env.var(var)).flatten();
    let id = |field: &str, value: Option<String>, var: &str| {
        let value = value
            .or_else(|| from_workload_identity(var))
            .unwrap_or_default();
        if value.trim().is_empty() {
            let hint = if p.workload_identity {
                format!("missing: set it, or {var} for workload identity")
            } else {
                "must not be empty".to_owned()
            };
            return Err(InvalidConfig::new(k(field), hint));
        }
        Ok(value)
    };
    let tenant_id = id("tenant_id", p.tenant_id.clone(), "AZURE_TENANT_ID")?;
    let client_id = id("client_id", p.client_id.clone(), "AZURE_CLIENT_ID")?;
    let login_url = p
        .login_url
        .clone()
        .or_else(|| from_workload_identity("AZURE_AUTHORITY_HOST"))
        .unwrap_or_else(|| "https://login.microsoftonline.com".to_owned());
    let credential = credential::provider_credential(&key, &p, base, env)?;
    let user_delete_action = match p.user_delete_action.as_deref().unwrap_or("delete") {
        "delete" => UserDeleteAction::Delete,
        "suspend" => UserDeleteAction::Suspend,
        "do_nothing" => UserDeleteAction::DoNothing,
        other => {
            return Err(InvalidConfig::new(
                k("user_delete_action"),
                format!("{other:?} is not one of delete, suspend, do_nothing"),
            ));
        }
    };
    let group_delete_action = match p.group_delete_action.as_deref().unwrap_or("delete") {
        "delete" => GroupDeleteAction::Delete,
        "do_nothing" => GroupDeleteAction::DoNothing,
        other => {
            return Err(InvalidConfig::new(
                k("group_delete_action"),
                format!("{other:?} is not one of delete, do_nothing (groups cannot be suspended)"),
            ));
        }
    };
    let full_sync_interval = duration(
        &k("full_sync_interval"),
        p.full_sync_interval.as_deref().unwrap_or("4h"),
    )?;
    if full_sync_interval < Duration::from_secs(60) {
        return Err(InvalidConfig::new(
            k("full_sync_interval"),
            "must be at least 1m",
        ));
    }
    let deletion_threshold = p.deletion_threshold.unwrap_or(500);
    let deletion_threshold = u32::try_from(deletion_threshold)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            InvalidConfig::new(
                k("deletion_threshold"),
                format!("{deletion_threshold} is not a count from 1 to {}", u32::MAX),
            )
        })?;
    let deletion_window = duration(
        &k("deletion_window"),
        p.deletion_window.as_deref().unwrap_or("1h"),
    )?;
    if deletion_window.is_zero() {
        return Err(InvalidConfig::new(
            k("deletion_window"),
            "must be longer than zero",
        ));
    }
    let mut mapping_names = HashSet::new();
    let mappings = p
        .mappings
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let mk = format!("{key}.mappings[{i}]");
            if m.name.trim().is_empty() {
                return Err(InvalidConfig::new(
                    format!("{mk}.name"),
                    "must not be empty",
                ));
            }
            if !mapping_names.insert(m.name.clone()) {
                return Err(InvalidConfig::new(
                    format!("{mk}.name"),
                    format!("mapping {:?} is defined twice", m.name),
                ));
            }
            mapping(&mk, m, base)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ProviderConfig {
        credential,
        graph_url: http_url(
            &k("graph_url"),
            p.graph_url
                .as_deref()
                .unwrap_or("https://graph.microsoft.com"),
        )?,
        login_url: http_url(&k("login_url"), &login_url)?,
        filter_group: p.filter_group.filter(|g| !g.is_empty()),
        exclude_users_service_account: p.exclude_users_service_account,
        user_delete_action,
        group_delete_action,
        dry_run: p.dry_run,
        remove_unmanaged_members: p.remove_unmanaged_members,
        full_sync_interval,
        deletion_threshold,
        deletion_window,
        write_quota: positive(&k("write_quota"), p.write_quota.unwrap_or(3000) as usize)? as u32,
        write_window: duration(
            &k("write_window"),
            p.write_window.as_deref().unwrap_or("150s"),
        )?,
        mappings,
        name: p.name,
        tenant_id,
        client_id,
    })
}

fn mapping(key: &str, m: RawMapping, base: &Path) -> Result<MappingConfig, InvalidConfig> {
    let applies_to = match m.applies_to.as_str() {
        "user" => AppliesTo::User,
        "group" => AppliesTo::Group,
        other => {
            return Err(InvalidConfig::new(
                format!("{key}.applies_to"),
                format!("{other:?} is not one of user, group"),
            ));
        }
    };
    let (expression, file) = match (m.expression, m.file) {
        (Some(e), None) => (e, None),
        (None, Some(f)) => {
            let path = base.join(f);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                InvalidConfig::new(
                    format!("{key}.file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            (text, Some(path))
        }
        (Some(_), Some(_)) => {
            return Err(InvalidConfig::new(key, "set expression or file, not both"));
        }
        (None, None) => return Err(InvalidConfig::new(key, "needs an expression or a file")),
    };
    Ok(MappingConfig {
        name: m.name,
        applies_to,
        expression,
        file,
    })
}

fn secret(
    key: &str,
    env_name: Option<String>,
    file: Option<String>,
    base: &Path,
    env: &impl Environment,
) -> Result<Secret, InvalidConfig> {
    if !env.reads_secrets() {
        return Ok(Secret::new(String::new()));
    }
    let source = secret_source(key, env_name, file, base, env)?;
    source
        .read()
        .map_err(|e| InvalidConfig::new(e.key, format!("{}: {}", e.path, e.problem)))
}

/// A secret from the environment variable `{key}_env` names, or the file
/// `{key}_file` names: the file is checked now and read again at each use,
/// so rotating it needs no restart.
pub(crate) fn secret_source(
    key: &str,
    env_name: Option<String>,
    file: Option<String>,
    base: &Path,
    env: &impl Environment,
) -> Result<SecretSource, InvalidConfig> {
    if !env.reads_secrets() {
        return Ok(SecretSource::Value(Secret::new(String::new())));
    }
    let source = match (env_name, file) {
        (Some(var), None) => {
            let value = env.var(&var).ok_or_else(|| {
                InvalidConfig::new(
                    format!("{key}_env"),
                    format!("environment variable {var} is not set"),
                )
            })?;
            if value.is_empty() {
                return Err(InvalidConfig::new(key, "the secret is empty"));
            }
            SecretSource::Value(Secret::new(value))
        }
        (None, Some(f)) => file_source(&format!("{key}_file"), &f, base)?,
        (Some(_), Some(_)) => {
            return Err(InvalidConfig::new(
                format!("{key}_env"),
                format!("set {key}_env or {key}_file, not both"),
            ));
        }
        (None, None) => {
            return Err(InvalidConfig::new(
                format!("{key}_env"),
                format!("missing: set {key}_env or {key}_file"),
            ));
        }
    };
    Ok(source)
}

/// The secret file `file` (relative to `base`) that `key` names, checked
/// readable and non-empty now.
pub(crate) fn file_source(
    key: &str,
    file: &str,
    base: &Path,
) -> Result<SecretSource, InvalidConfig> {
    let source = SecretSource::file(key, base.join(file));
    source
        .read()
        .map_err(|e| InvalidConfig::new(key, format!("{}: {}", e.path, e.problem)))?;
    Ok(source)
}

/// The file's keys and values, deserialised; a type error names its key.
fn deserialize(text: &str) -> Result<RawConfig, InvalidConfig> {
    let located = |e: &toml::de::Error| match e.span() {
        Some(span) => format!("{} (line {})", e.message(), line_of(text, span.start)),
        None => e.message().to_owned(),
    };
    let document =
        toml::Deserializer::parse(text).map_err(|e| InvalidConfig::new("file", located(&e)))?;
    serde_path_to_error::deserialize(document).map_err(|e| {
        let key = e.path().to_string();
        InvalidConfig::new(key, located(e.inner()))
    })
}

fn duration(key: &str, text: &str) -> Result<Duration, InvalidConfig> {
    parse_duration(text).map_err(|message| InvalidConfig::new(key, message))
}

/// A duration such as `"30s"` or `"4h"`, as a configuration value.
pub(crate) fn duration_value<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like \"30s\" or \"4h\": {e}"))
}

fn http_url(key: &str, text: &str) -> Result<url::Url, InvalidConfig> {
    let url = url::Url::parse(text)
        .map_err(|e| InvalidConfig::new(key, format!("{text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(InvalidConfig::new(
            key,
            format!("{text:?} must be an http or https URL"),
        ));
    }
    Ok(url)
}

fn positive(key: &str, value: usize) -> Result<usize, InvalidConfig> {
    if value == 0 {
        Err(InvalidConfig::new(key, "must be at least 1"))
    } else {
        Ok(value)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}
