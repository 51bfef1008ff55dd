//! `entra-sync status [--provider NAME] [--json] [--check]`: the state of the
//! providers (halts, the last full sync, link counts, dead letters and the
//! newest failures) and of authentik (its release, the behaviour used, the
//! filters it ignores). A table by default, one JSON document with `--json`.
//!
//! Exit codes: 0 when the state was printed (a halted provider included);
//! with `--check`, 1 when a provider is halted; 2 on any error.

use super::table::Table;
use entra_sync_config::Config;
use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_store::Store;
use serde_json::{Value, json};
use std::path::Path;
use std::process::ExitCode;

/// How many of the newest object failures the status shows.
const RECENT_FAILURES: i64 = 20;
/// How many of them the table shows per provider.
const FAILURES_SHOWN: usize = 5;
/// Exit code of `--check` when a provider is halted.
const HALTED: u8 = 1;

/// What `status` prints, and how it exits.
#[derive(Debug, Clone, Copy)]
pub struct StatusArgs {
    /// One JSON document instead of the table.
    pub json: bool,
    /// Exit 1 when a provider is halted.
    pub check: bool,
}

/// Prints the status of one provider, or of all of them.
pub async fn run(
    config: Option<&Path>,
    name: Option<&str>,
    args: StatusArgs,
) -> anyhow::Result<ExitCode> {
    let config = super::load_config_without_secrets(config)?;
    let store = super::migrated_store(&config, 2).await?;
    let authentik = authentik_status(&store).await?;
    let mut providers = Vec::new();
    match name {
        Some(name) => {
            super::provider(&config, name)?;
            providers.push(provider_status(&store, name).await?);
        }
        None => {
            for provider in names(&config) {
                providers.push(provider_status(&store, provider).await?);
            }
        }
    }
    if args.json {
        let document = match name {
            Some(_) => {
                let mut p = providers[0].clone();
                p["authentik"] = authentik;
                p
            }
            None => json!({ "authentik": authentik, "providers": providers }),
        };
        println!("{}", serde_json::to_string_pretty(&document)?);
    } else {
        println!("{}", authentik_summary(&authentik));
        print!("{}", render(&providers));
    }
    let halted = providers.iter().any(|p| p["halted"] == true);
    Ok(if args.check && halted {
        ExitCode::from(HALTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// The human form: one row per provider, then each halt and the newest failures.
fn render(providers: &[Value]) -> String {
    let mut table = Table::new(&[
        "PROVIDER",
        "STATE",
        "LAST FULL SYNC",
        "OBJECTS DONE",
        "FAILED",
        "USERS",
        "GROUPS",
        "DEAD LETTERS",
    ]);
    for p in providers {
        let run = &p["last_full_sync"];
        let (sync, done, failed) = if run.is_null() {
            ("none yet".to_owned(), "-".to_owned(), "-".to_owned())
        } else {
            (
                format!(
                    "{} {} ({})",
                    text(&run["state"]),
                    time(&run["started_at"]),
                    text(&run["phase"])
                ),
                format!("{}/{}", run["objects_done"], run["objects_total"]),
                run["objects_failed"].to_string(),
            )
        };
        let state = if p["halted"] == true { "HALTED" } else { "ok" };
        table.row(vec![
            text(&p["name"]),
            state.to_owned(),
            sync,
            done,
            failed,
            p["links"]["users"].to_string(),
            p["links"]["groups"].to_string(),
            p["dead_letters"].to_string(),
        ]);
    }
    let mut out = table.render();
    for p in providers {
        let name = text(&p["name"]);
        if let Some(reason) = p["halt_reason"].as_str() {
            out.push_str(&format!(
                "\n{name} is HALTED since {}: {reason}\n  fix the cause, then run: entra-sync resume --provider {name}\n",
                time(&p["halted_at"])
            ));
        }
        let stall = &p["last_full_sync"]["stall_recovery"];
        if stall.is_object() {
            out.push_str(&format!(
                "\n{name}'s full sync stalled in phase {}: its unfinished objects were republished {} time(s), last at {}\n",
                text(&stall["phase"]),
                stall["count"],
                time(&stall["republished_at"])
            ));
        }
        let failures = p["recent_failures"].as_array().cloned().unwrap_or_default();
        if !failures.is_empty() {
            out.push_str(&format!("\nrecent failures of {name}:\n"));
            let mut rows = Table::new(&["AT", "OBJECT", "RESULT", "WHY"]);
            for f in failures.iter().take(FAILURES_SHOWN) {
                rows.row(vec![
                    time(&f["at"]),
                    format!("{}:{}", text(&f["kind"]), text(&f["object_id"])),
                    text(&f["result"]),
                    shorten(f["error"].as_str().unwrap_or("-")),
                ]);
            }
            out.push_str(&rows.render_indented("  "));
            if failures.len() > FAILURES_SHOWN {
                out.push_str(&format!(
                    "  … {} more in: entra-sync status --provider {name} --json\n",
                    failures.len() - FAILURES_SHOWN
                ));
            }
        }
    }
    out
}

/// A reason cut to fit a line; `--json` has it whole.
fn shorten(reason: &str) -> String {
    const MAX: usize = 160;
    if reason.chars().count() <= MAX {
        reason.to_owned()
    } else {
        format!("{}…", reason.chars().take(MAX).collect::<String>())
    }
}

/// A JSON string as plain text.
fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// A JSON timestamp as `2026-12-01 16:10:02 UTC`.
fn time(v: &Value) -> String {
    v.as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
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
