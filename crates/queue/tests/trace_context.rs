//! W3C trace context crosses the queue: a task published inside a span is
//! delivered with a `traceparent` header, and the delivery's span continues
//! that trace, as a child of the publish.

mod common;

use common::Broker;
use entra_sync_core::ids::AkUserPk;
use entra_sync_core::task::{ObjectRef, Task, TaskReason};
use entra_sync_queue::{Consumer, Lane};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use std::time::Duration;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test]
async fn a_delivery_continues_the_trace_its_publisher_was_in() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _default = tracing::subscriber::set_default(subscriber);

    let Broker {
        connection,
        topology,
        publisher,
        ..
    } = &Broker::new().await;
    let task = Task::new("contoso", ObjectRef::User(AkUserPk(7)), TaskReason::Event);
    let event = tracing::info_span!("event");
    let trace_id = event.context().span().span_context().trace_id();
    publisher
        .publish(Lane::Direct, &task)
        .instrument(event)
        .await
        .unwrap();

    let mut consumer = Consumer::open(connection, topology, Lane::Direct, 1)
        .await
        .unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a delivery")
        .unwrap()
        .unwrap();
    let span = delivery.span();
    let received = span.context().span().span_context().clone();
    assert_eq!(received.trace_id(), trace_id, "one trace across the queue");
    delivery.ack().await.unwrap();
    drop(span);

    let spans = exporter.get_finished_spans().unwrap();
    let publish = spans
        .iter()
        .find(|s| s.name == "queue.publish")
        .expect("a publish span");
    let receive = spans
        .iter()
        .find(|s| s.name == "queue.receive")
        .expect("a receive span");
    assert_eq!(publish.span_context.trace_id(), trace_id);
    assert_eq!(receive.parent_span_id, publish.span_context.span_id());
}
