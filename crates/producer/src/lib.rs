//! The producer: full-sync scheduling, discovery, the authentik events feed and
//! webhook, and task publishing.
//!
//! The [`scheduler::Scheduler`] executes each run with [`full_sync::full_sync`];
//! the [`sink::TaskSink`] turns the [`events`] followers' hand-offs into tasks.

pub mod events;
pub mod full_sync;
pub mod metrics;
pub mod scheduler;
pub mod sink;
pub mod webhook;
