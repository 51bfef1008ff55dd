//! Full-sync runs, the objects each run planned, and their counts.
//!
//! Every planned object has a row; a task's outcome moves it from `pending`
//! to `done` or `failed` once, so a repeated task is never counted twice.

use crate::{Store, StoreError, query_error};
use chrono::{DateTime, Utc};
use entra_sync_core::task::ObjectKind;
use uuid::Uuid;

/// The state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// In progress.
    Running,
    /// Every object was attempted (some may have failed).
    Done,
    /// The run itself could not finish: a halt, authentik unreachable, the deletion threshold.
    Failed,
}

impl RunState {
    fn parse(s: &str) -> Self {
        match s {
            "done" => Self::Done,
            "failed" => Self::Failed,
            _ => Self::Running,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// What started a full sync; stored as text in `sync_runs.trigger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunTrigger {
    /// The provider was seen for the first time (`provider_created`).
    ProviderCreated,
    /// The provider's settings hash changed (`settings_changed`).
    SettingsChanged,
    /// Its `full_sync_interval` passed (`schedule`).
    Schedule,
    /// `entra-sync sync` asked for it (`on_demand`).
    OnDemand,
    /// `entra-sync resume` cleared a halt (`resume`).
    Resume,
    /// `entra-sync resume --allow-deletions` cleared the deletion guard's halt;
    /// the guard is waived for this run (`resume_allowing_deletions`).
    ResumeAllowingDeletions,
    /// Changes may have been missed: the events feed had a gap or no cursor (`events_gap`).
    EventsGap,
    /// A missing filter group exists again: its halt cleared itself (`filter_group_restored`).
    FilterGroupRestored,
}

impl RunTrigger {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProviderCreated => "provider_created",
            Self::SettingsChanged => "settings_changed",
            Self::Schedule => "schedule",
            Self::OnDemand => "on_demand",
            Self::Resume => "resume",
            Self::ResumeAllowingDeletions => "resume_allowing_deletions",
            Self::EventsGap => "events_gap",
            Self::FilterGroupRestored => "filter_group_restored",
        }
    }

    /// Whether the deletion guard is waived for the run it starts.
    pub fn allows_deletions(self) -> bool {
        self == Self::ResumeAllowingDeletions
    }
}

impl std::fmt::Display for RunTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A full-sync run and its counts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Run {
    /// Run id (UUID v7).
    pub id: Uuid,
    /// Provider name.
    pub provider: String,
    /// State.
    pub state: RunState,
    /// Where a running sync is: queued, discovery, users, groups, memberships, finished.
    pub phase: String,
    /// What started it, as stored ([`RunTrigger::as_str`]).
    pub trigger: String,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time.
    pub finished_at: Option<DateTime<Utc>>,
    /// Objects planned.
    pub objects_total: i32,
    /// Objects done.
    pub objects_done: i32,
    /// Objects that failed permanently or exhausted their retries.
    pub objects_failed: i32,
    /// Started by `resume --allow-deletions`: the deletion guard is waived for it.
    pub deletions_allowed: bool,
}

/// The result of asking for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStart {
    /// A new run was created.
    Started(Uuid),
    /// One was already running for the provider; its id.
    AlreadyRunning(Uuid),
}

impl RunStart {
    /// The run's id either way.
    pub fn id(self) -> Uuid {
        match self {
            Self::Started(id) | Self::AlreadyRunning(id) => id,
        }
    }
}

/// A run's columns; its done and failed counts are derived from its objects,
/// so no task updates the run's own row.
pub(crate) const RUN_COLUMNS: &str = "id, provider, state, phase, trigger, error, started_at, finished_at, objects_total, \
     (SELECT count(*) FILTER (WHERE o.status = 'done') FROM sync_run_objects o WHERE o.run_id = sync_runs.id)::int4, \
     (SELECT count(*) FILTER (WHERE o.status = 'failed') FROM sync_run_objects o WHERE o.run_id = sync_runs.id)::int4, \
     deletions_allowed";

pub(crate) fn run(row: &tokio_postgres::Row) -> Run {
    Run {
        id: row.get(0),
        provider: row.get(1),
        state: RunState::parse(row.get(2)),
        phase: row.get(3),
        trigger: row.get(4),
        error: row.get(5),
        started_at: row.get(6),
        finished_at: row.get(7),
        objects_total: row.get(8),
        objects_done: row.get(9),
        objects_failed: row.get(10),
        deletions_allowed: row.get(11),
    }
}

impl Store {
    /// Starts a run, unless one is already running for the provider (one at a
    /// time). It does not look at halts: `entra_sync_provider::request_full_sync` does.
    pub async fn start_run(
        &self,
        provider: &str,
        trigger: RunTrigger,
    ) -> Result<RunStart, StoreError> {
        self.insert_run(provider, trigger, false).await
    }

    /// Starts a run for which the deletion guard is waived (`resume
    /// --allow-deletions`); a run already running gets the waiver instead.
    pub async fn start_run_allowing_deletions(
        &self,
        provider: &str,
        trigger: RunTrigger,
    ) -> Result<RunStart, StoreError> {
        self.insert_run(provider, trigger, true).await
    }

    async fn insert_run(
        &self,
        provider: &str,
        trigger: RunTrigger,
        deletions_allowed: bool,
    ) -> Result<RunStart, StoreError> {
        let conn = self.conn().await?;
        let id = Uuid::now_v7();
        let inserted = conn
            .execute(
                "INSERT INTO sync_runs (id, provider, state, trigger, deletions_allowed)
                 VALUES ($1, $2, 'running', $3, $4)
                 ON CONFLICT (provider) WHERE state = 'running' DO NOTHING",
                &[&id, &provider, &trigger.as_str(), &deletions_allowed],
            )
            .await
            .map_err(query_error("starting a run"))?;
        if inserted == 1 {
            return Ok(RunStart::Started(id));
        }
        let row = conn
            .query_one(
                "UPDATE sync_runs SET deletions_allowed = deletions_allowed OR $2
                 WHERE provider = $1 AND state = 'running' RETURNING id",
                &[&provider, &deletions_allowed],
            )
            .await
            .map_err(query_error("finding the running run"))?;
        Ok(RunStart::AlreadyRunning(row.get(0)))
    }

    /// Moves a running run to another phase.
    pub async fn set_run_phase(&self, run: Uuid, phase: &str) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "UPDATE sync_runs SET phase = $2 WHERE id = $1 AND state = 'running'",
            &[&run, &phase],
        )
        .await
        .map_err(query_error("setting a run's phase"))?;
        Ok(())
    }

    /// Plans objects of a run; returns how many were new to it.
    pub async fn plan_run_objects(
        &self,
        run: Uuid,
        kind: ObjectKind,
        ids: &[String],
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn
            .transaction()
            .await
            .map_err(query_error("planning run objects"))?;
        let added = tx
            .execute(
                "INSERT INTO sync_run_objects (run_id, kind, object_id)
                 SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING",
                &[&run, &kind.as_str(), &ids],
            )
            .await
            .map_err(query_error("planning run objects"))?;
        tx.execute(
            "UPDATE sync_runs SET objects_total = objects_total + $2 WHERE id = $1",
            &[&run, &(added as i32)],
        )
        .await
        .map_err(query_error("counting run objects"))?;
        tx.commit()
            .await
            .map_err(query_error("planning run objects"))?;
        Ok(added)
    }

    /// Records the end of one object of a run; counted once however often it is called.
    /// Returns whether this call counted it.
    pub async fn finish_run_object(
        &self,
        run: Uuid,
        kind: ObjectKind,
        id: &str,
        failed: bool,
    ) -> Result<bool, StoreError> {
        let conn = self.conn().await?;
        let status = if failed { "failed" } else { "done" };
        let changed = conn
            .execute(
                "UPDATE sync_run_objects SET status = $4
                 WHERE run_id = $1 AND kind = $2 AND object_id = $3 AND status = 'pending'",
                &[&run, &kind.as_str(), &id, &status],
            )
            .await
            .map_err(query_error("finishing a run object"))?;
        Ok(changed == 1)
    }

    /// The objects of a kind a run still waits for.
    pub async fn pending_run_objects(
        &self,
        run: Uuid,
        kind: ObjectKind,
    ) -> Result<Vec<String>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT object_id FROM sync_run_objects WHERE run_id = $1 AND kind = $2 AND status = 'pending'",
                &[&run, &kind.as_str()],
            )
            .await
            .map_err(query_error("listing pending run objects"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// How many objects of a kind a run still waits for.
    pub async fn pending_run_object_count(
        &self,
        run: Uuid,
        kind: ObjectKind,
    ) -> Result<i64, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_one(
                "SELECT count(*) FROM sync_run_objects WHERE run_id = $1 AND kind = $2 AND status = 'pending'",
                &[&run, &kind.as_str()],
            )
            .await
            .map_err(query_error("counting pending run objects"))?;
        Ok(row.get(0))
    }

    /// Ends a run as done or failed.
    pub async fn finish_run(
        &self,
        run: Uuid,
        state: RunState,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "UPDATE sync_runs SET state = $2, error = $3, phase = 'finished', finished_at = now()
             WHERE id = $1 AND state = 'running'",
            &[&run, &state.as_str(), &error],
        )
        .await
        .map_err(query_error("finishing a run"))?;
        Ok(())
    }

    /// A run by id.
    pub async fn run(&self, id: Uuid) -> Result<Option<Run>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(query_error("reading a run"))?;
        Ok(row.as_ref().map(run))
    }

    /// The newest run of a provider.
    pub async fn latest_run(&self, provider: &str) -> Result<Option<Run>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE provider = $1 ORDER BY started_at DESC, id DESC LIMIT 1"),
                &[&provider],
            )
            .await
            .map_err(query_error("reading the latest run"))?;
        Ok(row.as_ref().map(run))
    }
}
