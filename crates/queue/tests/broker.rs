//! Publishing and consuming against the real RabbitMQ, one vhost per test.

mod common;

use common::Broker;
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
    let Broker {
        connection,
        publisher,
        ..
    } = &Broker::new().await;
    publisher.publish(Lane::Direct, &task()).await.unwrap();
    let delivery = next_message(connection, "es.direct").await;
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
    let Broker {
        connection,
        publisher,
        ..
    } = &Broker::new().await;
    publisher
        .publish_dead(b"not a task", "malformed task message: expected value")
        .await
        .unwrap();
    let delivery = next_message(connection, "es.dlq").await;
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
    let Broker {
        connection,
        publisher,
        ..
    } = &Broker::new().await;
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_delete("es.direct".into(), Default::default())
        .await
        .unwrap();
    let err = publisher.publish(Lane::Direct, &task()).await.unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
}

#[tokio::test]
async fn tasks_published_together_are_all_queued_and_a_refused_one_fails_them() {
    let vhost = TestVhost::new().await;
    let connection = connect(&vhost.url()).await.unwrap();
    let publisher = Publisher::open(&connection, Topology::new("es"))
        .await
        .unwrap();
    let tasks: Vec<Task> = (0..600)
        .map(|pk| {
            Task::new(
                "contoso",
                ObjectRef::User(AkUserPk(pk)),
                TaskReason::FullSync,
            )
        })
        .collect();
    publisher.publish_all(Lane::Bulk, &tasks).await.unwrap();
    assert_eq!(publisher.queued().await.unwrap(), 600);
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_delete("es.direct".into(), Default::default())
        .await
        .unwrap();
    let err = publisher
        .publish_all(Lane::Direct, &tasks)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
}

async fn next_delivery(consumer: &mut Consumer) -> entra_sync_queue::Delivery {
    tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a delivery arrives")
        .expect("the consumer is open")
        .unwrap()
}

/// A consumer of `lane` on a connection of its own, once `published` (if
/// any) was published there.
async fn consumer_of(
    url: &str,
    lane: Lane,
    published: Option<&Task>,
) -> (entra_sync_queue::Connection, Consumer) {
    let connection = connect(url).await.unwrap();
    let topology = Topology::new("es");
    let publisher = Publisher::open(&connection, topology.clone())
        .await
        .unwrap();
    if let Some(task) = published {
        publisher.publish(lane, task).await.unwrap();
    }
    let consumer = Consumer::open(&connection, &topology, lane, 4)
        .await
        .unwrap();
    (connection, consumer)
}

#[tokio::test]
async fn a_consumer_hands_out_its_lane_and_settles_each_delivery() {
    let vhost = TestVhost::new().await;
    let (connection, mut consumer) = consumer_of(&vhost.url(), Lane::Bulk, Some(&task())).await;
    let delivery = next_delivery(&mut consumer).await;
    assert_eq!(delivery.lane(), Lane::Bulk);
    assert_eq!(Task::decode(delivery.body()).unwrap(), task());
    delivery.ack().await.unwrap();
    consumer.cancel().await.unwrap();
    assert!(consumer.next().await.is_none(), "cancelled");
    connection.close(200, "done".into()).await.unwrap();
    let later = Task {
        attempt: 9,
        ..task()
    };
    let (_connection, mut consumer) = consumer_of(&vhost.url(), Lane::Bulk, Some(&later)).await;
    let next = next_delivery(&mut consumer).await;
    assert_eq!(
        Task::decode(next.body()).unwrap(),
        later,
        "the acked task is gone"
    );
}

#[tokio::test]
async fn a_delivery_never_settled_goes_back_to_its_queue() {
    let vhost = TestVhost::new().await;
    let (connection, mut consumer) = consumer_of(&vhost.url(), Lane::Direct, Some(&task())).await;
    let _held = next_delivery(&mut consumer).await;
    connection.close(200, "worker gone".into()).await.unwrap();
    let (_connection, mut consumer) = consumer_of(&vhost.url(), Lane::Direct, None).await;
    let next = next_delivery(&mut consumer).await;
    assert_eq!(Task::decode(next.body()).unwrap(), task());
}

/// Declares `name` as entra-sync 0.1 did: a quorum queue with the delivery
/// limit and the dead-letter target as arguments.
async fn declare_as_before(
    connection: &lapin::Connection,
    name: &str,
    args: &[(&str, lapin::types::AMQPValue)],
) -> Result<(), lapin::Error> {
    let channel = connection.create_channel().await.unwrap();
    let mut table = FieldTable::default();
    for (k, v) in args {
        table.insert((*k).into(), v.clone());
    }
    let options = lapin::options::QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(name.into(), options, table)
        .await
        .map(drop)
}

#[tokio::test]
async fn work_queues_declared_by_the_previous_release_are_still_accepted() {
    use lapin::types::{AMQPValue, LongString};
    let vhost = TestVhost::new().await;
    let connection = connect(&vhost.url()).await.unwrap();
    let old_args = [
        (
            "x-queue-type",
            AMQPValue::LongString(LongString::from("quorum")),
        ),
        ("x-delivery-limit", AMQPValue::LongInt(5)),
        (
            "x-dead-letter-exchange",
            AMQPValue::LongString(LongString::from("")),
        ),
        (
            "x-dead-letter-routing-key",
            AMQPValue::LongString(LongString::from("es.dlq")),
        ),
    ];
    for lane in ["es.direct", "es.bulk"] {
        declare_as_before(&connection, lane, &old_args)
            .await
            .unwrap();
    }
    // Redeclaring with other arguments is what breaks an upgrade…
    let refused = declare_as_before(&connection, "es.direct", &old_args[..1]).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("PRECONDITION_FAILED")),
        "{refused:?}"
    );
    // …and this release takes the queues as they are.
    let topology = Topology::new("es");
    let publisher = Publisher::open(&connection, topology.clone())
        .await
        .unwrap();
    let mut consumer = Consumer::open(&connection, &topology, Lane::Direct, 1)
        .await
        .unwrap();
    publisher.publish(Lane::Direct, &task()).await.unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a message arrives")
        .unwrap()
        .unwrap();
    assert_eq!(Task::decode(delivery.body()).unwrap(), task());
    delivery.ack().await.unwrap();
}

#[tokio::test]
async fn the_policies_are_set_through_the_management_api() {
    let vhost = TestVhost::new().await;
    let topology = Topology::new("es");
    entra_sync_queue::policy::apply(&topology, &vhost.url(), vhost.management_url())
        .await
        .unwrap();
    let policies: Vec<serde_json::Value> = reqwest::Client::new()
        .get(format!(
            "{}/api/policies/{}",
            vhost.management_url(),
            vhost.name
        ))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let work = policies
        .iter()
        .find(|p| p["name"] == "es.work")
        .expect("es.work set");
    assert_eq!(work["definition"]["delivery-limit"], 20);
    assert_eq!(work["definition"]["dead-letter-strategy"], "at-least-once");
    assert!(policies.iter().any(|p| p["name"] == "es.retry"));
}
