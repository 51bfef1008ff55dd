//! Waking the active producer from any replica: a PostgreSQL `NOTIFY` on a
//! channel unique to this database and schema. authentik's webhook may reach
//! a standby producer; the standby relays it to the leader this way.

use crate::{Store, StoreError, query_error};
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

/// SQL naming the wake channel of a lock key: a short, valid identifier
/// (`send_wake` builds the same name).
const CHANNEL: &str = "SELECT 'entra_sync_' || md5($1)";

/// Notifications of the wake channel, on a connection of its own.
pub struct WakeListener {
    _client: tokio_postgres::Client,
    wakes: mpsc::Receiver<()>,
    connection: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for WakeListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeListener").finish_non_exhaustive()
    }
}

impl WakeListener {
    /// The next wake; `None` once the connection is gone (listen again).
    pub async fn next(&mut self) -> Option<()> {
        self.wakes.recv().await
    }
}

impl Drop for WakeListener {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Store {
    /// Wakes whoever listens (the active producer).
    pub async fn send_wake(&self) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            "SELECT pg_notify('entra_sync_' || md5($1), '')",
            &[&self.lock_key("wake")],
        )
        .await
        .map_err(query_error("sending a wake"))?;
        Ok(())
    }

    /// Listens for wakes on a dedicated connection.
    pub async fn listen_wakes(&self) -> Result<WakeListener, StoreError> {
        let (client, mut connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(query_error("connecting to listen for wakes"))?;
        let (tx, wakes) = mpsc::channel(1);
        let connection = tokio::spawn(async move {
            while let Some(message) =
                futures_util::future::poll_fn(|cx| connection.poll_message(cx)).await
            {
                match message {
                    // A full channel already holds a wake: nothing is lost.
                    Ok(AsyncMessage::Notification(_)) => {
                        let _ = tx.try_send(());
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        let channel: String = client
            .query_one(CHANNEL, &[&self.lock_key("wake")])
            .await
            .map_err(query_error("naming the wake channel"))?
            .get(0);
        client
            .batch_execute(&format!("LISTEN {channel}"))
            .await
            .map_err(query_error("listening for wakes"))?;
        Ok(WakeListener {
            _client: client,
            wakes,
            connection,
        })
    }
}
