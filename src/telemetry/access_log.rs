//! The access log: one line per answered request, a stream of its own beside
//! the diagnostic log (as nginx's `access_log` is beside its `error_log`),
//! in a format the gateway owns and documents (`docs/operations.md`).
//!
//! A request formats its line on its own thread and appends it to a shared
//! buffer; one writer thread takes everything queued and writes it to stdout
//! in one call. Requests never wait on stdout and wake the writer only when
//! it sleeps on an empty queue; woken, it lets lines gather for [`GATHER`]
//! before it writes, so a busy gateway makes a few hundred writes and
//! wake-ups a second, not one per request. The queue is bounded ([`QUEUE_LIMIT`]): when stdout
//! cannot keep up, lines past it are dropped and counted in
//! `gateway_access_log_dropped_total` rather than growing memory or stalling
//! requests. [`close`] writes out what is queued, for shutdown.

use std::{
    cell::RefCell,
    io::Write as _,
    net::IpAddr,
    sync::{
        Condvar, Mutex, MutexGuard, OnceLock, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
};

use crate::context::TraceContext;

/// How many bytes of lines may wait for stdout before lines are dropped:
/// about 16,000 lines, a second of a busy gateway's traffic.
pub const QUEUE_LIMIT: usize = 4 * 1024 * 1024;

/// How long the writer lets lines gather once the first one arrives: a
/// busy gateway then wakes it and writes at most this often, whatever its
/// rate; an idle one has each line out within this.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// One answered request.
pub(crate) struct Entry<'a> {
    pub request_id: &'a str,
    pub trace: &'a TraceContext,
    pub method: &'a str,
    pub path: &'a str,
    /// The route's template (`/v1/billing/invoices/{id}`), or `unmatched`.
    pub route: &'a str,
    pub status: u16,
    pub latency_ms: f64,
    /// The API key's configured name, for keyed requests.
    pub caller: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
}

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Text,
}

struct Queue {
    lines: Vec<u8>,
    /// The writer is asleep on an empty queue: the next line wakes it.
    sleeping: bool,
    closed: bool,
}

struct Sink {
    format: Format,
    /// Lines dropped so far, for `gateway_access_log_dropped_total`.
    dropped: AtomicU64,
    on: AtomicBool,
    queue: Mutex<Queue>,
    wake: Condvar,
    writer: Mutex<Option<JoinHandle<()>>>,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Starts the access log (once per process; later calls only switch it).
pub(crate) fn start(format: Format, on: bool) {
    let mut started = false;
    let sink = SINK.get_or_init(|| {
        started = true;
        Sink {
            format,
            dropped: AtomicU64::new(0),
            on: AtomicBool::new(on),
            queue: Mutex::new(Queue {
                lines: Vec::with_capacity(64 * 1024),
                sleeping: false,
                closed: false,
            }),
            wake: Condvar::new(),
            writer: Mutex::new(None),
        }
    });
    sink.on.store(on, Ordering::Relaxed);
    if started {
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(|| write_out(std::io::stdout()));
        match thread {
            Ok(handle) => *lock(&sink.writer) = Some(handle),
            Err(error) => {
                tracing::error!(error = %error, "no access log: its writer thread did not start");
                sink.on.store(false, Ordering::Relaxed);
            }
        }
    }
}

/// Lines dropped because stdout could not keep up, once the access log
/// has started (read at scrape time).
pub fn dropped() -> Option<u64> {
    SINK.get().map(|sink| sink.dropped.load(Ordering::Relaxed))
}

/// `log.access`: switches the access log on or off (a configuration reload).
pub(crate) fn switch(on: bool) {
    if let Some(sink) = SINK.get() {
        sink.on.store(on, Ordering::Relaxed);
    }
}

thread_local! {
    /// Each worker formats its lines here, outside the queue's lock.
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
}

/// Logs one answered request, if the access log is on.
pub(crate) fn record(entry: &Entry<'_>) {
    let Some(sink) = SINK.get() else {
        return;
    };
    if !sink.on.load(Ordering::Relaxed) {
        return;
    }
    LINE.with_borrow_mut(|line| {
        line.clear();
        match sink.format {
            Format::Json => write_json(line, entry),
            Format::Text => write_text(line, entry),
        }
        enqueue(sink, line);
    });
}

fn enqueue(sink: &Sink, line: &[u8]) {
    let mut queue = lock(&sink.queue);
    if queue.closed || queue.lines.len().saturating_add(line.len()) > QUEUE_LIMIT {
        drop(queue);
        sink.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    queue.lines.extend_from_slice(line);
    if std::mem::take(&mut queue.sleeping) {
        drop(queue);
        sink.wake.notify_one();
    }
}

/// The writer thread: takes whatever is queued, writes it in one call,
/// sleeps while the queue is empty; ends once closed and drained.
fn write_out(mut out: impl std::io::Write) {
    let Some(sink) = SINK.get() else {
        return;
    };
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        let closing = {
            let mut queue = lock(&sink.queue);
            while queue.lines.is_empty() && !queue.closed {
                queue.sleeping = true;
                queue = sink
                    .wake
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            queue.closed
        };
        if !closing {
            std::thread::sleep(GATHER);
        }
        let closed = {
            let mut queue = lock(&sink.queue);
            std::mem::swap(&mut batch, &mut queue.lines);
            queue.closed
        };
        // A failed write (stdout closed) loses this batch, not the next.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if closed && lock(&sink.queue).lines.is_empty() {
            return;
        }
    }
}

/// Writes out every queued line and stops the writer: at shutdown, so no
/// line is lost. Lines recorded after this are dropped (and counted).
pub(crate) fn close() {
    let Some(sink) = SINK.get() else {
        return;
    };
    lock(&sink.queue).closed = true;
    sink.wake.notify_one();
    if let Some(writer) = lock(&sink.writer).take() {
        let _ = writer.join();
    }
}

/// The JSON line:
/// `{"timestamp","log":"access","request_id","trace_id","span_id","method",
/// "path","route","status","latency_ms"[,"caller"][,"client_ip"]}`.
fn write_json(out: &mut Vec<u8>, entry: &Entry<'_>) {
    let _ = write!(
        out,
        "{{\"timestamp\":\"{}\",\"log\":\"access\",\"request_id\":",
        super::timestamp()
    );
    json_str(out, entry.request_id);
    let _ = write!(
        out,
        ",\"trace_id\":\"{}\",\"span_id\":\"{}\",\"method\":",
        entry.trace.trace_id_hex(),
        entry.trace.span_id_hex()
    );
    json_str(out, entry.method);
    out.extend_from_slice(b",\"path\":");
    json_str(out, entry.path);
    out.extend_from_slice(b",\"route\":");
    json_str(out, entry.route);
    let _ = write!(out, ",\"status\":{},\"latency_ms\":", entry.status);
    let _ = serde_json::to_writer(&mut *out, &entry.latency_ms);
    if let Some(caller) = entry.caller {
        out.extend_from_slice(b",\"caller\":");
        json_str(out, caller);
    }
    if let Some(ip) = entry.client_ip {
        let _ = write!(out, ",\"client_ip\":\"{ip}\"");
    }
    out.extend_from_slice(b"}\n");
}

/// The text line, for people at a terminal:
/// `<timestamp> access <method> <path> <status> <latency>ms request_id=… [caller=…] [client_ip=…]`.
fn write_text(out: &mut Vec<u8>, entry: &Entry<'_>) {
    let _ = write!(
        out,
        "{} access {} {} {} {:.3}ms request_id={}",
        super::timestamp(),
        entry.method,
        entry.path.escape_debug(),
        entry.status,
        entry.latency_ms,
        entry.request_id
    );
    if let Some(caller) = entry.caller {
        let _ = write!(out, " caller={}", caller.escape_debug());
    }
    if let Some(ip) = entry.client_ip {
        let _ = write!(out, " client_ip={ip}");
    }
    out.push(b'\n');
}

fn json_str(out: &mut Vec<u8>, value: &str) {
    let _ = serde_json::to_writer(&mut *out, value);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entry<'a>(trace: &'a TraceContext, path: &'a str, caller: Option<&'a str>) -> Entry<'a> {
        Entry {
            request_id: "0ee1b171-7ddc-46df-b92c-0ce7c7c25c99",
            trace,
            method: "GET",
            path,
            route: "/v1/services/{id}",
            status: 200,
            latency_ms: 1.25,
            caller,
            client_ip: Some("203.0.113.7".parse().unwrap()),
        }
    }

    #[test]
    fn the_json_line_carries_every_documented_field() {
        let trace = TraceContext::started();
        let mut line = Vec::new();
        write_json(&mut line, &entry(&trace, "/v1/services/7", Some("web")));
        assert_eq!(line.last(), Some(&b'\n'));
        let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
        let expected = serde_json::json!({
            "timestamp": value["timestamp"],
            "log": "access",
            "request_id": "0ee1b171-7ddc-46df-b92c-0ce7c7c25c99",
            "trace_id": trace.trace_id_hex().to_string(),
            "span_id": trace.span_id_hex().to_string(),
            "method": "GET",
            "path": "/v1/services/7",
            "route": "/v1/services/{id}",
            "status": 200,
            "latency_ms": 1.25,
            "caller": "web",
            "client_ip": "203.0.113.7",
        });
        assert_eq!(value, expected);
        assert!(value["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn the_text_line_is_one_line() {
        let trace = TraceContext::started();
        let mut line = Vec::new();
        write_text(&mut line, &entry(&trace, "/v1/a\nb", None));
        let text = String::from_utf8(line).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains(" access GET /v1/a\\nb 200 1.250ms request_id="),
            "{text}"
        );
    }

    proptest! {
        #[test]
        fn any_path_and_caller_make_one_valid_json_line(path in any::<String>(), caller in any::<String>()) {
            let trace = TraceContext::started();
            let mut line = Vec::new();
            write_json(&mut line, &entry(&trace, &path, Some(&caller)));
            prop_assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
            let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
            prop_assert_eq!(value["path"].as_str(), Some(path.as_str()));
            prop_assert_eq!(value["caller"].as_str(), Some(caller.as_str()));
        }
    }
}
