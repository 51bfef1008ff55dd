//! Pure decisions of entra-sync: domain types, property mappings, scope,
//! matching, diffing, failure classification, retry backoff, the adaptive
//! write pace and the permissions writes need.
//!
//! Nothing in this crate does I/O or needs an async runtime, so every
//! decision can be tested exhaustively and runs in microseconds.

pub mod authentik;
pub mod backoff;
pub mod diff;
pub mod drift;
pub mod entra;
pub mod failure;
pub mod ids;
pub mod mapping;
pub mod matching;
pub mod pace;
pub mod password;
pub mod permissions;
pub mod reconcile;
pub mod scope;
pub mod secret;
pub mod task;
