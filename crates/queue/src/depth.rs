//! How many messages wait in the work queues and the dead-letter queue, read
//! with passive declares, which create and change nothing.

use crate::{Lane, QueueError, Topology, broker_error};
use lapin::Connection;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;

impl Topology {
    /// The messages ready in the direct, bulk and dead-letter queues, by queue name.
    pub async fn depths(&self, connection: &Connection) -> Result<Vec<(String, u32)>, QueueError> {
        let channel = connection
            .create_channel()
            .await
            .map_err(broker_error("opening a channel"))?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let mut depths = Vec::new();
        for queue in [
            self.queue(Lane::Direct),
            self.queue(Lane::Bulk),
            self.dead_letter_queue(),
        ] {
            let declared = channel
                .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                .await
                .map_err(broker_error("reading a queue's depth"))?;
            depths.push((queue, declared.message_count()));
        }
        let _ = channel.close(200, "depths read".into()).await;
        Ok(depths)
    }
}
