//! Group commit of the per-task bookkeeping: provisioning-log rows and the
//! ends of run objects from every in-flight task of the worker go to
//! PostgreSQL together, one transaction per batch, so the per-task pipeline
//! is not one commit per row.
//!
//! - The flush window is the previous flush: while one batch commits, the
//!   next gathers (up to [`MAX_BATCH`] entries), so an idle worker adds no
//!   delay and a busy one commits many tasks at once.
//! - A caller waits until its entry is committed, so the task is acked only
//!   after its outcome is durable (DESIGN invariant 3). If a batch fails, each
//!   of its callers writes its own entry alone and gets its own error.
//! - Only what no later reconcile reads is batched here. Links, what was
//!   last written and the deletion guard's counts are written by the
//!   reconcilers before the object's lock is released.

use entra_sync_core::task::ObjectKind;
use entra_sync_store::outcomes::{Outcome, RunObjectEnd};
use entra_sync_store::{Store, StoreError};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Most entries committed in one transaction.
pub const MAX_BATCH: usize = 256;

/// One provisioning-log row, owned until its batch is written.
#[derive(Debug, Clone)]
pub(crate) struct OutcomeRow {
    pub provider: String,
    pub run_id: Option<Uuid>,
    pub kind: ObjectKind,
    pub object_id: String,
    pub action: &'static str,
    pub result: &'static str,
    pub detail: Option<Value>,
    pub attempt: u32,
}

impl OutcomeRow {
    fn borrowed(&self) -> Outcome<'_> {
        Outcome {
            provider: &self.provider,
            run_id: self.run_id,
            kind: self.kind,
            object_id: &self.object_id,
            action: self.action,
            result: self.result,
            detail: self.detail.clone(),
            attempt: self.attempt,
        }
    }
}

#[derive(Debug)]
enum Entry {
    Outcome(OutcomeRow),
    End(RunObjectEnd),
}

type Pending = (Entry, oneshot::Sender<bool>);

/// Hands entries to the batch writer and waits for their commit.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    store: Store,
    entries: mpsc::UnboundedSender<Pending>,
}

impl Recorder {
    /// Starts the batch writer on `store`; it ends when every `Recorder` is dropped.
    pub(crate) fn start(store: Store) -> Self {
        let (entries, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(store.clone(), queue));
        Self { store, entries }
    }

    /// Appends to the provisioning log once committed.
    pub(crate) async fn outcome(&self, row: OutcomeRow) -> Result<(), StoreError> {
        if self.committed(Entry::Outcome(row.clone())).await {
            return Ok(());
        }
        self.store.record_outcome(&row.borrowed()).await
    }

    /// Ends a run object (counted once) once committed.
    pub(crate) async fn end_run_object(&self, end: RunObjectEnd) -> Result<(), StoreError> {
        if self.committed(Entry::End(end.clone())).await {
            return Ok(());
        }
        self.store
            .finish_run_object(end.run, end.kind, &end.object_id, end.failed)
            .await
            .map(drop)
    }

    /// Waits for the entry's batch; false if it was not committed.
    async fn committed(&self, entry: Entry) -> bool {
        let (done, committed) = oneshot::channel();
        self.entries.send((entry, done)).is_ok() && matches!(committed.await, Ok(true))
    }
}

/// Takes what is waiting, writes it in one transaction, tells every caller.
async fn write_batches(store: Store, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut outcomes = Vec::new();
        let mut ends = Vec::new();
        for (entry, _) in &batch {
            match entry {
                Entry::Outcome(row) => outcomes.push(row.borrowed()),
                Entry::End(end) => ends.push(end.clone()),
            }
        }
        let written = store.record_batch(&outcomes, &ends).await;
        if let Err(e) = &written {
            tracing::warn!(error = %e, entries = batch.len(), "cannot write a batch of outcomes; each is written alone");
        }
        drop(outcomes);
        for (_, done) in batch.drain(..) {
            let _ = done.send(written.is_ok());
        }
    }
}
