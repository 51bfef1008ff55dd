//! `entra-sync why --provider NAME user:<pk>|group:<uuid>`: why an object is
//! (or is not) in Entra as it is, from the stored state alone: the provider's
//! halt and scope, the link, the body last written, the decision as last
//! recorded, the recent outcomes with their reasons, and dead letters.
//! Needs only the database. (A `--live` mode that maps the object now and
//! diffs it against Entra is not built yet.)

use super::object::parse;
use super::table::Table;
use entra_sync_config::ProviderConfig;
use entra_sync_core::drift::Observed;
use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_core::task::ObjectRef;
use entra_sync_store::Store;
use entra_sync_store::links::{Link, LinkKey};
use entra_sync_store::outcomes::LoggedOutcome;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// How many of the object's newest outcomes are shown.
const OUTCOMES_SHOWN: i64 = 10;

/// Prints what the state says about one object.
pub async fn run(config: Option<&Path>, name: &str, spec: &str) -> anyhow::Result<ExitCode> {
    let object = parse(spec)?;
    let config = super::load_config_without_secrets(config)?;
    let provider = super::provider(&config, name)?;
    let store = super::migrated_store(&config, 2).await?;
    print!("{}", explain(&store, provider, object).await?);
    Ok(ExitCode::SUCCESS)
}

async fn explain(
    store: &Store,
    provider: &ProviderConfig,
    object: ObjectRef,
) -> anyhow::Result<String> {
    let name = provider.name.as_str();
    let mut out = String::new();
    writeln!(out, "{object} of provider {name}")?;
    match store.halt_of(name).await? {
        Some(halt) => writeln!(
            out,
            "provider:  HALTED since {}: {} (nothing is synced until `entra-sync resume --provider {name}`)",
            halt.halted_at.format("%Y-%m-%d %H:%M:%S UTC"),
            halt.reason
        )?,
        None => writeln!(out, "provider:  running (not halted)")?,
    }
    writeln!(out, "scope:     {}", scope(store, provider, object).await?)?;
    let (kinds, link) = match object {
        ObjectRef::User(pk) => (
            vec!["user"],
            link_lines(store.link::<AkUserPk>(name, pk).await?),
        ),
        ObjectRef::Group(pk) | ObjectRef::Membership(pk) => {
            let mut lines = link_lines(store.link::<AkGroupPk>(name, pk).await?);
            let members = store.written_members(name, pk).await?;
            lines.push(format!("members last written: {}", members.len()));
            (vec!["group", "membership"], lines)
        }
    };
    for line in link {
        writeln!(out, "{line}")?;
    }
    let observed = match object {
        ObjectRef::User(pk) => store.observation::<AkUserPk>(name, pk).await?,
        ObjectRef::Group(pk) | ObjectRef::Membership(pk) => {
            store.observation::<AkGroupPk>(name, pk).await?
        }
    };
    match observed {
        None => writeln!(
            out,
            "entra:     not observed since the last write (which stands for what Entra holds)"
        )?,
        Some(Observed::Missing) => writeln!(
            out,
            "entra:     missing from the last full sync's listing (confirmed by id at its next reconcile)"
        )?,
        Some(Observed::Listed(body)) => {
            writeln!(out, "entra, as the last full sync observed it:")?;
            for (key, value) in &body {
                writeln!(out, "  {key} = {value}")?;
            }
        }
    }
    let id = object.id_string();
    let outcomes = store.object_log(name, &kinds, &id, OUTCOMES_SHOWN).await?;
    writeln!(out, "decision:  {}", decision(&outcomes))?;
    if outcomes.is_empty() {
        writeln!(out, "outcomes:  none recorded")?;
    } else {
        writeln!(out, "outcomes (newest first):")?;
        let mut table = Table::new(&["AT", "KIND", "ACTION", "RESULT", "ATTEMPT", "DETAIL"]);
        for o in &outcomes {
            table.row(vec![
                o.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                o.kind.clone(),
                o.action.clone(),
                o.result.clone(),
                o.attempt.to_string(),
                detail(o),
            ]);
        }
        out.push_str(&table.render_indented("  "));
    }
    let dead: Vec<_> = store
        .dead_letters(name, None)
        .await?
        .into_iter()
        .filter(|d| d.object_id.as_deref() == Some(id.as_str()))
        .collect();
    if !dead.is_empty() {
        writeln!(
            out,
            "dead letters: {} (ids {}); retry with: entra-sync dead-letters retry --provider {name} --id ID",
            dead.len(),
            dead.iter()
                .map(|d| d.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    Ok(out)
}

/// The provider's scope, as last resolved by any process.
async fn scope(
    store: &Store,
    provider: &ProviderConfig,
    object: ObjectRef,
) -> anyhow::Result<String> {
    let Some(group) = &provider.filter_group else {
        return Ok("every user (no filter group)".to_owned());
    };
    let membership = match object {
        ObjectRef::User(_) => {
            " (whether this user is a direct member is read from authentik, not stored)"
        }
        _ => "",
    };
    Ok(match store.filter_group(&provider.name, group).await? {
        Some(stored) => match stored.pk {
            Some(pk) => format!(
                "direct members of filter group {group:?} ({pk}, resolved {}){membership}",
                stored.resolved_at.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            None => format!(
                "filter group {group:?} did not exist at {}: the provider halts rather than sync no one",
                stored.resolved_at.format("%Y-%m-%d %H:%M:%S UTC")
            ),
        },
        None => format!("filter group {group:?}, not resolved yet{membership}"),
    })
}

/// The link and the body last written, or that there is none.
fn link_lines<K: LinkKey>(link: Option<Link<K>>) -> Vec<String> {
    let Some(link) = link else {
        return vec![
            "link:      none: no Entra object is linked (never created, matched or adopted)"
                .to_owned(),
        ];
    };
    let mut lines = vec![format!(
        "link:      Entra id {}, {}, {}",
        link.entra_id,
        format!("{:?}", link.origin).to_lowercase(),
        format!("{:?}", link.state).to_lowercase()
    )];
    lines.push("last written:".to_owned());
    if link.attributes.is_empty() {
        lines.push("  (nothing recorded)".to_owned());
    }
    for (key, value) in &link.attributes {
        lines.push(format!("  {key} = {value}"));
    }
    lines
}

/// What the newest settled outcome says about the object.
fn decision(outcomes: &[LoggedOutcome]) -> String {
    let Some(last) = outcomes.iter().find(|o| o.result != "retrying") else {
        return match outcomes.first() {
            Some(o) => format!("pending: the last attempt is being retried ({})", detail(o)),
            None => "never synced: no task reached a worker (not seen yet, or out of scope and never linked)".to_owned(),
        };
    };
    match (last.result.as_str(), last.action.as_str()) {
        ("ok", "skipped") => format!("skipped by a mapping: {}", detail(last)),
        ("ok", "deleted" | "suspended" | "unlinked") => format!(
            "deprovisioned ({}): deleted in authentik or out of scope",
            last.action
        ),
        ("ok", "dry_run") => "dry run: the writes were logged, not sent".to_owned(),
        ("ok", "group_not_linked") => "memberships wait for the group to be linked".to_owned(),
        ("ok", action) => format!("in scope and in step ({action})"),
        ("dropped", _) => "not synced: the provider was halted when the task came".to_owned(),
        ("held_back", _) => "held back by the deletion guard; see `entra-sync status`".to_owned(),
        (result, _) => format!("not synced: the last attempt {result}: {}", detail(last)),
    }
}

/// The outcome's reason, or its detail as JSON.
fn detail(o: &LoggedOutcome) -> String {
    match &o.detail {
        None => "-".to_owned(),
        Some(d) => d
            .get("error")
            .and_then(|e| e.as_str())
            .map_or_else(|| d.to_string(), str::to_owned),
    }
}
