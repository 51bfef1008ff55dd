//! Moving a follower's cursor: only after the sink took the hand-off, and
//! never closer to the clock than the settle window.
//!
//! Keeps invariant 3 of DESIGN.md (at least once): a change is handed off
//! before the cursor passes it, so a crash or a failed hand-off repeats the
//! batch rather than losing it; items sharing the cursor's instant are kept by
//! id, so none is skipped across a page boundary or a restart.

use super::{
    ChangeSink, ChangeSource, FollowError, FollowerConfig, Handoff, ObjectChange, PollOutcome,
};
use chrono::{DateTime, Utc};
use entra_sync_store::Store;
use entra_sync_store::cursor::SourceCursor;
use std::time::Duration;

/// The next cursor: `position` moves to the newest item, but no closer to the
/// clock than `settle`; `seen_ids` keeps the handled items at or after it.
pub(super) fn advance(
    old: &SourceCursor,
    handled: &[(DateTime<Utc>, String)],
    settle: Duration,
) -> SourceCursor {
    let newest = handled.iter().map(|(t, _)| *t).max();
    let settled = Utc::now() - chrono::Duration::from_std(settle).unwrap_or_default();
    let position = newest
        .map(|n| n.min(settled))
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
    let next = advance(cursor, handled, config.settle);
    if &next != cursor {
        store.save_cursor(&config.cursor_name, &next).await?;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_trails_the_clock_and_keeps_what_it_saw_after_its_position() {
        let old = SourceCursor::at(Utc::now() - chrono::Duration::hours(1));
        let past = Utc::now() - chrono::Duration::minutes(10);
        let recent = Utc::now();
        let handled = vec![
            (past, "a".to_owned()),
            (past, "b".to_owned()),
            (recent, "c".to_owned()),
        ];
        let next = advance(&old, &handled, Duration::from_secs(5));
        assert!(next.position > past && next.position < recent);
        assert_eq!(next.seen_ids, vec!["c".to_owned()]);
        let settled = advance(&old, &handled[..2], Duration::from_secs(5));
        assert_eq!(settled.position, past);
        assert_eq!(settled.seen_ids, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(advance(&settled, &[], Duration::from_secs(5)), settled);
    }
}
