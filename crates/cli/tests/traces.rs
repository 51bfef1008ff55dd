//! Trace context across the queue: an `entra-sync producer` exporting over
//! OTLP/HTTP and an `entra-sync worker` exporting over OTLP/gRPC, each to a
//! stub receiver in this test that decodes what it gets. A change in authentik
//! gives one trace: the producer's hand-off and publish, the worker's receive
//! and its Graph requests.

use bytes::Bytes;
use entra_sync_sim::authentik::Mode;
use entra_sync_tests::{ProviderSpec, Stack};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One span as a receiver decoded it.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
}

type Spans = Arc<Mutex<Vec<Received>>>;

/// Records the spans of an OTLP `ExportTraceServiceRequest`.
fn record(spans: &Spans, body: &[u8]) {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
    let mut spans = spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            spans.push(Received {
                service: service.clone(),
                name: span.name,
                trace_id: span.trace_id,
                span_id: span.span_id,
                parent_span_id: span.parent_span_id,
            });
        }
    }
}

/// A stub OTLP/HTTP receiver: `POST /v1/traces` with a protobuf body.
async fn http_receiver(spans: Spans) -> SocketAddr {
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let spans = spans.clone();
            async move {
                record(&spans, &body);
                (
                    [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A stub OTLP/gRPC receiver over HTTP/2 (h2c): each request's body is one
/// length-prefixed `ExportTraceServiceRequest`; it answers an empty
/// `ExportTraceServiceResponse` with `grpc-status: 0`.
async fn grpc_receiver(spans: Spans) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let spans = spans.clone();
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(socket).await else {
                    return;
                };
                while let Some(Ok((request, mut respond))) = connection.accept().await {
                    let spans = spans.clone();
                    tokio::spawn(async move {
                        let mut body = request.into_body();
                        let mut data = Vec::new();
                        while let Some(Ok(chunk)) = body.data().await {
                            let _ = body.flow_control().release_capacity(chunk.len());
                            data.extend_from_slice(&chunk);
                        }
                        assert_eq!(data[0], 0, "uncompressed gRPC message");
                        record(&spans, &data[5..]);
                        let response = http::Response::builder()
                            .status(200)
                            .header("content-type", "application/grpc")
                            .body(())
                            .unwrap();
                        let mut stream = respond.send_response(response, false).unwrap();
                        stream
                            .send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), false)
                            .unwrap();
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                        stream.send_trailers(trailers).unwrap();
                    });
                }
            });
        }
    });
    addr
}

/// A process that is killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(config: &std::path::Path, role: &str, endpoint: SocketAddr, protocol: &str) -> Killed {
    let child = Command::new(env!("CARGO_BIN_EXE_entra-sync"))
        .arg(role)
        .env("ENTRA_SYNC_CONFIG", config)
        .env_remove("DATABASE_URL")
        .env_remove("AMQP_URL")
        .env_remove("ENTRA_SYNC_LISTEN")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{endpoint}"))
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        // Export batches every 100 ms rather than every 5 s.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start entra-sync");
    Killed(child)
}

fn named<'a>(spans: &'a [Received], service: &str, name: &str) -> Vec<&'a Received> {
    spans
        .iter()
        .filter(|s| s.service == service && s.name == name)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_is_one_trace_from_the_producer_through_the_queue_to_the_graph_calls() {
    let stack = Stack::start(vec![ProviderSpec::new("p")]).await;
    let producer_spans = Spans::default();
    let worker_spans = Spans::default();
    let http = http_receiver(producer_spans.clone()).await;
    let grpc = grpc_receiver(worker_spans.clone()).await;
    let producer_config = stack.process_config();
    let worker_config = stack.process_config();
    let _producer = spawn(&producer_config.path, "producer", http, "http/protobuf");
    let _worker = spawn(&worker_config.path, "worker", grpc, "grpc");

    // The first full sync (started when the provider registers) runs first.
    let sim = &stack.authentik.sim;
    sim.create_user(entra_sync_tests::new_user("first"), Mode::Silent);
    stack
        .eventually(
            "the first full sync reaches Entra",
            Duration::from_secs(90),
            || async { stack.graph().state().to_string().contains("first") },
        )
        .await;
    // Then a change made through authentik's API: the events feed hands it off.
    sim.create_user(entra_sync_tests::new_user("traced"), Mode::Evented);

    let started = Instant::now();
    let (handoff, publish, receive) = loop {
        let producer = producer_spans.lock().unwrap().clone();
        let worker = worker_spans.lock().unwrap().clone();
        let found = named(&producer, "entra-sync-producer", "producer.handoff")
            .into_iter()
            .find_map(|handoff| {
                let publish = named(&producer, "entra-sync-producer", "queue.publish")
                    .into_iter()
                    .find(|p| p.parent_span_id == handoff.span_id)?;
                let receive = named(&worker, "entra-sync-worker", "queue.receive")
                    .into_iter()
                    .find(|r| r.trace_id == handoff.trace_id)?;
                let graph_call = named(&worker, "entra-sync-worker", "graph.request")
                    .into_iter()
                    .any(|g| g.trace_id == handoff.trace_id);
                graph_call.then(|| (handoff.clone(), publish.clone(), receive.clone()))
            });
        if let Some(found) = found {
            break found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no trace from a hand-off to a Graph call; producer spans: {:?}; worker spans: {:?}",
            producer.iter().map(|s| &s.name).collect::<Vec<_>>(),
            worker
                .iter()
                .map(|s| (&s.service, &s.name))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(handoff.trace_id.len(), 16);
    assert_eq!(publish.trace_id, handoff.trace_id);
    assert_eq!(
        receive.parent_span_id, publish.span_id,
        "the worker's receive continues the publish named in the AMQP headers"
    );
}
