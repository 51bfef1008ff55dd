//! Moving a follower's cursor: only after the sink took the hand-off, and on
//! authentik's clock alone, never this machine's.
//!
//! Keeps invariant 3 of DESIGN.md (at least once): a change is handed off
//! before the cursor passes it, so a crash or a failed hand-off repeats the
//! batch rather than losing it. The cursor trails authentik's clock (the
//! `Date` of its answer) by the settle window, so the next read overlaps the
//! last `settle` of authentik's time: an item that commits late, behind a
//! newer one already read, is still seen. Items read at or after the cursor
//! are kept by id (an event's pk, or a user's pk and `last_updated`), so the
//! overlap hands nothing off twice.

use super::{
    ChangeSink, ChangeSource, FollowError, FollowerConfig, Handoff, ObjectChange, PollOutcome,
};
use chrono::{DateTime, Utc};
use entra_sync_store::Store;
use entra_sync_store::cursor::SourceCursor;
use std::time::Duration;

/// The next cursor: `position` moves to `settle` before authentik's clock
/// when it answered (`server_time`; without it, `settle` before the newest
/// item), never back; `seen_ids` keeps the handled items at or after it.
pub(super) fn advance(
    old: &SourceCursor,
    handled: &[(DateTime<Utc>, String)],
    settle: Duration,
    server_time: Option<DateTime<Utc>>,
) -> SourceCursor {
    let settle = chrono::Duration::from_std(settle).unwrap_or_default();
    let newest = handled.iter().map(|(t, _)| *t).max();
    let position = server_time
        .or(newest)
        .map(|now| now - settle)
        .unwrap_or(old.position)
        .max(old.position);
    let mut seen_ids: Vec<String> = handled
        .iter()
        .filter(|(t, _)| *t >= position)
        .map(|(_, id)| id.clone())
        .collect();
    if position == old.position {
        seen_ids.extend(old.seen_ids.iter().cloned());
    }
    seen_ids.sort();
    seen_ids.dedup();
    SourceCursor { position, seen_ids }
}

pub(super) async fn hand_off<S: ChangeSink>(
    sink: &mut S,
    handoff: Handoff,
) -> Result<(), FollowError> {
    sink.handle(handoff).await.map_err(FollowError::Sink)
}

/// What one poll found.
pub(super) struct Batch {
    pub(super) source: ChangeSource,
    pub(super) new_items: usize,
    pub(super) changes: Vec<ObjectChange>,
    /// authentik's clock when the read began (the earliest `Date` of its pages).
    pub(super) server_time: Option<DateTime<Utc>>,
}

/// Hands a poll's changes to the sink, then moves the cursor past what was
/// handled: the cursor never moves unless the hand-off succeeded.
pub(super) async fn commit<S: ChangeSink>(
    store: &Store,
    config: &FollowerConfig,
    sink: &mut S,
    batch: Batch,
    cursor: &SourceCursor,
    handled: &[(DateTime<Utc>, String)],
) -> Result<PollOutcome, FollowError> {
    let outcome = PollOutcome {
        new_items: batch.new_items,
        changes: batch.changes.len(),
        full_sync: None,
    };
    if !batch.changes.is_empty() {
        let handoff = Handoff::Changes {
            source: batch.source,
            changes: batch.changes,
        };
        hand_off(sink, handoff).await?;
    }
    let next = advance(cursor, handled, config.settle, batch.server_time);
    if &next != cursor {
        store.save_cursor(&config.cursor_name, &next).await?;
    }
    Ok(outcome)
}

/// The earlier of two optional server times.
pub(super) fn earliest(
    a: Option<DateTime<Utc>>,
    b: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_trails_authentiks_clock_and_keeps_what_it_saw_after_its_position() {
        // authentik's clock, 30 s behind this machine's: only its time counts.
        let ak_now = Utc::now() - chrono::Duration::seconds(30);
        let old = SourceCursor::at(ak_now - chrono::Duration::hours(1));
        let past = ak_now - chrono::Duration::minutes(10);
        let recent = ak_now - chrono::Duration::seconds(1);
        let handled = vec![
            (past, "a".to_owned()),
            (past, "b".to_owned()),
            (recent, "c".to_owned()),
        ];
        let settle = Duration::from_secs(5);
        let next = advance(&old, &handled, settle, Some(ak_now));
        assert_eq!(next.position, ak_now - chrono::Duration::seconds(5));
        assert_eq!(next.seen_ids, vec!["c".to_owned()]);
        // An item that commits late at `recent - 1 s` is after the position: still read.
        assert!(!next.is_handled(recent - chrono::Duration::seconds(1), "d"));
        // Without authentik's clock, the newest item stands in for it.
        let fallback = advance(&old, &handled, settle, None);
        assert_eq!(fallback.position, recent - chrono::Duration::seconds(5));
        // Never back.
        assert_eq!(advance(&next, &[], settle, Some(past)), next);
    }
}
