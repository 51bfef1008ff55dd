//! Telemetry setup in one place: log format and filter, and OpenTelemetry
//! trace export over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, over gRPC
//! or HTTP as `OTEL_EXPORTER_OTLP_PROTOCOL` says (`grpc`, `http/protobuf`,
//! the default). Spans carry `service.name` for the role, and W3C trace
//! context crosses the queue (the propagator the queue crate uses).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// gRPC (a collector's port 4317).
    Grpc,
    /// HTTP with protobuf bodies (port 4318).
    HttpProtobuf,
}

impl OtlpProtocol {
    /// The protocol an `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL` value names;
    /// unset means `http/protobuf`, the OpenTelemetry default.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim) {
            None | Some("") | Some("http/protobuf") => Ok(Self::HttpProtobuf),
            Some("grpc") => Ok(Self::Grpc),
            Some(other) => Err(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={other:?} is not supported: use grpc or http/protobuf"
            )),
        }
    }
}

/// Flushes exported traces when dropped.
pub struct TelemetryGuard(Option<SdkTracerProvider>);

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("entra-sync: flushing traces failed: {e}");
        }
    }
}

/// Installs the global subscriber; `RUST_LOG` filters (default `level`:
/// `info` for the services, `warn` for the operator's commands, whose output
/// is what they print). `service` is the role's `service.name`. Call it
/// within the Tokio runtime (the gRPC exporter needs one).
pub fn init(format: LogFormat, service: &'static str, level: &str) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("{level},tokio_postgres=warn,refinery_core=warn"))
    });
    // Colours only on a terminal: logs redirected to a file or a pipe stay plain text.
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider =
        std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").and_then(|_| otlp_provider(service));
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("entra-sync")));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .init();
    TelemetryGuard(provider)
}

fn otlp_provider(service: &'static str) -> Option<SdkTracerProvider> {
    let setting = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .ok();
    let built = OtlpProtocol::parse(setting.as_deref()).and_then(|protocol| {
        let builder = opentelemetry_otlp::SpanExporter::builder();
        match protocol {
            OtlpProtocol::Grpc => builder
                .with_tonic()
                .with_protocol(opentelemetry_otlp::Protocol::Grpc)
                .build(),
            OtlpProtocol::HttpProtobuf => builder
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .build(),
        }
        .map_err(|e| e.to_string())
    });
    let exporter = match built {
        Ok(e) => e,
        Err(e) => {
            eprintln!("entra-sync: OTLP trace export disabled: {e}");
            return None;
        }
    };
    Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(service)
                    .build(),
            )
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocol_setting_chooses_the_transport() {
        assert_eq!(OtlpProtocol::parse(None), Ok(OtlpProtocol::HttpProtobuf));
        assert_eq!(
            OtlpProtocol::parse(Some("http/protobuf")),
            Ok(OtlpProtocol::HttpProtobuf)
        );
        assert_eq!(OtlpProtocol::parse(Some("grpc")), Ok(OtlpProtocol::Grpc));
        let json = OtlpProtocol::parse(Some("http/json")).unwrap_err();
        assert!(
            json.contains("\"http/json\"") && json.contains("grpc"),
            "{json}"
        );
    }
}
