//! `entra-sync status [--provider NAME] --json`: one JSON document about the
//! providers: halts, the last full sync, link counts, dead letters.

use entra_sync_config::Config;
use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_store::Store;
use serde_json::{Value, json};
use std::path::Path;
use std::process::ExitCode;

/// How many of the newest object failures the status shows.
const RECENT_FAILURES: i64 = 20;

/// Prints the status of one provider, or of all of them: JSON with `as_json`,
/// else one line per provider.
pub async fn run(
    config: Option<&Path>,
    name: Option<&str>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config)?;
    let store = super::store(&config, 2)?;
    let document = match name {
        Some(name) => {
            super::provider(&config, name)?;
            provider_status(&store, name).await?
        }
        None => {
            let mut providers = Vec::new();
            for provider in names(&config) {
                providers.push(provider_status(&store, provider).await?);
            }
            json!({ "providers": providers })
        }
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        let providers = match document.get("providers") {
            Some(Value::Array(all)) => all.clone(),
            _ => vec![document],
        };
        for p in &providers {
            println!("{}", summary(p));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One human line: `contoso: running (users), 120/400 objects, 2 failed; halted: …`.
fn summary(p: &Value) -> String {
    let run = &p["last_full_sync"];
    let sync = if run.is_null() {
        "no full sync yet".to_owned()
    } else {
        format!(
            "last full sync {} ({}), {}/{} objects, {} failed",
            run["state"].as_str().unwrap_or("?"),
            run["phase"].as_str().unwrap_or("?"),
            run["objects_done"],
            run["objects_total"],
            run["objects_failed"]
        )
    };
    let stall = &run["stall_recovery"];
    let stall = if stall.is_object() {
        format!(
            "; stalled, {} republished {} time(s), last at {}",
            stall["phase"].as_str().unwrap_or("?"),
            stall["count"],
            stall["republished_at"].as_str().unwrap_or("?")
        )
    } else {
        String::new()
    };
    let halt = match p["halt_reason"].as_str() {
        Some(reason) => format!("; HALTED: {reason}"),
        None => String::new(),
    };
    format!(
        "{}: {sync}{stall}; {} users and {} groups linked; {} dead letters{halt}",
        p["name"].as_str().unwrap_or("?"),
        p["links"]["users"],
        p["links"]["groups"],
        p["dead_letters"]
    )
}

fn names(config: &Config) -> impl Iterator<Item = &str> {
    config.providers.iter().map(|p| p.name.as_str())
}

/// The status object of one provider.
async fn provider_status(store: &Store, name: &str) -> anyhow::Result<Value> {
    let halt = store.halt_of(name).await?;
    let last = store.latest_run(name).await?;
    let stall = match &last {
        Some(run) => store.stall_recovery(run.id).await?,
        None => None,
    };
    let last = last.map(|run| {
        json!({
            "id": run.id,
            "state": run.state,
            "phase": run.phase,
            "trigger": run.trigger,
            "error": run.error,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "objects_total": run.objects_total,
            "objects_done": run.objects_done,
            "objects_failed": run.objects_failed,
            "stall_recovery": stall,
        })
    });
    Ok(json!({
        "name": name,
        "halted": halt.is_some(),
        "halt_reason": halt.as_ref().map(|h| &h.reason),
        "halted_at": halt.as_ref().map(|h| h.halted_at),
        "last_full_sync": last,
        "links": {
            "users": store.link_count::<AkUserPk>(name).await?,
            "groups": store.link_count::<AkGroupPk>(name).await?,
        },
        "dead_letters": store.dead_letter_count(name).await?,
        "recent_failures": store.recent_failures(name, RECENT_FAILURES).await?,
    }))
}
