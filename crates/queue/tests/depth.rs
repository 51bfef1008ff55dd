//! Reading the queues' depths against the real RabbitMQ, one vhost per test.

mod common;

use common::Broker;
use entra_sync_core::ids::AkUserPk;
use entra_sync_core::task::{ObjectRef, Task, TaskReason};
use entra_sync_queue::Lane;

#[tokio::test]
async fn depths_count_the_ready_messages_of_each_queue() {
    let Broker {
        connection,
        topology,
        publisher,
        ..
    } = &Broker::new().await;
    for pk in 0..3 {
        let task = Task::new(
            "contoso",
            ObjectRef::User(AkUserPk(pk)),
            TaskReason::FullSync,
        );
        publisher.publish(Lane::Bulk, &task).await.unwrap();
    }
    publisher
        .publish_dead(b"unreadable", "not a task")
        .await
        .unwrap();
    let depths = topology.depths(connection).await.unwrap();
    assert_eq!(
        depths,
        vec![
            ("es.direct".to_owned(), 0),
            ("es.bulk".to_owned(), 3),
            (topology.dead_letter_queue(), 1),
        ]
    );
}
