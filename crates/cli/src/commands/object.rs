//! `entra-sync sync --provider NAME --object user:<pk>|group:<uuid>`: publishes
//! a direct task for one object (a group's memberships go with it), waits for
//! the worker's outcome and prints it. Needs the database and the broker only.
//!
//! Exit codes: 0 when every task ended ok, 1 when one failed (the reason is
//! printed), 2 on any other error or when `--timeout` passed first.

use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_core::task::{ObjectRef, Task, TaskReason};
use entra_sync_queue::{Lane, Publisher, Topology};
use entra_sync_store::outcomes::LoggedOutcome;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long to wait for the outcome when no `--timeout` is given.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Exit code when an object failed.
const FAILED: u8 = 1;
/// Exit code for any other error.
const ERROR: u8 = 2;

/// Reads `user:<pk>` or `group:<uuid>`.
pub fn parse(spec: &str) -> anyhow::Result<ObjectRef> {
    let invalid = || anyhow::anyhow!("object {spec:?} is not user:<pk> or group:<uuid>");
    let (kind, id) = spec.split_once(':').ok_or_else(invalid)?;
    match kind {
        "user" => Ok(ObjectRef::User(AkUserPk(
            id.parse().map_err(|_| invalid())?,
        ))),
        "group" => Ok(ObjectRef::Group(AkGroupPk(
            uuid::Uuid::parse_str(id).map_err(|_| invalid())?,
        ))),
        _ => Err(invalid()),
    }
}

/// The tasks that sync `object`: a group and its memberships, or a user.
fn tasks(provider: &str, object: ObjectRef) -> Vec<Task> {
    let objects = match object {
        ObjectRef::Group(pk) | ObjectRef::Membership(pk) => {
            vec![ObjectRef::Group(pk), ObjectRef::Membership(pk)]
        }
        user => vec![user],
    };
    objects
        .into_iter()
        .map(|o| Task::new(provider, o, TaskReason::Manual))
        .collect()
}

/// Publishes the object's direct task(s) and prints their outcomes as they come.
pub async fn run(
    config: Option<&Path>,
    name: &str,
    spec: &str,
    timeout: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    let object = parse(spec)?;
    let config = super::load_config_without_secrets(config)?;
    super::provider(&config, name)?;
    let store = super::migrated_store(&config, 2).await?;
    if let Some(halt) = store.halt_of(name).await? {
        eprintln!(
            "provider {name} is halted: {}; fix it, then run `entra-sync resume --provider {name}`",
            halt.reason
        );
        return Ok(ExitCode::from(ERROR));
    }
    let connection = entra_sync_queue::connect(config.amqp.url.expose()).await?;
    let publisher = Publisher::open(&connection, Topology::new(&config.amqp.queue_prefix)).await?;
    let after = store.last_log_id().await?;
    let tasks = tasks(name, object);
    for task in &tasks {
        publisher.publish(Lane::Direct, task).await?;
        println!("published a direct task for {}", task.object);
    }
    let started = Instant::now();
    let timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    let mut ended: Vec<Option<LoggedOutcome>> = vec![None; tasks.len()];
    let mut seen = vec![after; tasks.len()];
    while ended.iter().any(Option::is_none) {
        for ((task, end), seen) in tasks.iter().zip(ended.iter_mut()).zip(seen.iter_mut()) {
            if end.is_some() {
                continue;
            }
            let id = task.object.id_string();
            let kind = task.object.kind().as_str();
            for row in store.object_log_after(name, &[kind], &id, *seen).await? {
                println!("{}", describe(task.object, &row));
                *seen = row.id;
                if row.result != "retrying" {
                    *end = Some(row);
                    break;
                }
            }
        }
        if ended.iter().any(Option::is_none) {
            if started.elapsed() >= timeout {
                eprintln!(
                    "no outcome within {timeout:?}: is a worker running? (entra-sync status --provider {name})"
                );
                return Ok(ExitCode::from(ERROR));
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let all_ok = ended.iter().flatten().all(|row| row.result == "ok");
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    })
}

/// `user 42: updated (ok): {"properties":["displayName"]}`.
pub fn describe(object: ObjectRef, row: &LoggedOutcome) -> String {
    let detail = row
        .detail
        .as_ref()
        .map(|d| match d.get("error").and_then(|e| e.as_str()) {
            Some(error) => format!(": {error}"),
            None => format!(": {d}"),
        })
        .unwrap_or_default();
    format!("{object}: {} ({}){detail}", row.action, row.result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_read_as_kind_and_id() {
        assert_eq!(parse("user:42").unwrap(), ObjectRef::User(AkUserPk(42)));
        let uuid = "0190a7a2-9c1e-7c3a-8f00-5b2a1c3d4e5f";
        assert_eq!(
            parse(&format!("group:{uuid}")).unwrap(),
            ObjectRef::Group(AkGroupPk(uuid::Uuid::parse_str(uuid).unwrap()))
        );
        for bad in ["42", "user:x", "group:42", "device:1"] {
            let error = parse(bad).unwrap_err().to_string();
            assert!(error.contains(bad), "{error}");
        }
    }

    #[test]
    fn a_group_is_synced_with_its_memberships() {
        let pk = AkGroupPk(uuid::Uuid::nil());
        let kinds: Vec<_> = tasks("p", ObjectRef::Group(pk))
            .iter()
            .map(|t| t.object)
            .collect();
        assert_eq!(kinds, [ObjectRef::Group(pk), ObjectRef::Membership(pk)]);
    }
}
