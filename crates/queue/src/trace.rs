//! W3C trace context in the AMQP headers, so that one trace runs from what
//! made the producer publish a task (an event, a full sync) through the
//! worker's handling of it to its Graph calls:
//! - a publish injects the current span's context (`traceparent`,
//!   `tracestate`) with the process's propagator;
//! - a delivery's span continues the context its headers carry.
//!
//! With no propagator installed (OpenTelemetry off) nothing is added.

use lapin::types::{AMQPValue, FieldTable, LongString};
use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderInjector<'a>(&'a mut FieldTable);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0
            .insert(key.into(), AMQPValue::LongString(LongString::from(value)));
    }
}

struct HeaderExtractor<'a>(Option<&'a FieldTable>);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.0?.inner().get(key)? {
            AMQPValue::LongString(value) => std::str::from_utf8(value.as_bytes()).ok(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .map(|headers| headers.inner().keys().map(|k| k.as_str()).collect())
            .unwrap_or_default()
    }
}

/// Adds the current span's trace context to `headers`.
pub(crate) fn inject(headers: &mut FieldTable) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}

/// Makes `span` continue the trace context `headers` carry, if any.
pub(crate) fn continue_trace(span: &tracing::Span, headers: Option<&FieldTable>) {
    let context = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    });
    // Fails only when no OpenTelemetry layer is installed: nothing to continue.
    let _ = span.set_parent(context);
}
