//! The producer: full-sync scheduling, discovery, the authentik events feed and
//! webhook, and task publishing.
//!
//! From the top: [`service::run`] serves HTTP and elects the active producer;
//! the leader runs the [`scheduler::Scheduler`], which executes each run with
//! [`full_sync::full_sync`], and the [`events`] followers, whose hand-offs the
//! [`sink::TaskSink`] turns into tasks.

pub mod events;
pub mod full_sync;
pub mod metrics;
pub mod scheduler;
pub mod service;
pub mod sink;
pub mod webhook;
