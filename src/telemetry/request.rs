//! The request middleware: takes or makes the request id, continues or
//! starts the trace, sets the deadline, refuses a body over the limit,
//! serves the request with all of that in task-locals (and in a `tracing`
//! span when logs are text or spans are exported), guards against panics,
//! echoes the id, writes the rate-limit fields, and counts and logs the
//! request once: its metrics and its access line.

use std::{net::IpAddr, panic::AssertUnwindSafe, sync::Arc, time::Instant};

use actix_web::{
    HttpResponse, ResponseError,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    error::InternalError,
    http::header::{HeaderName, HeaderValue},
    middleware::Next,
    web,
};
use futures_util::FutureExt;
use tracing::Instrument;

use super::{
    access_log::{self, Entry},
    client::TrustedProxies,
    metrics::{method_label, record_request},
    panic::panicked,
};
use crate::{
    context::{DEADLINE, REQUEST_ID, TRACE, TRACEPARENT_HEADER, TraceContext},
    error::ApiError,
};

/// `X-Request-Id`, as actix names headers.
pub const REQUEST_ID_HEADER: HeaderName =
    HeaderName::from_static(crate::context::REQUEST_ID_HEADER);

/// The longest one gateway request may spend on upstream calls, retries included.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub std::time::Duration);

/// The request's `tracing` span (text logs, or spans exported).
fn request_span(
    id: &str,
    trace: &TraceContext,
    method: &str,
    path: &str,
    client_ip: Option<IpAddr>,
) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = %id,
        trace_id = %trace.trace_id_hex(),
        span_id = %trace.span_id_hex(),
        method = %method,
        path = %path,
        client_ip = client_ip.map(tracing::field::display),
        // The key's name, recorded only when spans are exported (recording
        // re-formats the log's span fields); the access line always has it.
        caller = tracing::field::Empty,
        // Set only when spans are exported (OTLP's names for them).
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    )
}

/// A caller's id is kept when it is short and plain, so it cannot forge log
/// lines or carry a payload; otherwise a fresh UUID is used.
fn sane_request_id(value: &HeaderValue) -> Option<Arc<str>> {
    let s = value.to_str().ok()?;
    let ok = (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| s.into())
}

/// A fresh request id: a version 4 UUID from the thread's RNG (a ChaCha
/// stream seeded from the OS), not a `getrandom` call per request.
fn new_request_id() -> Arc<str> {
    let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let mut buffer = uuid::Uuid::encode_buffer();
    Arc::from(&*uuid.hyphenated().encode_lower(&mut buffer))
}

/// Middleware: takes or makes the request id, serves the request inside a
/// span and a task-local carrying it, echoes it, and logs one line per request.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = request_id(&req);
    let client_ip = client_ip(&req);
    let trace = req
        .headers()
        .get(TRACEPARENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::continued)
        .unwrap_or_else(TraceContext::started);
    // A `tracing` span per request only where something reads it: text
    // logs show it, exported spans are made from it. JSON lines read the
    // request from the task instead: making, entering and leaving a span on
    // every poll cost ~12% of a cache hit.
    let exported = crate::otel::on();
    let span = if exported || !super::json_logs() {
        request_span(&id, &trace, req.method().as_str(), req.path(), client_ip)
    } else {
        tracing::Span::none()
    };
    // For the access line, after the request is gone: a reference-counted
    // copy, not a new string.
    let uri = req.uri().clone();
    let method_seen = req.method().clone();
    let started = Instant::now();
    // What admission finds, read after serving, even when the request panicked.
    let seen = crate::auth::SeenSlot::default();
    actix_web::HttpMessage::extensions_mut(&req).insert(seen.clone());
    let method = method_label(req.method());
    let trace = if exported {
        // The span's name cannot change once joined to the trace, and the
        // route is admitted only later: only exported spans pay for finding
        // the pattern here.
        let pattern = req.match_pattern();
        let pattern = pattern.as_deref().unwrap_or("unmatched");
        span.record("otel.name", format!("{method} {pattern}"));
        span.record("otel.kind", "server");
        let joined = crate::otel::join(&span, trace);
        span.record("trace_id", tracing::field::display(joined.trace_id()));
        span.record("span_id", tracing::field::display(joined.span_id()));
        joined
    } else {
        trace
    };

    let context = Context {
        id: &id,
        trace,
        span: &span,
        started,
    };
    let mut outcome = serve(req, next, &context).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        outcome.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let route = route_label(&seen, &outcome);
    let caller = seen.0.caller();
    let status = outcome.status().as_u16();
    let elapsed = started.elapsed();
    record_request(method, &route, status, elapsed.as_secs_f64());
    let caller = caller.as_deref();
    if exported {
        span.record("caller", caller);
        span.record("http.response.status_code", i64::from(status));
        if status >= 500 {
            span.record("otel.status_code", "error");
        }
    }
    access_log::record(&Entry {
        request_id: &id,
        trace: &trace,
        method: method_seen.as_str(),
        path: uri.path(),
        route: &route,
        status,
        // Whole microseconds, so the line says `0.412`, not `0.41200000000000003`.
        latency_ms: elapsed.as_micros() as f64 / 1000.0,
        caller,
        client_ip,
    });
    match outcome {
        Outcome::Served(response) => Ok(response),
        // The request went down with the panic, so there is no
        // `ServiceResponse` to build; an error carrying the finished answer
        // is sent as it is, and the connection stays open.
        Outcome::Panicked(response) => {
            Err(InternalError::from_response("the request panicked", response).into())
        }
    }
}

/// The request's id: the caller's when plain, else a new one.
fn request_id(req: &ServiceRequest) -> Arc<str> {
    req.headers()
        .get(REQUEST_ID_HEADER)
        .and_then(sane_request_id)
        .unwrap_or_else(new_request_id)
}

/// The client's address, behind the trusted proxies.
fn client_ip(req: &ServiceRequest) -> Option<IpAddr> {
    let proxies = req.app_data::<web::Data<TrustedProxies>>()?;
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    proxies.client_ip(req.peer_addr().map(|a| a.ip()), forwarded)
}

/// The route's label, its pattern, never the raw path (ids would explode
/// cardinality): the path of the route admission found (no allocation); the
/// framework's pattern for the rest (Swagger UI, the document).
fn route_label(seen: &crate::auth::SeenSlot, outcome: &Outcome) -> std::borrow::Cow<'static, str> {
    if let Some(route) = seen.0.route() {
        return route.path.into();
    }
    match outcome {
        Outcome::Served(response) => response
            .request()
            .match_pattern()
            .map_or("unmatched".into(), std::borrow::Cow::Owned),
        Outcome::Panicked(_) => "unmatched".into(),
    }
}

/// What the request is served within.
struct Context<'a> {
    id: &'a Arc<str>,
    trace: TraceContext,
    span: &'a tracing::Span,
    started: Instant,
}

/// Serves the request inside its context (task-locals: id, trace,
/// deadline; and its span), refusing a body over the limit first. A panic
/// while serving (building the handler's future or polling it) becomes a
/// 500 problem; the worker and the connection live on.
async fn serve(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    context: &Context<'_>,
) -> Result<Outcome, actix_web::Error> {
    let Context {
        id,
        trace,
        span,
        started,
    } = *context;
    if let Some(error) = body_too_large(&req) {
        let response = REQUEST_ID.sync_scope(id.clone(), || error.error_response());
        return Ok(Outcome::Served(req.into_response(response)));
    }
    let budget = req
        .app_data::<web::Data<Deadline>>()
        .map_or(std::time::Duration::from_secs(3600), |d| d.0);
    // The budget is bounded at load (`upstream.deadline_ms`), so this always adds.
    let deadline = started.checked_add(budget).unwrap_or(started);
    let served = std::panic::catch_unwind(AssertUnwindSafe(|| {
        span.in_scope(|| {
            REQUEST_ID.sync_scope(id.clone(), || {
                TRACE.sync_scope(trace, || DEADLINE.sync_scope(deadline, || next.call(req)))
            })
        })
    }));
    let result = match served {
        Ok(future) => {
            AssertUnwindSafe(REQUEST_ID.scope(
                id.clone(),
                TRACE.scope(trace, DEADLINE.scope(deadline, future)),
            ))
            .catch_unwind()
            .instrument(span.clone())
            .await
        }
        Err(payload) => Err(payload),
    };
    Ok(match result {
        // Handlers and extractors turn their errors into responses themselves;
        // an `Err` here could only come from inner middleware, of which there is none.
        Ok(result) => Outcome::Served(result?.map_into_boxed_body()),
        Err(payload) => Outcome::Panicked(
            span.in_scope(|| REQUEST_ID.sync_scope(id.clone(), || panicked(payload.as_ref()))),
        ),
    })
}

/// What serving a request came to.
enum Outcome {
    Served(ServiceResponse<BoxBody>),
    Panicked(HttpResponse),
}

impl Outcome {
    fn headers_mut(&mut self) -> &mut actix_web::http::header::HeaderMap {
        match self {
            Self::Served(response) => response.headers_mut(),
            Self::Panicked(response) => response.headers_mut(),
        }
    }

    fn status(&self) -> actix_web::http::StatusCode {
        match self {
            Self::Served(response) => response.status(),
            Self::Panicked(response) => response.status(),
        }
    }
}

/// `server.max_body_bytes`, enforced on every route.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A declared body over the limit is refused before routing, whatever the
/// route; bodies without a length are bounded by the extractors.
fn body_too_large(req: &ServiceRequest) -> Option<ApiError> {
    let limit = req.app_data::<web::Data<BodyLimit>>()?.0;
    let length: u64 = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    (length > limit as u64).then_some(ApiError::PayloadTooLarge { limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_request_ids_are_distinct_version_4_uuids() {
        let ids: std::collections::HashSet<Arc<str>> =
            (0..1_000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 1_000);
        for id in ids.iter().take(10) {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.get_version(), Some(uuid::Version::Random));
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(id.len(), 36);
        }
    }

    #[test]
    fn plain_request_ids_are_kept_and_odd_ones_replaced() {
        let keep = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(sane_request_id(&keep).as_deref(), Some("abc-123_x.y:z"));
        for odd in ["", "has space", "new\tline", "é"] {
            if let Ok(v) = HeaderValue::from_str(odd) {
                assert_eq!(sane_request_id(&v), None, "{odd:?}");
            }
        }
        let long = HeaderValue::from_str(&"a".repeat(129)).unwrap();
        assert_eq!(sane_request_id(&long), None);
    }
}
