//! `entra-sync status [--provider NAME] --json`: one JSON document about the
//! providers (halts, the last full sync, link counts, dead letters) and about
//! authentik (its release, the behaviour used, the filters it ignores).

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
    let authentik = authentik_status(&store).await?;
    let document = match name {
        Some(name) => {
            super::provider(&config, name)?;
            let mut p = provider_status(&store, name).await?;
            p["authentik"] = authentik.clone();
            p
        }
        None => {
            let mut providers = Vec::new();
            for provider in names(&config) {
                providers.push(provider_status(&store, provider).await?);
            }
            json!({ "authentik": authentik, "providers": providers })
        }
    };
    if as_json {
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        println!("{}", authentik_summary(&authentik));
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
    let halt = match p["halt_reason"].as_str() {
        Some(reason) => format!("; HALTED: {reason}"),
        None => String::new(),
    };
    format!(
        "{}: {sync}; {} users and {} groups linked; {} dead letters{halt}",
        p["name"].as_str().unwrap_or("?"),
        p["links"]["users"],
        p["links"]["groups"],
        p["dead_letters"]
    )
}

/// authentik as the active producer last saw it (`null` before it did).
async fn authentik_status(store: &Store) -> anyhow::Result<Value> {
    Ok(match store.authentik_server().await? {
        None => Value::Null,
        Some(a) => json!({
            "version": a.version,
            "behaves_as": a.behaves_as,
            "warning": a.warning,
            "ignored_filters": a.ignored_filters,
            "checked_at": a.checked_at,
        }),
    })
}

/// One human line: `authentik 2025.4.1 (behaviour of 2025.4); ignored filters: …`.
fn authentik_summary(a: &Value) -> String {
    if a.is_null() {
        return "authentik: release not read yet (the producer reads it when it leads)".into();
    }
    let mut line = format!(
        "authentik {} (behaviour of {})",
        a["version"].as_str().unwrap_or("unknown"),
        a["behaves_as"].as_str().unwrap_or("?")
    );
    if let Some(w) = a["warning"].as_str() {
        line.push_str(&format!("; WARNING: {w}"));
    }
    let ignored: Vec<String> = a["ignored_filters"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|f| {
                    format!(
                        "{} ({})",
                        f["filter"].as_str().unwrap_or("?"),
                        f["fallback"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if !ignored.is_empty() {
        line.push_str(&format!("; ignored filters: {}", ignored.join(", ")));
    }
    line
}

fn names(config: &Config) -> impl Iterator<Item = &str> {
    config.providers.iter().map(|p| p.name.as_str())
}

/// The status object of one provider.
async fn provider_status(store: &Store, name: &str) -> anyhow::Result<Value> {
    let halt = store.halt_of(name).await?;
    let last = store.latest_run(name).await?.map(|run| {
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
