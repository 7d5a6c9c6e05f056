//! What the gateway tells its operators, by concern:
//!
//! - [`request`]: the request middleware: request id, trace context,
//!   deadline, body limit, and the one place a request's outcome is
//!   counted and logged;
//! - [`access_log`]: one line per request, a stream of its own;
//! - `json`: the diagnostic log's JSON lines (a tracing-subscriber
//!   `FormatEvent`), with the request context read from the task;
//! - `metrics`: the request metrics, by route and method;
//! - `panic`: a panic in a request becomes a logged, counted 500;
//! - `client`: the client's address behind trusted proxies;
//! - this module: installing the subscriber and swapping its filter.
//!
//! Every format is documented in `docs/operations.md`.

pub mod access_log;
mod client;
mod json;
mod metrics;
mod panic;
pub mod request;

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*, reload};

pub use client::TrustedProxies;
pub use panic::install_panic_hook;
pub use request::{BodyLimit, Deadline, REQUEST_ID_HEADER, request_context};

use crate::configuration::{LogFormat, LogSettings};
pub use crate::context::{RequestScope, current_request_id};

/// Whether the diagnostic log is JSON: the request middleware then makes
/// no `tracing` span per request (the JSON lines read the request from the
/// task), unless spans are exported.
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(crate) fn json_logs() -> bool {
    JSON.load(std::sync::atomic::Ordering::Relaxed)
}

/// Installs the global subscriber (JSON lines for machines, text for
/// people) and starts the access log. `RUST_LOG`, when set, wins over the
/// configured filter.
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
    // Diagnostic lines go to stdout from a thread of their own (the
    // crate's non-blocking writer), so a request never waits on the write;
    // not lossy: they are few, and each may matter. The thread writes what
    // is queued in one go and flushes whenever the queue is empty.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(8_192)
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        ));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let result = if json {
        registry
            .with(
                fmt::layer()
                    .event_format(json::JsonLines)
                    .with_writer(writer),
            )
            .try_init()
    } else {
        registry.with(fmt::layer().with_writer(writer)).try_init()
    };
    // A second init (tests, embedding) keeps the first subscriber.
    if result.is_ok() {
        JSON.store(json, std::sync::atomic::Ordering::Relaxed);
        *WRITER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(guard);
        let format = if json {
            access_log::Format::Json
        } else {
            access_log::Format::Text
        };
        access_log::start(format, settings.access);
    }
    if let Some(error) = otel_failed {
        tracing::error!(
            error,
            "traces are not exported (check OTEL_EXPORTER_OTLP_ENDPOINT)"
        );
    }
}

/// The diagnostic log writer's thread, kept until [`flush`].
static WRITER: std::sync::Mutex<Option<tracing_appender::non_blocking::WorkerGuard>> =
    std::sync::Mutex::new(None);

/// Writes out the lines still queued, access and diagnostic, and stops the
/// writers: the last thing before the process exits, so no line is lost.
pub fn flush() {
    access_log::close();
    let guard = WRITER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    drop(guard);
}

/// The installed subscriber's filter, to swap on a configuration reload.
static FILTER: std::sync::OnceLock<reload::Handle<EnvFilter, tracing_subscriber::Registry>> =
    std::sync::OnceLock::new();

/// Puts `log.filter` in place of the filter in use and switches the access
/// log to `log.access`. `RUST_LOG`, when set, keeps winning, as at start.
pub fn reload(settings: &LogSettings) -> Result<(), String> {
    access_log::switch(settings.access);
    if std::env::var_os("RUST_LOG").is_some() {
        return Err("RUST_LOG is set and wins over log.filter".into());
    }
    let filter = EnvFilter::try_new(&settings.filter).map_err(|e| format!("`log.filter`: {e}"))?;
    match FILTER.get() {
        Some(handle) => handle.reload(filter).map_err(|e| e.to_string()),
        None => Err("no log subscriber installed".into()),
    }
}

/// Now, as both logs write it: RFC 3339, UTC, microseconds.
fn timestamp() -> Timestamp {
    Timestamp(std::time::SystemTime::now())
}

/// An instant written as `2026-12-02T08:00:00.123456Z`. The part down to
/// the second is formatted once a second per thread, not once a line.
struct Timestamp(std::time::SystemTime);

thread_local! {
    /// The last second formatted on this thread, and its text.
    static SECOND: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let since = self
            .0
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let (secs, micros) = (since.as_secs(), since.subsec_micros());
        SECOND.with_borrow_mut(|(second, text)| {
            if *second != secs {
                *second = secs;
                *text = i64::try_from(secs)
                    .ok()
                    .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
                    .unwrap_or_default();
            }
            write!(f, "{text}.{micros:06}Z")
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn timestamps_read_as_rfc_3339_with_microseconds() {
        for micros in [0, 1, 999_999, 1_764_662_400_123_456, 1_764_662_401_000_001] {
            let at = UNIX_EPOCH + Duration::from_micros(micros);
            let expected = chrono::DateTime::<chrono::Utc>::from(at)
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            assert_eq!(Timestamp(at).to_string(), expected);
        }
    }
}
