//! Logging and the request context: one span per request carrying the
//! request id, which is also echoed to the caller, sent upstream and written
//! into every problem body.

use std::{io::IsTerminal, net::IpAddr, panic::AssertUnwindSafe, sync::Arc, time::Instant};

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
use tracing_subscriber::{EnvFilter, fmt, prelude::*, reload};

pub use crate::context::{RequestScope, current_request_id};

/// `X-Request-Id`, as actix names headers.
pub const REQUEST_ID_HEADER: HeaderName =
    HeaderName::from_static(crate::context::REQUEST_ID_HEADER);
use crate::{
    configuration::{LogFormat, LogSettings},
    context::{DEADLINE, REQUEST_ID, RequestLocal, TRACE, TRACEPARENT_HEADER, TraceContext},
    error::ApiError,
};

/// The longest one gateway request may spend on upstream calls, retries included.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub std::time::Duration);

/// Installs the global subscriber: JSON lines for machines, pretty for people.
/// `RUST_LOG`, when set, wins over the configured filter.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let _ = FILTER.set(handle);
    let (otel, otel_failed) = match crate::otel::layer() {
        Ok(layer) => (layer, None),
        Err(e) => (None, Some(e)),
    };
    // Lines go to stdout from a thread of their own, so a request never
    // waits on the write; not lossy: a full queue makes callers wait rather
    // than drop a line, and `flush` writes out the rest before exit. The
    // queue holds 8,192 lines (~4 MB), not the crate's 128,000: with a slow
    // stdout those would be another ~60 MB of memory, and the wait would
    // only come later. The thread writes what is queued in one go and
    // flushes whenever the queue is empty: a busy gateway makes a write
    // call per batch of lines, not per line (stdout alone flushes at every
    // newline), and an idle one still has every line out at once.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(8_192)
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        ));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let access = writer.clone();
    let result = if json {
        registry
            .with(
                fmt::layer()
                    .event_format(RequestJson(
                        fmt::format()
                            .json()
                            .with_current_span(true)
                            .with_span_list(false),
                    ))
                    .fmt_fields(crate::log_json::SpanFields)
                    .with_writer(writer),
            )
            .try_init()
    } else {
        registry.with(fmt::layer().with_writer(writer)).try_init()
    };
    // A second init (tests, embedding) keeps the first subscriber.
    if result.is_ok() {
        if json {
            let _ = ACCESS_LINES.set(access);
        }
        *WRITER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(guard);
    }
    if let Some(error) = otel_failed {
        tracing::error!(
            error,
            "traces are not exported (check OTEL_EXPORTER_OTLP_ENDPOINT)"
        );
    }
}

/// With JSON logs: the writer the access lines go to, written by
/// [`access_line`] in the subscriber's format without going through it.
static ACCESS_LINES: std::sync::OnceLock<tracing_appender::non_blocking::NonBlocking> =
    std::sync::OnceLock::new();

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

/// The JSON `span` object the subscriber writes for [`request_span`]: its
/// fields sorted by name, as it sorts them, then its name.
fn write_log_span(
    out: &mut impl std::fmt::Write,
    client_ip: Option<IpAddr>,
    method: &str,
    path: &str,
    request_id: &str,
    trace: &TraceContext,
) -> std::fmt::Result {
    out.write_char('{')?;
    if let Some(ip) = client_ip {
        write!(out, "\"client_ip\":\"{ip}\",")?;
    }
    out.write_str("\"method\":")?;
    crate::log_json::write_str(out, method)?;
    out.write_str(",\"path\":")?;
    crate::log_json::write_str(out, path)?;
    out.write_str(",\"request_id\":")?;
    crate::log_json::write_str(out, request_id)?;
    write!(
        out,
        ",\"span_id\":\"{}\",\"trace_id\":\"{}\",\"name\":\"request\"}}",
        trace.span_id_hex(),
        trace.trace_id_hex()
    )
}

/// What the access line says about a request.
struct Access<'a> {
    status: u16,
    latency_ms: f64,
    caller: Option<&'a str>,
    /// The request's JSON `span` object, when it has no `tracing` span.
    log_span: Option<&'a str>,
}

/// Logs the request's one line. Without a `tracing` span (JSON logs, no
/// export), the line is written here in one pass, byte for byte as the
/// subscriber would write it. Otherwise (text logs, spans exported) it is
/// an event in the span, as any other.
fn access_line(span: &tracing::Span, access: &Access<'_>) {
    let warn = access.status >= 500;
    if let (Some(writer), Some(log_span)) = (ACCESS_LINES.get(), access.log_span) {
        let enabled = if warn {
            tracing::enabled!(target: "gateway::telemetry", tracing::Level::WARN)
        } else {
            tracing::enabled!(target: "gateway::telemetry", tracing::Level::INFO)
        };
        if enabled {
            let mut line = Vec::with_capacity(512);
            access.write_json(&mut line, log_span, warn);
            let _ = std::io::Write::write_all(&mut writer.clone(), &line);
        }
        return;
    }
    let Access {
        status,
        latency_ms,
        caller,
        ..
    } = *access;
    span.in_scope(|| {
        if warn {
            tracing::warn!(status, latency_ms, caller, "request finished");
        } else {
            tracing::info!(status, latency_ms, caller, "request finished");
        }
    });
}

impl Access<'_> {
    fn write_json(&self, out: &mut Vec<u8>, log_span: &str, warn: bool) {
        use std::io::Write as _;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let _ = write!(out, "{{\"timestamp\":\"{now}\"");
        out.extend_from_slice(if warn {
            b",\"level\":\"WARN\""
        } else {
            b",\"level\":\"INFO\""
        });
        let _ = write!(
            out,
            ",\"fields\":{{\"message\":\"request finished\",\"status\":{},\"latency_ms\":",
            self.status
        );
        let _ = serde_json::to_writer(&mut *out, &self.latency_ms);
        if let Some(caller) = self.caller {
            out.extend_from_slice(b",\"caller\":");
            let _ = serde_json::to_writer(&mut *out, caller);
        }
        out.extend_from_slice(b"},\"target\":\"gateway::telemetry\",\"span\":");
        out.extend_from_slice(log_span.as_bytes());
        out.extend_from_slice(b"}\n");
    }
}

/// The JSON event format, for lines logged inside a request that has no
/// `tracing` span: the subscriber's own line, with the request's `span`
/// object where it would have written the span's (last, after `target`).
/// Any other line is the subscriber's, untouched.
struct RequestJson(fmt::format::Format<fmt::format::Json>);

impl<S, N> fmt::FormatEvent<S, N> for RequestJson
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'w> fmt::FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &fmt::FmtContext<'_, S, N>,
        mut writer: fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let in_span = event.parent().is_some() || ctx.lookup_current().is_some();
        let log_span = (!in_span).then(crate::context::current_log_span).flatten();
        let Some(log_span) = log_span else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::with_capacity(256);
        self.0
            .format_event(ctx, fmt::format::Writer::new(&mut line), event)?;
        match line.trim_end_matches('\n').strip_suffix('}') {
            Some(head) => writeln!(writer, "{head},\"span\":{log_span}}}"),
            None => writer.write_str(&line),
        }
    }
}

/// The log writer's thread, kept until [`flush`].
static WRITER: std::sync::Mutex<Option<tracing_appender::non_blocking::WorkerGuard>> =
    std::sync::Mutex::new(None);

/// Writes out the log lines still queued and stops the writer: the last
/// thing before the process exits, so no line is lost.
pub fn flush() {
    let guard = WRITER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    drop(guard);
}

/// The installed subscriber's filter, to swap on a configuration reload.
static FILTER: std::sync::OnceLock<reload::Handle<EnvFilter, tracing_subscriber::Registry>> =
    std::sync::OnceLock::new();

/// Puts `log.filter` in place of the filter in use. `RUST_LOG`, when set,
/// keeps winning, as at start.
pub fn reload_filter(filter: &str) -> Result<(), String> {
    if std::env::var_os("RUST_LOG").is_some() {
        return Err("RUST_LOG is set and wins over log.filter".into());
    }
    let filter = EnvFilter::try_new(filter).map_err(|e| format!("`log.filter`: {e}"))?;
    match FILTER.get() {
        Some(handle) => handle.reload(filter).map_err(|e| e.to_string()),
        None => Err("no log subscriber installed".into()),
    }
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
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(sane_request_id)
        .unwrap_or_else(new_request_id);
    let client_ip = req
        .app_data::<web::Data<TrustedProxies>>()
        .and_then(|proxies| {
            let forwarded = req
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok());
            proxies.client_ip(req.peer_addr().map(|a| a.ip()), forwarded)
        });
    let trace = req
        .headers()
        .get(TRACEPARENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::continued)
        .unwrap_or_else(TraceContext::started);
    // Recording a field re-formats the span's log fields: only when spans
    // are exported, whose ids then replace the ones logged.
    let exported = crate::otel::on();
    // With JSON logs and no export, no `tracing` span: the request's lines
    // take its `span` object from the task (see `RequestJson`), written once
    // here. Making, entering and leaving a span on every poll cost ~12% of a
    // cache hit, for the few requests that log more than their access line.
    let log_span: Option<Arc<str>> = (!exported && ACCESS_LINES.get().is_some()).then(|| {
        let mut object = String::with_capacity(256);
        let _ = write_log_span(
            &mut object,
            client_ip,
            req.method().as_str(),
            req.path(),
            &id,
            &trace,
        );
        object.into()
    });
    let span = if log_span.is_some() {
        tracing::Span::none()
    } else {
        request_span(&id, &trace, req.method().as_str(), req.path(), client_ip)
    };
    let local = RequestLocal {
        id: id.clone(),
        log_span: log_span.clone(),
    };
    let started = Instant::now();
    // Label by route pattern, never the raw path: ids would explode
    // cardinality. The route table's path for its routes (no allocation);
    // actix's pattern for the rest (Swagger UI, the document). Read before
    // serving: a request that panics is gone after.
    let route: std::borrow::Cow<'static, str> =
        match req.match_name().and_then(crate::route_table::by_name) {
            Some(route) => route.path.into(),
            None => req
                .match_pattern()
                .map_or("unmatched".into(), std::borrow::Cow::Owned),
        };
    let method = method_label(req.method());
    let trace = if exported {
        span.record("otel.name", format!("{method} {route}"));
        span.record("otel.kind", "server");
        let joined = crate::otel::join(&span, trace);
        span.record("trace_id", tracing::field::display(joined.trace_id()));
        span.record("span_id", tracing::field::display(joined.span_id()));
        joined
    } else {
        trace
    };

    let mut outcome = match body_too_large(&req) {
        Some(error) => {
            let response = REQUEST_ID.sync_scope(local.clone(), || error.error_response());
            Outcome::Served(req.into_response(response))
        }
        None => {
            let budget = req
                .app_data::<web::Data<Deadline>>()
                .map_or(std::time::Duration::from_secs(3600), |d| d.0);
            // The budget is bounded at load (`upstream.deadline_ms`), so this always adds.
            let deadline = started.checked_add(budget).unwrap_or(started);
            // A panic while serving (building the handler's future or polling
            // it) becomes a 500 problem; the worker and the connection live on.
            let served = std::panic::catch_unwind(AssertUnwindSafe(|| {
                span.in_scope(|| {
                    REQUEST_ID.sync_scope(local.clone(), || {
                        TRACE.sync_scope(trace, || DEADLINE.sync_scope(deadline, || next.call(req)))
                    })
                })
            }));
            let result = match served {
                Ok(future) => {
                    AssertUnwindSafe(REQUEST_ID.scope(
                        local.clone(),
                        TRACE.scope(trace, DEADLINE.scope(deadline, future)),
                    ))
                    .catch_unwind()
                    .instrument(span.clone())
                    .await
                }
                Err(payload) => Err(payload),
            };
            match result {
                // Handlers and extractors turn their errors into responses themselves;
                // an `Err` here could only come from inner middleware, of which there is none.
                Ok(result) => Outcome::Served(result?.map_into_boxed_body()),
                Err(payload) => Outcome::Panicked(span.in_scope(|| {
                    REQUEST_ID.sync_scope(local.clone(), || panicked(payload.as_ref()))
                })),
            }
        }
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        outcome.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    let mut caller = None;
    if let Outcome::Served(response) = &mut outcome {
        let (budget, name) = {
            let extensions = actix_web::HttpMessage::extensions(response.request());
            (
                extensions.get::<crate::auth::Budget>().copied(),
                extensions
                    .get::<crate::auth::CallerName>()
                    .map(|c| c.0.clone()),
            )
        };
        if let Some(budget) = budget {
            budget.write(response.headers_mut());
        }
        caller = name;
    }
    let status = outcome.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    let latency_ms = elapsed * 1000.0;
    record_request(method, &route, status, elapsed);
    let caller = caller.as_deref();
    if exported {
        span.record("caller", caller);
        span.record("http.response.status_code", i64::from(status));
        if status >= 500 {
            span.record("otel.status_code", "error");
        }
    }
    access_line(
        &span,
        &Access {
            status,
            latency_ms,
            caller,
            log_span: log_span.as_deref(),
        },
    );
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

/// The `method` label: the standard methods by name, any other as `other`,
/// so a client inventing methods cannot mint label values.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// The request metrics of one method on one route, on one worker thread:
/// registered on first use, so a request neither formats nor hashes label strings.
struct MethodMetrics {
    method: &'static str,
    duration: metrics::Histogram,
    by_status: Vec<(u16, metrics::Counter)>,
}

thread_local! {
    /// Route patterns are the configured routes and `unmatched`, methods
    /// and statuses are few: this stays as small as the label sets it holds.
    static REQUEST_METRICS: std::cell::RefCell<std::collections::HashMap<String, Vec<MethodMetrics>>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Counts one answered request and records how long it took.
fn record_request(method: &'static str, route: &str, status: u16, elapsed: f64) {
    REQUEST_METRICS.with_borrow_mut(|routes| match routes.get_mut(route) {
        Some(methods) => record_into(methods, method, route, status, elapsed),
        None => record_into(
            routes.entry(route.to_owned()).or_default(),
            method,
            route,
            status,
            elapsed,
        ),
    });
}

/// [`record_request`] on one route's handles, registering what is missing.
fn record_into(
    methods: &mut Vec<MethodMetrics>,
    method: &'static str,
    route: &str,
    status: u16,
    elapsed: f64,
) {
    let index = match methods.iter().position(|m| m.method == method) {
        Some(index) => index,
        None => {
            methods.push(MethodMetrics {
                method,
                duration: metrics::histogram!(
                    "gateway_http_request_duration_seconds",
                    "method" => method, "route" => route.to_owned()
                ),
                by_status: Vec::new(),
            });
            methods.len().saturating_sub(1)
        }
    };
    let Some(metrics) = methods.get_mut(index) else {
        return;
    };
    metrics.duration.record(elapsed);
    match metrics.by_status.iter().find(|(s, _)| *s == status) {
        Some((_, counter)) => counter.increment(1),
        None => {
            let counter = metrics::counter!(
                "gateway_http_requests_total",
                "method" => method, "route" => route.to_owned(), "status" => status.to_string()
            );
            counter.increment(1);
            metrics.by_status.push((status, counter));
        }
    }
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

thread_local! {
    /// Where the last panic on this thread happened, left by the panic hook
    /// for the request that catches it.
    static PANIC_LOCATION: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Routes panics through `tracing`: one inside a request is left to the
/// request's middleware to log (once, with the request id, as it answers the
/// 500); any other is logged here and then reported as before.
pub fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = info.location().map(ToString::to_string);
            if current_request_id().is_some() {
                PANIC_LOCATION.with(|slot| *slot.borrow_mut() = location);
            } else {
                tracing::error!(panic = panic_text(info.payload()), location, "panic");
                previous(info);
            }
        }));
    });
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic with a non-text payload")
}

/// The answer to a request whose handling panicked: logged once at error
/// level with the panic's message, counted, a 500 problem with the request id.
fn panicked(payload: &(dyn std::any::Any + Send)) -> HttpResponse {
    let location = PANIC_LOCATION.with(|slot| slot.borrow_mut().take());
    tracing::error!(
        panic = panic_text(payload),
        location,
        "request panicked; answered 500"
    );
    metrics::counter!("gateway_panics_total").increment(1);
    ApiError::internal("the request panicked")
        .to_problem()
        .respond()
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

/// Peers whose `X-Forwarded-For` is believed (`server.trusted_proxies`).
pub struct TrustedProxies(pub Vec<ipnet::IpNet>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy, in
    /// which case the right-most `X-Forwarded-For` entry that is not itself a
    /// trusted proxy (entries further left could be forged by the client).
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> Option<IpAddr> {
        let peer = peer?;
        if !self.trusts(peer) {
            return Some(peer);
        }
        let Some(chain) = forwarded_for else {
            return Some(peer);
        };
        let mut client = peer;
        for hop in chain.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        Some(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::log_json::test_support::Captured;

    /// A request as the tests log it.
    struct Request {
        client_ip: Option<IpAddr>,
        method: &'static str,
        path: &'static str,
        request_id: &'static str,
        trace: TraceContext,
    }

    impl Request {
        fn span(&self) -> tracing::Span {
            request_span(
                self.request_id,
                &self.trace,
                self.method,
                self.path,
                self.client_ip,
            )
        }

        fn log_span(&self) -> String {
            let mut object = String::new();
            write_log_span(
                &mut object,
                self.client_ip,
                self.method,
                self.path,
                self.request_id,
                &self.trace,
            )
            .unwrap();
            object
        }
    }

    /// What `run` logs through a JSON subscriber: as the gateway formats
    /// lines without a request span (`ours`), or as tracing-subscriber
    /// formats them with one.
    fn logged(ours: bool, run: impl FnOnce()) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let format = fmt::format()
            .json()
            .with_current_span(true)
            .with_span_list(false);
        if ours {
            let layer = fmt::layer()
                .event_format(RequestJson(format))
                .fmt_fields(crate::log_json::SpanFields)
                .with_writer(move || writer.clone());
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), run);
        } else {
            let layer = fmt::layer()
                .event_format(format)
                .fmt_fields(fmt::format::JsonFields::new())
                .with_writer(move || writer.clone());
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), run);
        }
        let bytes = captured.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    /// Each line with its timestamp's value blanked, after checking the
    /// timestamps have one length.
    fn without_timestamps(ours: &str, theirs: &str) -> (Vec<String>, Vec<String>) {
        let blank = |text: &str| -> Vec<(String, usize)> {
            text.lines()
                .map(|line| {
                    let value: serde_json::Value = serde_json::from_str(line).unwrap();
                    let timestamp = value["timestamp"].as_str().unwrap();
                    (line.replacen(timestamp, "T", 1), timestamp.len())
                })
                .collect()
        };
        let (ours, theirs) = (blank(ours), blank(theirs));
        let lengths = |lines: &[(String, usize)]| lines.iter().map(|l| l.1).collect::<Vec<_>>();
        assert_eq!(lengths(&ours), lengths(&theirs));
        (
            ours.into_iter().map(|l| l.0).collect(),
            theirs.into_iter().map(|l| l.0).collect(),
        )
    }

    fn requests() -> Vec<Request> {
        let trace =
            TraceContext::continued("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                .unwrap();
        vec![
            Request {
                client_ip: Some("127.0.0.1".parse().unwrap()),
                method: "GET",
                path: "/v1/services",
                request_id: "0ee1b171-7ddc-46df-b92c-0ce7c7c25c99",
                trace,
            },
            Request {
                client_ip: None,
                method: "BREW",
                path: "/v1/customers/%C3%A9/activate",
                request_id: "a.b:c_d",
                trace: TraceContext::started(),
            },
            Request {
                client_ip: Some("::1".parse().unwrap()),
                method: "PATCH",
                path: "/v1/account",
                request_id: "x",
                trace,
            },
        ]
    }

    #[test]
    fn the_access_line_is_written_as_the_json_subscriber_writes_it() {
        let answers = [
            (200, 0.467_819_999_999_999_96, Some("bench")),
            (404, 12.0, None),
            (502, 1e-7, Some("na\"me\\ \u{1F600}")),
        ];
        for (request, (status, latency_ms, caller)) in requests().iter().zip(answers) {
            let log_span = request.log_span();
            let access = Access {
                status,
                latency_ms,
                caller,
                log_span: Some(&log_span),
            };
            let mut ours = Vec::new();
            access.write_json(&mut ours, &log_span, status >= 500);
            let ours = String::from_utf8(ours).unwrap();
            // As the middleware logs it with a span: an event in the span.
            let theirs = logged(false, || {
                let event = Access {
                    log_span: None,
                    ..access
                };
                access_line(&request.span(), &event);
            });
            let (ours, theirs) = without_timestamps(&ours, &theirs);
            assert_eq!(ours, theirs);
            assert_eq!(ours.len(), 1);
        }
    }

    #[test]
    fn lines_inside_a_request_without_a_span_show_the_requests_span_object() {
        for request in requests() {
            let log = || {
                tracing::warn!(
                    error = "redis: no answer",
                    operation = "rate limit",
                    "redis call failed"
                );
                tracing::info!(count = 3_u64, flag = true, "counted");
            };
            let local = RequestLocal {
                id: request.request_id.into(),
                log_span: Some(request.log_span().into()),
            };
            let ours = logged(true, || REQUEST_ID.sync_scope(local, log));
            let theirs = logged(false, || request.span().in_scope(log));
            let (ours, theirs) = without_timestamps(&ours, &theirs);
            assert_eq!(ours, theirs);
            assert_eq!(ours.len(), 2);
        }
        // Outside a request, or inside a span, the line is the subscriber's own.
        let outside = || tracing::info!(port = 8080_u64, "listening");
        let (ours, theirs) = without_timestamps(&logged(true, outside), &logged(false, outside));
        assert_eq!(ours, theirs);
        assert!(!ours.first().unwrap().contains("\"span\""));
    }

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

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = TrustedProxies(vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // An untrusted peer's header is ignored.
        assert_eq!(
            proxies.client_ip(Some(ip("203.0.113.9")), Some("1.2.3.4")),
            Some(ip("203.0.113.9"))
        );
        // Through two trusted proxies, the first untrusted hop from the right is the client.
        assert_eq!(
            proxies.client_ip(
                Some(ip("127.0.0.1")),
                Some("6.6.6.6, 198.51.100.7, 10.1.2.3")
            ),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            proxies.client_ip(Some(ip("127.0.0.1")), None),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(
            proxies.client_ip(Some(ip("127.0.0.1")), Some("garbage")),
            Some(ip("127.0.0.1"))
        );
    }
}
