//! The scheduler and the task sink against the real PostgreSQL and RabbitMQ.

mod common;

use common::Env;
use entra_sync_core::ids::{AkGroupPk, AkUserPk};
use entra_sync_core::task::{ObjectRef, TaskReason};
use entra_sync_producer::events::{
    ChangeSink, ChangeSource, FullSyncReason, Handoff, ObjectChange,
};
use entra_sync_producer::scheduler::{ProviderSchedule, Scheduler};
use entra_sync_producer::sink::TaskSink;
use entra_sync_provider::{Provider, RunTrigger};
use entra_sync_queue::Lane;
use entra_sync_store::runs::{Run, RunState};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

fn schedule(env: &Env, name: &str, hash: &str, interval: Duration) -> ProviderSchedule {
    ProviderSchedule {
        provider: Provider {
            settings_hash: hash.into(),
            ..env.provider(name)
        },
        full_sync_interval: interval,
    }
}

async fn latest(env: &Env, provider: &str) -> Run {
    env.store()
        .latest_run(provider)
        .await
        .unwrap()
        .expect("a run")
}

async fn until_ended(env: &Env, run: uuid::Uuid) -> Run {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let r = env.store().run(run).await.unwrap().unwrap();
            if r.state != RunState::Running {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    })
    .await
    .expect("the run ends")
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn new_providers_and_changed_settings_start_a_run_unchanged_settings_do_not() {
    let env = Env::new().await;
    let store = env.store();
    Scheduler::new(env.ctx.clone(), vec![schedule(&env, "p", "h1", HOUR)])
        .register()
        .await
        .unwrap();
    let first = latest(&env, "p").await;
    assert_eq!(first.trigger, "provider_created");
    assert_eq!(first.state, RunState::Running);
    store
        .finish_run(first.id, RunState::Done, None)
        .await
        .unwrap();

    Scheduler::new(env.ctx.clone(), vec![schedule(&env, "p", "h1", HOUR)])
        .register()
        .await
        .unwrap();
    assert_eq!(
        latest(&env, "p").await.id,
        first.id,
        "unchanged settings start nothing"
    );

    Scheduler::new(env.ctx.clone(), vec![schedule(&env, "p", "h2", HOUR)])
        .register()
        .await
        .unwrap();
    let second = latest(&env, "p").await;
    assert_ne!(second.id, first.id);
    assert_eq!(second.trigger, "settings_changed");
    assert_eq!(env.ctx.metrics.full_syncs_started("p"), 2);
}

#[tokio::test]
async fn ticks_start_due_runs_and_execute_requested_ones() {
    let env = Env::new().await;
    env.add_user("adele", "adele@contoso.com");
    let _worker = env.worker(Duration::ZERO).await;
    let store = env.store();
    store.register_provider("p", "h").await.unwrap();

    let mut hourly = Scheduler::new(env.ctx.clone(), vec![schedule(&env, "p", "h", HOUR)]);
    hourly.tick().await.unwrap();
    let first = latest(&env, "p").await;
    assert_eq!(
        first.trigger, "schedule",
        "a provider that never ran is due"
    );
    assert_eq!(hourly.executing(), vec![first.id]);
    assert_eq!(until_ended(&env, first.id).await.state, RunState::Done);

    hourly.tick().await.unwrap();
    assert_eq!(
        latest(&env, "p").await.id,
        first.id,
        "not due within the interval"
    );

    // `entra-sync sync` only records the run; the scheduler executes it.
    let requested = store
        .start_run("p", RunTrigger::OnDemand)
        .await
        .unwrap()
        .id();
    hourly.tick().await.unwrap();
    assert_eq!(hourly.executing(), vec![requested]);
    let done = until_ended(&env, requested).await;
    assert_eq!(done.state, RunState::Done);
    assert_eq!(done.objects_done, 1);

    let mut eager = Scheduler::new(
        env.ctx.clone(),
        vec![schedule(&env, "p", "h", Duration::ZERO)],
    );
    eager.tick().await.unwrap();
    let due = latest(&env, "p").await;
    assert_ne!(due.id, requested);
    assert_eq!(due.trigger, "schedule");
    until_ended(&env, due.id).await;
}

#[tokio::test]
async fn a_run_left_by_a_dead_leader_is_resumed_by_the_next() {
    let env = Env::new().await;
    env.add_user("adele", "adele@contoso.com");
    let store = env.store();
    store.register_provider("p", "h").await.unwrap();
    let mut first = Scheduler::new(env.ctx.clone(), vec![schedule(&env, "p", "h", HOUR)]);
    first.tick().await.unwrap();
    let run = latest(&env, "p").await.id;
    // No worker yet: the run waits in its users phase; then its leader goes away.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(first);
    assert_eq!(latest(&env, "p").await.state, RunState::Running);

    let _worker = env.worker(Duration::ZERO).await;
    let mut second = Scheduler::new(env.ctx.clone(), vec![schedule(&env, "p", "h", HOUR)]);
    second.tick().await.unwrap();
    assert_eq!(second.executing(), vec![run]);
    let done = until_ended(&env, run).await;
    assert_eq!(done.state, RunState::Done);
    assert_eq!((done.objects_total, done.objects_done), (1, 1));
}

#[tokio::test]
async fn a_halted_providers_run_is_failed_and_no_new_one_starts() {
    let env = Env::new().await;
    let store = env.store();
    store.register_provider("p", "h").await.unwrap();
    let run = store
        .start_run("p", RunTrigger::OnDemand)
        .await
        .unwrap()
        .id();
    store.halt("p", "invalid mapping \"upn\"").await.unwrap();
    let mut scheduler = Scheduler::new(
        env.ctx.clone(),
        vec![schedule(&env, "p", "h", Duration::ZERO)],
    );
    scheduler.tick().await.unwrap();
    let failed = store.run(run).await.unwrap().unwrap();
    assert_eq!(failed.state, RunState::Failed);
    assert_eq!(
        failed.error.as_deref(),
        Some("provider halted: invalid mapping \"upn\"")
    );
    scheduler.tick().await.unwrap();
    assert_eq!(
        latest(&env, "p").await.id,
        run,
        "a halted provider is not scheduled"
    );
    assert!(scheduler.executing().is_empty());
    Scheduler::new(
        env.ctx.clone(),
        vec![schedule(&env, "p", "changed", Duration::ZERO)],
    )
    .register()
    .await
    .unwrap();
    assert_eq!(
        latest(&env, "p").await.id,
        run,
        "changed settings of a halted provider wait for `resume`"
    );
}

#[tokio::test]
async fn the_sink_publishes_events_direct_and_silent_changes_bulk_and_skips_halted_providers() {
    let env = Env::new().await;
    let store = env.store();
    store.register_provider("p", "h").await.unwrap();
    store.register_provider("q", "h").await.unwrap();
    store.halt("q", "bad credentials").await.unwrap();
    let mut sink = TaskSink::new(
        env.ctx.clone(),
        vec![Arc::new(env.provider("p")), Arc::new(env.provider("q"))],
        Arc::new(Notify::new()),
    );
    let group = AkGroupPk(uuid::Uuid::from_u128(5));
    sink.handle(Handoff::Changes {
        source: ChangeSource::Events,
        changes: vec![ObjectChange::User(AkUserPk(42)), ObjectChange::Group(group)],
    })
    .await
    .unwrap();
    let tasks = env.drain(Lane::Direct, Duration::from_millis(500)).await;
    let got: Vec<(String, ObjectRef)> = tasks
        .iter()
        .map(|t| (t.provider.clone(), t.object))
        .collect();
    assert_eq!(
        got,
        vec![
            ("p".into(), ObjectRef::User(AkUserPk(42))),
            ("p".into(), ObjectRef::Group(group)),
            ("p".into(), ObjectRef::Membership(group)),
        ]
    );
    assert!(
        tasks
            .iter()
            .all(|t| t.reason == TaskReason::Event && t.run_id.is_none())
    );
    assert!(
        env.drain(Lane::Bulk, Duration::from_millis(100))
            .await
            .is_empty()
    );
    assert_eq!(env.ctx.metrics.tasks_published(Lane::Direct), 3);

    // Silent changes (watermark, silent scan) take the bulk lane, behind no
    // direct change.
    for source in [ChangeSource::Watermark, ChangeSource::SilentScan] {
        sink.handle(Handoff::Changes {
            source,
            changes: vec![ObjectChange::User(AkUserPk(43))],
        })
        .await
        .unwrap();
    }
    let bulk = env.drain(Lane::Bulk, Duration::from_millis(500)).await;
    assert_eq!(bulk.len(), 2);
    assert!(bulk.iter().all(|t| t.reason == TaskReason::Watermark
        && t.object == ObjectRef::User(AkUserPk(43))));
    assert!(
        env.drain(Lane::Direct, Duration::from_millis(100))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_gap_in_the_feed_starts_a_full_sync_per_provider_and_wakes_the_scheduler() {
    let env = Env::new().await;
    let store = env.store();
    store.register_provider("p", "h").await.unwrap();
    store.register_provider("q", "h").await.unwrap();
    store.register_provider("halted", "h").await.unwrap();
    store.halt("halted", "bad credentials").await.unwrap();
    let kick = Arc::new(Notify::new());
    let providers = ["p", "q", "halted"]
        .map(|name| Arc::new(env.provider(name)))
        .to_vec();
    let mut sink = TaskSink::new(env.ctx.clone(), providers, kick.clone());
    sink.handle(Handoff::FullSyncNeeded(FullSyncReason::NoCursor))
        .await
        .unwrap();
    for provider in ["p", "q"] {
        let run = latest(&env, provider).await;
        assert_eq!(run.trigger, "events_gap");
        assert_eq!(run.state, RunState::Running);
    }
    assert!(
        store.latest_run("halted").await.unwrap().is_none(),
        "a halted provider waits for `resume`"
    );
    tokio::time::timeout(Duration::from_secs(1), kick.notified())
        .await
        .expect("the scheduler is woken");
}
