//! Publishing and consuming against the real RabbitMQ, one vhost per test.

use entra_sync_core::ids::AkUserPk;
use entra_sync_core::task::{ObjectRef, Task, TaskReason};
use entra_sync_queue::testing::TestVhost;
use entra_sync_queue::{Consumer, Lane, Publisher, Topology, connect};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use std::time::{Duration, Instant};

async fn next_message(connection: &lapin::Connection, queue: &str) -> lapin::message::Delivery {
    let channel = connection.create_channel().await.unwrap();
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a message arrives")
        .unwrap()
        .unwrap();
    delivery.ack(BasicAckOptions::default()).await.unwrap();
    delivery
}

fn task() -> Task {
    Task::new("contoso", ObjectRef::User(AkUserPk(42)), TaskReason::Event)
}

#[tokio::test]
async fn a_published_task_arrives_in_its_lane() {
    let vhost = TestVhost::new().await;
    let connection = connect(&vhost.url()).await.unwrap();
    let publisher = Publisher::open(&connection, Topology::new("es"))
        .await
        .unwrap();
    publisher.publish(Lane::Direct, &task()).await.unwrap();
    let delivery = next_message(&connection, "es.direct").await;
    assert_eq!(Task::decode(&delivery.data).unwrap(), task());
    assert_eq!(delivery.properties.delivery_mode(), &Some(2), "persistent");
}

#[tokio::test]
async fn a_retry_comes_back_to_its_lane_after_the_tier_delay() {
    let vhost = TestVhost::new().await;
    let connection = connect(&vhost.url()).await.unwrap();
    let topology =
        Topology::with_tiers("es", &[Duration::from_millis(300), Duration::from_secs(60)]);
    let tier = topology.tier_for(Duration::from_millis(100));
    let publisher = Publisher::open(&connection, topology).await.unwrap();
    let mut retried = task();
    retried.attempt = 3;
    let sent = Instant::now();
    publisher
        .publish_retry(Lane::Bulk, tier, &retried)
        .await
        .unwrap();
    let delivery = next_message(&connection, "es.bulk").await;
    assert!(
        sent.elapsed() >= Duration::from_millis(300),
        "came back after {:?}",
        sent.elapsed()
    );
    assert_eq!(Task::decode(&delivery.data).unwrap(), retried);
}

#[tokio::test]
async fn dead_letters_carry_their_reason() {
    let vhost = TestVhost::new().await;
    let connection = connect(&vhost.url()).await.unwrap();
    let publisher = Publisher::open(&connection, Topology::new("es"))
        .await
        .unwrap();
    publisher
        .publish_dead(b"not a task", "malformed task message: expected value")
        .await
        .unwrap();
    let delivery = next_message(&connection, "es.dlq").await;
    assert_eq!(delivery.data, b"not a task");
    let headers = delivery.properties.headers().as_ref().unwrap();
    let Some(lapin::types::AMQPValue::LongString(reason)) =
        headers.inner().get("x-entra-sync-reason")
    else {
        panic!("no reason header in {headers:?}");
    };
    assert_eq!(reason.to_string(), "malformed task message: expected value");
}

#[tokio::test]
async fn a_publish_the_broker_cannot_route_is_an_error() {
    let vhost = TestVhost::new().await;
    let connection = connect(&vhost.url()).await.unwrap();
    let publisher = Publisher::open(&connection, Topology::new("es"))
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_delete("es.direct".into(), Default::default())
        .await
        .unwrap();
    let err = publisher.publish(Lane::Direct, &task()).await.unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
}

async fn next_delivery(consumer: &mut Consumer) -> entra_sync_queue::Delivery {
    tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a delivery arrives")
        .expect("the consumer is open")
        .unwrap()
}

/// A connection to `url`, a publisher of topology `es` and a consumer of `lane`.
async fn open_lane(url: &str, lane: Lane) -> (lapin::Connection, Publisher, Consumer) {
    let connection = connect(url).await.unwrap();
    let topology = Topology::new("es");
    let publisher = Publisher::open(&connection, topology.clone())
        .await
        .unwrap();
    let consumer = Consumer::open(&connection, &topology, lane, 4)
        .await
        .unwrap();
    (connection, publisher, consumer)
}

/// The next task of `lane` for a consumer on a connection of its own, after
/// `published` (if any) was published.
async fn next_task(url: &str, lane: Lane, published: Option<&Task>) -> Task {
    let (_connection, publisher, mut consumer) = open_lane(url, lane).await;
    if let Some(task) = published {
        publisher.publish(lane, task).await.unwrap();
    }
    Task::decode(next_delivery(&mut consumer).await.body()).unwrap()
}

#[tokio::test]
async fn a_consumer_hands_out_its_lane_and_settles_each_delivery() {
    let vhost = TestVhost::new().await;
    let (connection, publisher, mut consumer) = open_lane(&vhost.url(), Lane::Bulk).await;
    publisher.publish(Lane::Bulk, &task()).await.unwrap();
    let delivery = next_delivery(&mut consumer).await;
    assert_eq!(delivery.lane(), Lane::Bulk);
    assert_eq!(Task::decode(delivery.body()).unwrap(), task());
    delivery.requeue().await.unwrap();
    let again = next_delivery(&mut consumer).await;
    assert_eq!(Task::decode(again.body()).unwrap(), task(), "requeued");
    again.ack().await.unwrap();
    consumer.cancel().await.unwrap();
    assert!(consumer.next().await.is_none(), "cancelled");
    connection.close(200, "done".into()).await.unwrap();
    let later = Task {
        attempt: 9,
        ..task()
    };
    assert_eq!(
        next_task(&vhost.url(), Lane::Bulk, Some(&later)).await,
        later,
        "the acked task is gone"
    );
}

#[tokio::test]
async fn a_delivery_never_settled_goes_back_to_its_queue() {
    let vhost = TestVhost::new().await;
    let (connection, publisher, mut consumer) = open_lane(&vhost.url(), Lane::Direct).await;
    publisher.publish(Lane::Direct, &task()).await.unwrap();
    let _held = next_delivery(&mut consumer).await;
    connection.close(200, "worker gone".into()).await.unwrap();
    assert_eq!(next_task(&vhost.url(), Lane::Direct, None).await, task());
}
