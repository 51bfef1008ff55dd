//! Sends authentik's generic webhook notification for each evented change.

use super::{SimEvent, WebhookTarget};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// authentik's default webhook body (`NotificationTransport.send_webhook`).
pub(crate) fn default_body(event: &SimEvent) -> serde_json::Value {
    // Notification body = event.summary = "{action}: {context repr}".
    let summary = format!(
        "{}: {{'model': {{'app': 'authentik_core', 'model_name': '{}', 'pk': {}, 'name': '{}'}}}}",
        event.action, event.model_name, event.model_pk, event.model_label
    );
    serde_json::json!({
        "body": summary,
        "severity": "notice",
        "user_email": "root@localhost",
        "user_username": "akadmin",
        "event_user_email": "root@localhost",
        "event_user_username": "akadmin",
    })
}

/// A background task delivering webhooks in order, one at a time.
pub(crate) struct Sender {
    tx: mpsc::UnboundedSender<SimEvent>,
    delivered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl Sender {
    pub(crate) fn spawn(target: WebhookTarget) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<SimEvent>();
        let delivered = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (d, f) = (delivered.clone(), failed.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            while let Some(event) = rx.recv().await {
                let sent = http
                    .post(&target.url)
                    .bearer_auth(&target.secret)
                    .json(&default_body(&event))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => d.fetch_add(1, Ordering::Relaxed),
                    _ => f.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
        Self {
            tx,
            delivered,
            failed,
        }
    }

    pub(crate) fn send(&self, event: SimEvent) {
        let _ = self.tx.send(event);
    }

    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.delivered.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}
