//! `entra-sync dead-letters list|retry|drop --provider NAME [--id ID…]`: the
//! tasks that exhausted their retries. `retry` publishes each again as a fresh
//! direct task (attempt 0) and removes it from the list; `drop` removes it.
//! Without `--id`, retry and drop act on every dead letter of the provider.
//! Needs the database (and the broker, to retry) only.

use super::table::Table;
use entra_sync_core::task::{Task, TaskReason};
use entra_sync_queue::{Lane, Publisher, Topology};
use entra_sync_store::dead_letters::DeadLetter;
use std::path::Path;
use std::process::ExitCode;

/// What to do with the dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// Print them.
    List,
    /// Publish their tasks again and remove them.
    Retry,
    /// Remove them.
    Drop,
}

/// Lists, retries or drops a provider's dead letters (`ids`: only those).
pub async fn run(
    config: Option<&Path>,
    name: &str,
    action: Action,
    ids: &[i64],
) -> anyhow::Result<ExitCode> {
    let config = super::load_config_without_secrets(config)?;
    super::provider(&config, name)?;
    let store = super::migrated_store(&config, 2).await?;
    let only = (!ids.is_empty()).then_some(ids);
    let letters = store.dead_letters(name, only).await?;
    if let Some(ids) = only {
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !letters.iter().any(|d| d.id == **id))
            .map(ToString::to_string)
            .collect();
        if !missing.is_empty() {
            anyhow::bail!(
                "provider {name} has no dead letter with id {}",
                missing.join(", ")
            );
        }
    }
    match action {
        Action::List => {
            if letters.is_empty() {
                println!("provider {name} has no dead letters");
            } else {
                print!("{}", list(&letters));
            }
        }
        Action::Drop => {
            let ids: Vec<i64> = letters.iter().map(|d| d.id).collect();
            let dropped = store.delete_dead_letters(name, &ids).await?;
            println!(
                "dropped {} dead letter(s) of provider {name}",
                dropped.len()
            );
        }
        Action::Retry => {
            let connection = entra_sync_queue::connect(config.amqp.url.expose()).await?;
            let publisher =
                Publisher::open(&connection, Topology::new(&config.amqp.queue_prefix)).await?;
            let mut retried = 0;
            for letter in &letters {
                let Some(task) = retry_task(letter) else {
                    eprintln!(
                        "dead letter {} holds no readable task; left in place (drop it with --id {})",
                        letter.id, letter.id
                    );
                    continue;
                };
                publisher.publish(Lane::Direct, &task).await?;
                // Removed once the broker confirmed the task: a crash between
                // the two leaves it listed, and a second retry is harmless.
                store.delete_dead_letters(name, &[letter.id]).await?;
                println!("retrying dead letter {}: {}", letter.id, task.object);
                retried += 1;
            }
            println!("{retried} task(s) published to the direct queue");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The task of a dead letter, fresh: attempt 0, sent by an operator, outside any full sync.
fn retry_task(letter: &DeadLetter) -> Option<Task> {
    let body = serde_json::to_vec(letter.task.as_ref()?).ok()?;
    let task = Task::decode(&body).ok()?;
    Some(Task {
        reason: TaskReason::Manual,
        run_id: None,
        attempt: 0,
        ..task
    })
}

fn list(letters: &[DeadLetter]) -> String {
    let mut table = Table::new(&["ID", "AT", "OBJECT", "REASON"]);
    for d in letters {
        table.row(vec![
            d.id.to_string(),
            d.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            format!(
                "{}:{}",
                d.kind.as_deref().unwrap_or("?"),
                d.object_id.as_deref().unwrap_or("?")
            ),
            d.reason.clone(),
        ]);
    }
    table.render()
}
