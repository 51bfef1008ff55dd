//! Reading the queues' depths against the real RabbitMQ, one vhost per test.

use entra_sync_core::ids::AkUserPk;
use entra_sync_core::task::{ObjectRef, Task, TaskReason};
use entra_sync_queue::testing::TestVhost;
use entra_sync_queue::{Lane, Publisher, Topology, connect};

#[tokio::test]
async fn depths_count_the_ready_messages_of_each_queue() {
    let vhost = TestVhost::new().await;
    let connection = connect(&vhost.url()).await.unwrap();
    let topology = Topology::new("es");
    let publisher = Publisher::open(&connection, topology.clone())
        .await
        .unwrap();
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
    let depths = topology.depths(&connection).await.unwrap();
    assert_eq!(
        depths,
        vec![
            ("es.direct".to_owned(), 0),
            ("es.bulk".to_owned(), 3),
            (topology.dead_letter_queue(), 1),
        ]
    );
}
