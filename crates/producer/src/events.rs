//! Follows authentik's changes: the events feed with a cursor stored in
//! PostgreSQL, and the users' `last_updated` watermark with another.
//!
//! - [`EventFollower`] (module `feed`) reads the events feed; [`WatermarkFollower`]
//!   (module `watermark`) catches user edits that made no event on authentik
//!   2025.8 and later, [`SilentScan`] (module `silent_scan`) on older ones.
//! - Both hand off plain [`ObjectChange`]s (module `change`) to a
//!   [`ChangeSink`]; the producer maps them to tasks ([`ObjectChange::tasks`])
//!   and publishes them.
//! - The cursor ([`SourceCursor`](entra_sync_store::cursor::SourceCursor)) is
//!   the instant before which everything is handled plus the ids handled at or
//!   after it, and trails authentik's clock by `settle` (default 5 s), so an
//!   event whose transaction commits a moment after a later one is still
//!   picked up. This machine's clock is never used.
//!   It moves only after the sink took the hand-off (module `cursor`).
//! - [`run`] drives a follower, waking on the webhook's [`Notify`] or the poll
//!   interval.
//!
//! The invariants of DESIGN.md it keeps: 1 (a change names an object, not what
//! happened) and 3 (no change is lost: the cursor never passes an item that
//! was not handed off, and a possible gap asks for a full sync).

mod change;
mod cursor;
mod feed;
mod silent_scan;
mod watermark;

pub use change::{ChangeSink, ChangeSource, FullSyncReason, Handoff, ObjectChange, SinkError};
pub use feed::EventFollower;
pub use silent_scan::SilentScan;
pub use watermark::WatermarkFollower;

use entra_sync_authentik::AuthentikError;
use entra_sync_store::StoreError;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The cursor name of the events feed.
pub const EVENTS_CURSOR: &str = "authentik:events";
/// The cursor name of the users' `last_updated` watermark.
pub const WATERMARK_CURSOR: &str = "authentik:users-last-updated";
/// The cursor marking the silent scan's last run (at authentik's clock).
pub const SILENT_SCAN_CURSOR: &str = "authentik:silent-scan";

/// Beyond this many new items a follower requests a full sync instead (default).
pub const MAX_BACKLOG: usize = 50_000;

/// A failed poll; the cursor did not move.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// authentik failed; see [`AuthentikError::is_configuration`].
    #[error(transparent)]
    Authentik(#[from] AuthentikError),
    /// PostgreSQL failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sink refused the hand-off.
    #[error("handing off changes failed: {0}")]
    Sink(SinkError),
}

impl FollowError {
    /// Whether retrying cannot help until someone fixes the configuration.
    pub fn is_configuration(&self) -> bool {
        match self {
            Self::Authentik(e) => e.is_configuration(),
            _ => false,
        }
    }
}

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PollOutcome {
    /// New items read (events, or updated users).
    pub new_items: usize,
    /// Distinct objects handed off.
    pub changes: usize,
    /// A full sync was requested, and why.
    pub full_sync: Option<FullSyncReason>,
}

/// Settings of a follower.
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    /// The cursor's name in `source_cursors`.
    pub cursor_name: String,
    /// How far the cursor trails the clock, for late-committing transactions.
    pub settle: Duration,
    /// Beyond this many new items a full sync is requested instead.
    pub max_backlog: usize,
}

impl FollowerConfig {
    /// Defaults: `settle` 5 s, `max_backlog` 50,000.
    pub fn new(cursor_name: &str) -> Self {
        Self {
            cursor_name: cursor_name.to_owned(),
            settle: Duration::from_secs(5),
            max_backlog: MAX_BACKLOG,
        }
    }
}

/// Anything [`run`] can drive.
pub trait Follower: Send + Sync {
    /// Reads what is new, hands it off, then saves the cursor.
    fn poll_once<S: ChangeSink>(
        &self,
        sink: &mut S,
    ) -> impl Future<Output = Result<PollOutcome, FollowError>> + Send;
}

/// Polls `follower` whenever `wake` is notified (the webhook) or `interval`
/// passes, whichever comes first, until `shutdown` completes. Transient
/// failures are logged and retried on the next wake-up; a configuration
/// error ends the loop with that error (the producer halts the provider).
pub async fn run<F: Follower, S: ChangeSink>(
    follower: &F,
    sink: &mut S,
    wake: Arc<Notify>,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<(), FollowError> {
    tokio::pin!(shutdown);
    loop {
        match follower.poll_once(sink).await {
            Ok(o) if o.changes > 0 || o.full_sync.is_some() => {
                tracing::info!(changes = o.changes, full_sync = ?o.full_sync, "authentik changes handed off");
            }
            Ok(_) => {}
            Err(e) if e.is_configuration() => return Err(e),
            Err(e) => tracing::warn!(error = %e, "following authentik failed; retrying later"),
        }
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = wake.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
