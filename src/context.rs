//! What a task knows of the request it serves: its id, its W3C trace
//! context and its deadline, carried in task-locals so every log line,
//! upstream call and problem body of the request can read them. A leaf: it
//! depends on no other module.

use std::{sync::Arc, time::Instant};

/// The header that carries a request's id, to the gateway and from it upstream.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The W3C Trace Context header, to the gateway and from it upstream.
pub const TRACEPARENT_HEADER: &str = "traceparent";

tokio::task_local! {
    pub(crate) static REQUEST_ID: Arc<str>;
    pub(crate) static DEADLINE: Instant;
    pub(crate) static TRACE: TraceContext;
}

/// Where a request stands in a distributed trace (W3C Trace Context): the
/// caller's trace, or one started here, and the gateway's own span in it,
/// which is the parent of the upstream calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: u128,
    span_id: u64,
    /// The caller's span, when the trace was continued.
    parent_id: Option<u64>,
    sampled: bool,
}

impl TraceContext {
    /// Continues the caller's trace from a `traceparent` value, with a new
    /// span of the gateway's; `None` when the value is not a valid one
    /// (then a new trace is started, as the specification says).
    pub fn continued(traceparent: &str) -> Option<Self> {
        let value = traceparent.trim_matches([' ', '\t']);
        let mut parts = value.split('-');
        let version = parts.next().filter(|v| is_lower_hex(v, 2) && *v != "ff")?;
        let trace = parts.next().filter(|t| is_lower_hex(t, 32))?;
        let parent = parts.next().filter(|p| is_lower_hex(p, 16))?;
        let flags = parts.next().filter(|f| is_lower_hex(f, 2))?;
        // Version 00 has exactly four fields; later versions may add more.
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok().filter(|t| *t != 0)?;
        let parent_id = u64::from_str_radix(parent, 16).ok().filter(|p| *p != 0)?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id,
            span_id: nonzero_random(),
            parent_id: Some(parent_id),
            sampled: flags & 1 == 1,
        })
    }

    /// A new trace, for a request that came without one.
    pub fn started() -> Self {
        Self {
            trace_id: loop {
                let id = rand::random::<u128>();
                if id != 0 {
                    break id;
                }
            },
            span_id: nonzero_random(),
            parent_id: None,
            sampled: false,
        }
    }

    /// The same place in the trace with the ids and sampling decision an
    /// exporter gave the gateway's span (zero ids are refused).
    pub fn with_ids(self, trace_id: u128, span_id: u64, sampled: bool) -> Self {
        if trace_id == 0 || span_id == 0 {
            return self;
        }
        Self {
            trace_id,
            span_id,
            parent_id: self.parent_id,
            sampled,
        }
    }

    /// The trace id, the caller's span id (when continued) and whether the
    /// caller sampled it: the remote parent of the gateway's span.
    pub fn remote_parent(&self) -> Option<(u128, u64, bool)> {
        self.parent_id.map(|p| (self.trace_id, p, self.sampled))
    }

    /// The trace id, 32 lowercase hex digits, as logged.
    pub fn trace_id(&self) -> String {
        self.trace_id_hex().to_string()
    }

    /// The gateway's span id, 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        self.span_id_hex().to_string()
    }

    /// [`TraceContext::trace_id`] written where it is displayed, with no String between.
    pub fn trace_id_hex(&self) -> impl std::fmt::Display + Copy {
        Hex(self.trace_id, 32)
    }

    /// [`TraceContext::span_id`] written where it is displayed, with no String between.
    pub fn span_id_hex(&self) -> impl std::fmt::Display + Copy {
        Hex(u128::from(self.span_id), 16)
    }

    /// The `traceparent` to send upstream: the same trace, the gateway's
    /// span as parent, the caller's sampling decision.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn nonzero_random() -> u64 {
    loop {
        let id = rand::random::<u64>();
        if id != 0 {
            return id;
        }
    }
}

/// A number as this many lowercase hex digits, zero-padded.
#[derive(Clone, Copy)]
struct Hex(u128, usize);

impl std::fmt::Display for Hex {
    /// The low `self.1` digits (16 or 32), encoded by `hex`, not by the
    /// formatter's padding machinery: every access line writes two.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.0.to_be_bytes();
        let wanted = (self.1 / 2).min(bytes.len());
        let mut digits = [0u8; 32];
        let from = bytes.len().saturating_sub(wanted);
        if let (Some(bytes), Some(digits)) = (
            bytes.get(from..),
            digits.get_mut(..wanted.saturating_mul(2)),
        ) && hex::encode_to_slice(bytes, digits).is_ok()
        {
            return f.write_str(std::str::from_utf8(digits).unwrap_or_default());
        }
        write!(f, "{:0width$x}", self.0, width = self.1)
    }
}

/// The trace context of the request being served on this task, if any.
pub fn current_trace() -> Option<TraceContext> {
    TRACE.try_with(|t| *t).ok()
}

/// The id of the request being served on this task, if any.
pub fn current_request_id() -> Option<String> {
    with_request_id(str::to_owned)
}

/// `f` of the id of the request being served on this task, if any, without
/// copying it.
pub fn with_request_id<T>(f: impl FnOnce(&str) -> T) -> Option<T> {
    REQUEST_ID.try_with(|id| f(id)).ok()
}

/// What is left of the request's time budget (`upstream.deadline_ms`), if
/// this task serves a request. Upstream calls never run past it.
pub fn remaining_budget() -> Option<std::time::Duration> {
    DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(Instant::now()))
        .ok()
}

/// The request context of this task, to carry onto another task.
#[derive(Debug, Clone)]
pub struct RequestScope {
    id: Option<Arc<str>>,
    deadline: Option<Instant>,
    trace: Option<TraceContext>,
}

impl RequestScope {
    pub fn current() -> Self {
        Self {
            id: REQUEST_ID.try_with(Clone::clone).ok(),
            deadline: DEADLINE.try_with(|d| *d).ok(),
            trace: current_trace(),
        }
    }

    /// Runs `future` as part of this request: its id, its trace, its deadline.
    pub async fn run<T>(self, future: impl Future<Output = T>) -> T {
        let future = async move {
            match self.trace {
                Some(trace) => TRACE.scope(trace, future).await,
                None => future.await,
            }
        };
        match (self.id, self.deadline) {
            (Some(id), Some(deadline)) => {
                REQUEST_ID.scope(id, DEADLINE.scope(deadline, future)).await
            }
            (Some(id), None) => REQUEST_ID.scope(id, future).await,
            (None, Some(deadline)) => DEADLINE.scope(deadline, future).await,
            (None, None) => future.await,
        }
    }
}

/// Set once the gateway is shutting down: `/readyz` then answers 503.
#[derive(Debug, Clone, Default)]
pub struct Draining(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Draining {
    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let trace = TraceContext::continued(EXAMPLE).unwrap();
        assert_eq!(trace.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(trace.span_id(), "00f067aa0ba902b7");
        let sent = trace.traceparent();
        assert!(
            sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{sent}"
        );
        assert!(sent.ends_with("-01"), "{sent}");
        let again = TraceContext::continued(&sent).unwrap();
        assert_eq!(again.trace_id(), trace.trace_id());
    }

    #[test]
    fn invalid_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::continued(bad), None, "{bad}");
        }
        // A later version may carry more fields.
        assert!(TraceContext::continued(&format!("01{}-more", &EXAMPLE[2..])).is_some());
    }

    proptest! {
        /// Ids are written as the formatter would pad them, zeros included.
        #[test]
        fn ids_are_written_as_zero_padded_lowercase_hex(id: u128, shift in 0u32..128) {
            let id = id >> shift;
            prop_assert_eq!(Hex(id, 32).to_string(), format!("{id:032x}"));
            let span = id as u64;
            prop_assert_eq!(Hex(u128::from(span), 16).to_string(), format!("{span:016x}"));
        }

        /// Any text at all: no panic, and what is accepted is a trace the
        /// gateway sends on in canonical form.
        #[test]
        fn any_text_is_parsed_or_refused_without_a_panic(text in "\\PC{0,80}|[0-9a-f-]{50,60}") {
            if let Some(trace) = TraceContext::continued(&text) {
                let sent = trace.traceparent();
                prop_assert_eq!(sent.len(), 55);
                prop_assert!(TraceContext::continued(&sent).is_some());
                prop_assert!(text.contains(&trace.trace_id()));
            }
        }
    }
}
