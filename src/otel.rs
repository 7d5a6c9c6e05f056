//! Export of the gateway's spans over OTLP (HTTP, protobuf), switched on by
//! the standard variables only: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), unless `OTEL_SDK_DISABLED=true`.
//! The exporter reads the rest of the standard set itself (headers, timeout,
//! `OTEL_BSP_*`, `OTEL_TRACES_SAMPLER`, `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`). When it is off, no layer is installed and a
//! request pays one atomic load.
//!
//! The exported request span is the gateway's span of the W3C trace context
//! (`context::TraceContext`): its ids are the ones logged and sent upstream
//! in `traceparent`, so a trace in the collector, a log line and an
//! upstream's record of the call all name the same span.

use std::sync::{
    OnceLock,
    atomic::{AtomicBool, Ordering},
};

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::{
    Resource,
    trace::{SdkTracer, SdkTracerProvider},
};
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};
use tracing_subscriber::registry::LookupSpan;

use crate::context::TraceContext;

static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();
static ON: AtomicBool = AtomicBool::new(false);

/// Whether the standard variables ask for OTLP export of traces.
pub fn requested(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Only OTLP over HTTP with protobuf is built in (the collector's port
/// 4318); asking for another protocol turns export off, with the reason,
/// rather than sending protobuf to a gRPC port.
fn protocol(var: impl Fn(&str) -> Option<String>) -> Result<(), String> {
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(value) = var(name).filter(|v| !v.trim().is_empty()) {
            if value.trim() != "http/protobuf" {
                return Err(format!(
                    "{name}={value}: only http/protobuf is built in (point the endpoint at the collector's port 4318)"
                ));
            }
            return Ok(());
        }
    }
    Ok(())
}

/// The layer exporting spans, when the environment asks for it; an
/// exporter that cannot be built (a bad endpoint) is an error to log, and
/// the gateway runs on without export.
pub fn layer<S>() -> Result<Option<OpenTelemetryLayer<S, SdkTracer>>, String>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let var = |name: &str| std::env::var(name).ok();
    if !requested(var) {
        return Ok(None);
    }
    protocol(var)?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| format!("OTLP span export is off: {e}"))?;
    let mut resource = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.version",
        env!("CARGO_PKG_VERSION"),
    ));
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("gateway");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = provider.tracer("gateway");
    if PROVIDER.set(provider).is_err() {
        // Installed already (a second init): the first one exports.
        return Ok(None);
    }
    ON.store(true, Ordering::Release);
    Ok(Some(tracing_opentelemetry::layer().with_tracer(tracer)))
}

/// Gives a request's span its place in the trace: the caller's span as its
/// remote parent, and returns the trace context with the span's ids as the
/// exporter assigned them. Without export, `trace` as it is.
pub fn join(span: &tracing::Span, trace: TraceContext) -> TraceContext {
    if !on() {
        return trace;
    }
    if let Some((trace_id, parent_id, sampled)) = trace.remote_parent() {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        let parent = SpanContext::new(
            TraceId::from_bytes(trace_id.to_be_bytes()),
            SpanId::from_bytes(parent_id.to_be_bytes()),
            flags,
            true,
            TraceState::default(),
        );
        // Fails only for a span the filter disabled: then nothing is exported.
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
    adopt(span, trace)
}

/// `trace` with the ids the exporter gave `span` (started now).
fn adopt(span: &tracing::Span, trace: TraceContext) -> TraceContext {
    let context = span.context();
    let exported = context.span().span_context().clone();
    if !exported.is_valid() {
        return trace;
    }
    trace.with_ids(
        u128::from_be_bytes(exported.trace_id().to_bytes()),
        u64::from_be_bytes(exported.span_id().to_bytes()),
        exported.is_sampled(),
    )
}

/// One call to an upstream, as a client span under the request's span: the
/// upstream's `traceparent` names it. Never entered, so the request's log
/// lines keep the request's span; it ends when dropped.
pub struct ClientSpan {
    span: tracing::Span,
    trace: TraceContext,
}

impl ClientSpan {
    /// A span for a call of `operation`, when spans are exported and a
    /// request is being served.
    pub fn start(upstream: &'static str, operation: &'static str) -> Option<Self> {
        if !on() {
            return None;
        }
        let request = crate::context::current_trace()?;
        let span = tracing::info_span!(
            "upstream call",
            otel.name = operation,
            otel.kind = "client",
            upstream,
            operation,
            outcome = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let trace = adopt(&span, request);
        Some(Self { span, trace })
    }

    /// Runs the call with this span as the parent its `traceparent` names.
    pub async fn around<F: std::future::Future>(call: Option<&Self>, future: F) -> F::Output {
        match call {
            Some(call) => crate::context::TRACE.scope(call.trace, future).await,
            None => future.await,
        }
    }

    /// Records how the call ended (`ok` or the failure's outcome label).
    pub fn finish(self, outcome: &'static str) {
        self.span.record("outcome", outcome);
        if outcome != "ok" {
            self.span.record("otel.status_code", "error");
        }
    }
}

/// Whether spans are exported: the request span then gets its OTLP name,
/// kind and status.
pub fn on() -> bool {
    ON.load(Ordering::Acquire)
}

/// Sends the spans still queued; called once the server has stopped.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_standard_endpoint_variables_switch_export_on() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(!requested(env(&[])));
        assert!(!requested(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])));
        assert!(!requested(env(&[("OTEL_SERVICE_NAME", "gateway")])));
        assert!(requested(env(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318"
        )])));
        assert!(requested(env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4318/v1/traces"
        )])));
        assert!(!requested(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ])));
    }

    #[test]
    fn only_http_protobuf_is_accepted() {
        let with = |name: &'static str, value: &'static str| {
            move |n: &str| (n == name).then(|| value.to_owned())
        };
        assert!(protocol(|_| None).is_ok());
        assert!(protocol(with("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")).is_ok());
        let grpc = protocol(with("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")).unwrap_err();
        assert!(grpc.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc"), "{grpc}");
        assert!(protocol(with("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")).is_err());
    }

    #[test]
    fn without_export_the_trace_is_left_as_it_is() {
        let trace = TraceContext::started();
        assert_eq!(join(&tracing::Span::none(), trace), trace);
    }
}
