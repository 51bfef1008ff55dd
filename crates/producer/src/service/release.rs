//! Knowing authentik's release while leading: read it at the start and every
//! `release_check`, and store it, with the filters authentik was seen to
//! ignore, for `status`.
//!
//! The client logs the release when it changes, and each ignored filter once;
//! the capability table (`entra_sync_authentik::release`) decides what is used.

use entra_sync_authentik::AuthentikClient;
use entra_sync_store::Store;
use std::future::Future;
use std::time::Duration;

/// Reads the release once and stores what the client knows. A failure is
/// logged: the client keeps its last knowledge (the newest behaviour at
/// first, whose filters are still checked).
pub(super) async fn check_release(client: &AuthentikClient, store: &Store) {
    if let Err(e) = client.detect_release().await {
        tracing::warn!(error = %e, "cannot read authentik's release; trying again later");
    }
    let caps = client.capabilities();
    let ignored: Vec<serde_json::Value> = client
        .ignored_filters()
        .iter()
        .map(|i| {
            serde_json::json!({
                "filter": i.filter.describe(),
                "fallback": i.filter.fallback(),
                "seen_at": i.seen_at,
            })
        })
        .collect();
    let saved = store
        .save_authentik_server(
            caps.version.as_deref(),
            &caps.behaves_as.to_string(),
            caps.warning.as_deref(),
            &serde_json::Value::Array(ignored),
        )
        .await;
    if let Err(e) = saved {
        tracing::warn!(error = %e, "cannot store authentik's release for status");
    }
}

/// [`check_release`] every `every` until `stop`.
pub(super) async fn watch_release(
    client: AuthentikClient,
    store: Store,
    every: Duration,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(every) => check_release(&client, &store).await,
        }
    }
}
