//! A change sink that keeps what the followers hand it, for their tests.

use entra_sync_core::ids::AkUserPk;
use entra_sync_producer::events::{
    ChangeSink, Follower, FullSyncReason, Handoff, ObjectChange, SinkError,
};

/// Keeps every handoff; with `fail`, refuses them as a queue that is down would.
#[derive(Default)]
pub struct Collect {
    pub handoffs: Vec<Handoff>,
    pub fail: bool,
}

impl ChangeSink for Collect {
    async fn handle(&mut self, handoff: Handoff) -> Result<(), SinkError> {
        if self.fail {
            return Err("the queue is down".into());
        }
        self.handoffs.push(handoff);
        Ok(())
    }
}

impl Collect {
    /// The changes handed off, in order.
    pub fn changes(&self) -> Vec<ObjectChange> {
        self.handoffs
            .iter()
            .flat_map(|h| match h {
                Handoff::Changes { changes, .. } => changes.clone(),
                Handoff::FullSyncNeeded(_) => vec![],
            })
            .collect()
    }

    /// The full syncs asked for, in order.
    pub fn full_syncs(&self) -> Vec<FullSyncReason> {
        self.handoffs
            .iter()
            .filter_map(|h| match h {
                Handoff::FullSyncNeeded(r) => Some(r.clone()),
                Handoff::Changes { .. } => None,
            })
            .collect()
    }
}

/// Polls `follower` once into a fresh sink, and returns what it was handed.
pub async fn poll(follower: &impl Follower) -> Collect {
    let mut sink = Collect::default();
    follower.poll_once(&mut sink).await.unwrap();
    sink
}

/// A change of authentik user `pk`.
pub fn user(pk: i64) -> ObjectChange {
    ObjectChange::User(AkUserPk(pk))
}
