//! How many messages wait in the work queues and the dead-letter queue, read
//! with passive declares, which create and change nothing.

use crate::topology::{inspect, new_channel};
use crate::{Lane, QueueError, Topology, broker_error};
use lapin::Connection;

impl Topology {
    /// The messages ready in the direct, bulk and dead-letter queues, by queue name.
    pub async fn depths(&self, connection: &Connection) -> Result<Vec<(String, u32)>, QueueError> {
        let channel = new_channel(connection).await?;
        let mut depths = Vec::new();
        for queue in [
            self.queue(Lane::Direct),
            self.queue(Lane::Bulk),
            self.dead_letter_queue(),
        ] {
            let declared = inspect(&channel, &queue)
                .await
                .map_err(broker_error("reading a queue's depth"))?;
            depths.push((queue, declared.message_count()));
        }
        let _ = channel.close(200, "depths read".into()).await;
        Ok(depths)
    }
}
