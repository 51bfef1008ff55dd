//! The producer: full-sync scheduling, discovery, the authentik events feed and
//! webhook, and task publishing.
//!
//! From the top: [`service::run`] serves HTTP and elects the active producer;
//! the leader runs the [`scheduler::Scheduler`], which executes each run with
//! [`full_sync::full_sync`], and the [`events`] followers, whose hand-offs the
//! [`sink::TaskSink`] turns into tasks. Each provider's policy (scope,
//! deletions, existing members, starting runs) comes from the provider room,
//! `entra_sync_provider`. [`status`] shows the shared state to operators:
//! gauges for `/metrics` and the status page.
//!
//! The invariants of DESIGN.md it keeps:
//! - 1: a task names an object and why it was sent, nothing more; the
//!   producer publishes one per object that differs from what Entra holds and
//!   leaves the decision to the worker.
//! - 4: a full sync compares in bulk ([`drift`]): an unchanged directory costs
//!   reads and no task.
//! - 3: every task is published with confirms to durable queues, and a run
//!   survives a crash of its leader (the next one resumes it).
//! - 7: a run resolves its scope afresh, halts on a missing filter group, and
//!   publishes nothing when it would delete or suspend more than the threshold.
//! - 8: changes go on the direct lane, full syncs on the bulk lane.

mod discovery;
mod drift;
pub mod events;
pub mod full_sync;
pub mod metrics;
pub mod retention;
pub mod scheduler;
pub mod service;
pub mod sink;
pub mod stall;
pub mod status;
pub mod webhook;
