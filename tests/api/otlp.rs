//! OTLP export: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the binary's
//! request spans reach an OTLP/HTTP receiver (in this process), under the
//! caller's trace, with the ids the log and the upstream call carry.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use gateway::sandbox::Sandbox;
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    trace::v1::{Span, span::SpanKind},
};
use prost::Message;
use serde_json::Value;

use crate::{
    binary::{Gateway, config},
    helpers::wait_until,
};

type Received = Arc<Mutex<Vec<Span>>>;

/// An OTLP/HTTP (protobuf) trace receiver on a random loopback port.
fn receiver() -> (String, Received) {
    let received = Received::default();
    let sink = web::Data::new(received.clone());
    let server = HttpServer::new(move || {
        App::new().app_data(sink.clone()).route(
            "/v1/traces",
            web::post().to(|body: web::Bytes, sink: web::Data<Received>| async move {
                let request = ExportTraceServiceRequest::decode(body).unwrap();
                let spans = request
                    .resource_spans
                    .into_iter()
                    .flat_map(|r| r.scope_spans)
                    .flat_map(|s| s.spans);
                sink.lock().unwrap().extend(spans);
                HttpResponse::Ok()
                    .content_type("application/x-protobuf")
                    .finish()
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    (format!("http://127.0.0.1:{port}"), received)
}

fn request_spans(received: &Received, trace_id: &str) -> Vec<Span> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|s| hex::encode(&s.trace_id) == trace_id)
        .cloned()
        .collect()
}

fn status_attribute(span: &Span) -> Option<i64> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    span.attributes
        .iter()
        .find(|kv| kv.key == "http.response.status_code")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            V::IntValue(n) => Some(*n),
            _ => None,
        })
}

/// The `trace_id` and `span_id` the request's access line carries, once
/// the access log has written it.
async fn logged_ids(gateway: &Gateway, request_id: &str) -> (String, String) {
    let find = || {
        let event: Value = gateway
            .log()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|e| e["request_id"] == request_id && e["log"] == "access")?;
        Some((
            event["trace_id"].as_str()?.to_owned(),
            event["span_id"].as_str()?.to_owned(),
        ))
    };
    wait_until("the request's log line is written", async || {
        find().is_some()
    })
    .await;
    find().unwrap()
}

#[tokio::test]
async fn request_spans_reach_an_otlp_receiver_under_the_callers_trace() {
    let (endpoint, received) = receiver();
    let sandbox = Sandbox::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dna = sandbox.dna_base_url().to_string();
    let gateway = Gateway::start_with_env(
        dir.path(),
        &config(&sandbox, &[("frontend", "otlp-key", "")], "info", &dna),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    let client = reqwest::Client::new();
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let answer = (gateway.get("/v1/billing/balance", "otlp-key"))
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .header("x-request-id", "otlp-continued")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);

    wait_until("the request span is exported", async || {
        !request_spans(&received, caller_trace).is_empty()
    })
    .await;
    wait_until("the upstream call's span is exported", async || {
        request_spans(&received, caller_trace).len() == 2
    })
    .await;
    let spans = request_spans(&received, caller_trace);
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name}: {spans:?}"))
    };
    let span = named("GET /v1/billing/balance");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(hex::encode(&span.parent_span_id), caller_span);
    assert_eq!(status_attribute(span), Some(200), "{:?}", span.attributes);
    let exported_span = hex::encode(&span.span_id);

    // The call to Slitz: a client span under it, named in the upstream's
    // traceparent.
    let call = named("GET /balance");
    assert_eq!(call.kind, SpanKind::Client as i32);
    assert_eq!(hex::encode(&call.parent_span_id), exported_span);
    let call_span = hex::encode(&call.span_id);
    assert_eq!(
        sandbox.control.last_traceparent().as_deref(),
        Some(format!("00-{caller_trace}-{call_span}-01").as_str())
    );
    // The request's span id is the one its log line carries; the access
    // line and the span both name the key.
    assert_eq!(
        logged_ids(&gateway, "otlp-continued").await,
        (caller_trace.to_owned(), exported_span.clone())
    );
    assert!(
        gateway
            .log()
            .lines()
            .any(|l| l.contains("\"request_id\":\"otlp-continued\"")
                && l.contains("\"caller\":\"frontend\"")),
        "{}",
        gateway.log()
    );
    assert!(
        span.attributes
            .iter()
            .any(|kv| kv.key == "caller" && format!("{:?}", kv.value).contains("\"frontend\"")),
        "{:?}",
        span.attributes
    );

    // Without a traceparent the gateway starts the trace: a root span.
    let answer = client
        .get(format!("{}/v1/nothing-here", gateway.base))
        .bearer_auth("otlp-key")
        .header("x-request-id", "otlp-started")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 404);
    let (trace_id, span_id) = logged_ids(&gateway, "otlp-started").await;
    wait_until("the started trace is exported", async || {
        !request_spans(&received, &trace_id).is_empty()
    })
    .await;
    let started = request_spans(&received, &trace_id);
    assert_eq!(hex::encode(&started[0].span_id), span_id);
    assert!(started[0].parent_span_id.is_empty(), "{started:?}");
    assert_eq!(status_attribute(&started[0]), Some(404));
}
