//! The producer: full-sync scheduling, discovery, the authentik events feed and
//! webhook, and task publishing.

pub mod events;
pub mod full_sync;
pub mod metrics;
pub mod webhook;
