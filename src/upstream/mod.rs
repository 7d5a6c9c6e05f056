//! Clients of the two upstreams, and how their failures read to a caller.

pub mod breaker;
pub mod dna;
pub mod drift;
pub mod limit;
pub mod operation;
pub mod policy;
pub mod slitz;

use std::{fmt, time::Duration};

/// The two upstreams; defined with the configuration, which names them in
/// `[upstream.<name>]`.
pub use crate::configuration::Upstream;
use crate::{configuration::UpstreamSettings, normalize::NormalizeError};

/// What went wrong talking to an upstream. The `Display` text is for logs;
/// what callers see is written by `error.rs`, and carries no internals.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{upstream}: not found: {detail}")]
    NotFound { upstream: Upstream, detail: String },
    #[error("{upstream} rejected the gateway's credentials: {detail}")]
    CredentialsRejected { upstream: Upstream, detail: String },
    #[error("{upstream} answered HTTP {status}")]
    Status { upstream: Upstream, status: u16 },
    #[error("{upstream} refused the request: {message}")]
    Rejected { upstream: Upstream, message: String },
    #[error("{upstream} sent an answer the gateway cannot read: {detail}")]
    Malformed { upstream: Upstream, detail: String },
    /// The connection broke off after the request went out (reset, closed,
    /// cut mid-answer): for a write, its outcome is unknown.
    #[error("the connection to {upstream} broke off: {detail}")]
    Interrupted { upstream: Upstream, detail: String },
    #[error("{upstream} did not answer within {timeout_ms} ms")]
    Timeout { upstream: Upstream, timeout_ms: u64 },
    #[error("{upstream} is unreachable: {detail}")]
    Unreachable {
        upstream: Upstream,
        detail: String,
        /// The connection was refused: nothing at all was sent.
        refused: bool,
    },
    #[error("{upstream} asked to slow down (HTTP {status})")]
    Throttled {
        upstream: Upstream,
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("{upstream} is failing; its circuit breaker is open")]
    CircuitOpen {
        upstream: Upstream,
        /// The operation whose breaker is open; `None`: the whole upstream's.
        operation: Option<&'static str>,
        retry_after: Duration,
    },
    #[error("{upstream} has too many calls in flight")]
    Busy { upstream: Upstream },
}

impl UpstreamError {
    pub fn upstream(&self) -> Upstream {
        match self {
            Self::NotFound { upstream, .. }
            | Self::CredentialsRejected { upstream, .. }
            | Self::Status { upstream, .. }
            | Self::Rejected { upstream, .. }
            | Self::Malformed { upstream, .. }
            | Self::Interrupted { upstream, .. }
            | Self::Timeout { upstream, .. }
            | Self::Unreachable { upstream, .. }
            | Self::Throttled { upstream, .. }
            | Self::CircuitOpen { upstream, .. }
            | Self::Busy { upstream } => *upstream,
        }
    }

    pub fn malformed(upstream: Upstream, error: impl fmt::Display) -> Self {
        Self::Malformed {
            upstream,
            detail: error.to_string(),
        }
    }

    /// When the upstream said (or the gateway decided) it may be called again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => *retry_after,
            Self::CircuitOpen { retry_after, .. } => Some(*retry_after),
            Self::Busy { .. } => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// A fault of the upstream's health, worth a retry (for reads) and
    /// counted by the circuit breaker. A 404, a refusal or rejected
    /// credentials are answers, not faults; nor is an answer the gateway
    /// cannot parse: asking again gets the same answer.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Status { .. }
                | Self::Interrupted { .. }
                | Self::Timeout { .. }
                | Self::Unreachable { .. }
                | Self::Throttled { .. }
        )
    }

    /// A fault of the whole upstream rather than of one operation: no
    /// connection could be made (refused, unreachable, TLS, connect timeout).
    pub fn is_whole_upstream(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }

    /// Logs at a level fit for who must act: operators for credentials, the
    /// on-call for broken upstreams, nobody for a plain 404.
    pub fn log(&self) {
        match self {
            Self::NotFound { .. } => tracing::debug!(error = %self, "upstream: not found"),
            Self::CredentialsRejected { .. } => {
                tracing::error!(error = %self, "upstream credentials rejected: check the gateway configuration")
            }
            _ => tracing::warn!(error = %self, "upstream call failed"),
        }
    }

    fn from_reqwest(upstream: Upstream, timeout: Duration, e: &reqwest::Error) -> Self {
        // A connect timeout is both: no connection was made, which is the
        // whole upstream's fault, not the operation's.
        if e.is_connect() {
            Self::Unreachable {
                upstream,
                detail: error_chain(e),
                refused: is_refused(e),
            }
        } else if e.is_timeout() {
            Self::Timeout {
                upstream,
                timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
            }
        } else {
            // Sent, then the connection failed (reset, closed, cut mid-body).
            Self::Interrupted {
                upstream,
                detail: error_chain(e),
            }
        }
    }
}

impl From<(Upstream, NormalizeError)> for UpstreamError {
    fn from((upstream, e): (Upstream, NormalizeError)) -> Self {
        Self::malformed(upstream, e)
    }
}

/// Whether a connect error is a refusal (nothing listening): a request that
/// provably never left.
fn is_refused(e: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = cause.source();
    }
    false
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// How long an idle upstream connection is kept for reuse.
const POOL_IDLE: Duration = Duration::from_secs(4);

/// One HTTP client per upstream, so pools and timeouts are per upstream.
pub(crate) fn http_client(settings: &UpstreamSettings) -> anyhow::Result<reqwest::Client> {
    use anyhow::Context;
    reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
        .timeout(Duration::from_millis(settings.timeout_ms))
        // Below the 5 s keep-alive of common servers (Apache, the sandbox): a
        // connection the upstream is closing at that moment is never reused,
        // which would cut a write off with its outcome unknown.
        .pool_idle_timeout(POOL_IDLE)
        // Keep as many warm connections as calls may be in flight.
        .pool_max_idle_per_host(settings.max_concurrency)
        // A redirect from these APIs means a login page or a misconfigured
        // URL; following it would only hide the problem.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("gateway/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("Failed to build an HTTP client")
}

/// `Retry-After` in seconds (the HTTP-date form is rare from APIs; it is
/// treated as absent), capped at five minutes.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds.min(300)))
}

/// Sends one request the way every upstream call goes out (asking for JSON,
/// carrying the request id) and reads its answer by [`classify`].
pub(crate) async fn exchange(
    upstream: Upstream,
    timeout: Duration,
    request: reqwest::RequestBuilder,
) -> Result<Answer, UpstreamError> {
    // Without Accept, Laravel answers an expired token with a 500, not a 401.
    let mut request = request.header(reqwest::header::ACCEPT, "application/json");
    if let Some(trace) = crate::context::current_trace() {
        request = request.header(crate::context::TRACEPARENT_HEADER, trace.traceparent());
    }
    if let Some(id) = crate::context::current_request_id() {
        request = request.header(crate::context::REQUEST_ID_HEADER, id);
    }
    let response = request
        .send()
        .await
        .map_err(|e| UpstreamError::from_reqwest(upstream, timeout, &e))?;
    receive(upstream, timeout, response).await
}

/// Receives an answer and reads it by [`classify`]. The body of a 5xx or a
/// 429 is not read: nothing in it changes what it means.
async fn receive(
    upstream: Upstream,
    timeout: Duration,
    response: reqwest::Response,
) -> Result<Answer, UpstreamError> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = if status >= 500 || status == 429 {
        Vec::new()
    } else {
        read_body(upstream, timeout, response).await?
    };
    classify(upstream, status, &headers, body)
}

/// Upstream answers are read up to this size; anything larger is refused as malformed.
const MAX_UPSTREAM_BODY: usize = 8 * 1024 * 1024;

/// Reads a body, refusing one larger than [`MAX_UPSTREAM_BODY`].
async fn read_body(
    upstream: Upstream,
    timeout: Duration,
    mut response: reqwest::Response,
) -> Result<Vec<u8>, UpstreamError> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_UPSTREAM_BODY as u64)
    {
        return Err(UpstreamError::malformed(upstream, "body larger than 8 MiB"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| UpstreamError::from_reqwest(upstream, timeout, &e))?
    {
        if body.len().saturating_add(chunk.len()) > MAX_UPSTREAM_BODY {
            return Err(UpstreamError::malformed(upstream, "body larger than 8 MiB"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What an upstream's answer says, read by the same rules for both
/// upstreams: the status, the `Retry-After` header, and the error shapes
/// they send (HostBill's `{"error":[...]}`, even with status 200; Laravel's
/// `{"message", "errors":{field:[...]}}`; OAuth's `{"error","error_description"}`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// A success; its body.
    Success(Vec<u8>),
    /// 401, or HostBill's `wronglogin`: the credentials or token were not accepted.
    Unauthenticated(String),
    /// 403: authenticated, not allowed.
    Forbidden(String),
    /// 404.
    NotFound(String),
    /// 422 with field errors: the data was refused.
    Invalid {
        message: String,
        fields: Vec<(String, String)>,
    },
    /// An error body (with any status below 500) or another 4xx: refused, with why.
    Refused { status: u16, message: String },
}

/// Reads an upstream answer. The one failure table of the upstream side:
/// every status and error shape either upstream sends lands in one
/// [`Answer`], or, for faults of the upstream's health (429 and 503 asking
/// to slow down, other 5xx), in the error the breaker counts.
pub(crate) fn classify(
    upstream: Upstream,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: Vec<u8>,
) -> Result<Answer, UpstreamError> {
    if status == 429 || status == 503 {
        return Err(UpstreamError::Throttled {
            upstream,
            status,
            retry_after: retry_after(headers),
        });
    }
    if status >= 500 {
        return Err(UpstreamError::Status { upstream, status });
    }
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let error_messages = json.as_ref().and_then(error_messages);
    let message = || {
        error_messages
            .clone()
            .or_else(|| json.as_ref().and_then(laravel_message))
            .unwrap_or_else(|| format!("HTTP {status}"))
    };
    let wronglogin = error_messages
        .as_deref()
        .is_some_and(|m| m.split("; ").any(|m| m.eq_ignore_ascii_case("wronglogin")));
    Ok(match status {
        _ if wronglogin => Answer::Unauthenticated(message()),
        401 => Answer::Unauthenticated(message()),
        403 => Answer::Forbidden(message()),
        404 => Answer::NotFound(message()),
        422 => Answer::Invalid {
            message: message(),
            fields: json.as_ref().map(laravel_fields).unwrap_or_default(),
        },
        200..=299 if error_messages.is_none() => Answer::Success(body),
        _ => Answer::Refused {
            status,
            message: message(),
        },
    })
}

/// HostBill's `{"error": [...]}` (or a single string, as OAuth servers send
/// it, with its `error_description`), joined into one message.
fn error_messages(json: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    match json.get("error")? {
        Value::Array(items) => Some(items.iter().map(text).collect::<Vec<_>>().join("; ")),
        Value::Null => None,
        Value::String(error) => Some(
            match json.get("error_description").and_then(Value::as_str) {
                Some(description) if !description.is_empty() => format!("{error}: {description}"),
                _ => error.clone(),
            },
        ),
        other => Some(text(other)),
    }
}

fn laravel_message(json: &serde_json::Value) -> Option<String> {
    json.get("message")?.as_str().map(str::to_owned)
}

/// Laravel's `errors: {field: [message, ...]}`, one pair per message.
fn laravel_fields(json: &serde_json::Value) -> Vec<(String, String)> {
    let Some(fields) = json.get("errors").and_then(serde_json::Value::as_object) else {
        return Vec::new();
    };
    fields
        .iter()
        .flat_map(|(field, messages)| {
            messages
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_str)
                .map(move |m| (field.clone(), m.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    use super::*;

    fn read(status: u16, body: &str) -> Answer {
        classify(
            Upstream::Slitz,
            status,
            &HeaderMap::new(),
            body.as_bytes().to_vec(),
        )
        .unwrap()
    }

    fn fault(status: u16, headers: &HeaderMap) -> UpstreamError {
        classify(
            Upstream::Dna,
            status,
            headers,
            b"{\"error\":[\"x\"]}".to_vec(),
        )
        .unwrap_err()
    }

    #[test]
    fn both_upstreams_error_shapes_read_the_same_way() {
        assert_eq!(read(200, "{}"), Answer::Success(b"{}".to_vec()));
        assert_eq!(read(204, ""), Answer::Success(Vec::new()));
        // HostBill: an error body is an error whatever the status.
        assert!(matches!(
            read(200, r#"{"error":["wronglogin"]}"#),
            Answer::Unauthenticated(_)
        ));
        assert_eq!(
            read(200, r#"{"error":["Invalid invoice id"]}"#),
            Answer::Refused {
                status: 200,
                message: "Invalid invoice id".into()
            }
        );
        assert!(
            matches!(read(404, r#"{"error":["Invoice not found"]}"#), Answer::NotFound(m) if m == "Invoice not found")
        );
        // Laravel and Passport.
        assert!(
            matches!(read(401, r#"{"message":"Unauthenticated."}"#), Answer::Unauthenticated(m) if m == "Unauthenticated.")
        );
        match read(
            422,
            r#"{"message":"The given data was invalid.","errors":{"customer_id":["The customer id has already been taken."]}}"#,
        ) {
            Answer::Invalid { message, fields } => {
                assert_eq!(message, "The given data was invalid.");
                assert_eq!(
                    fields,
                    vec![(
                        "customer_id".into(),
                        "The customer id has already been taken.".into()
                    )]
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            read(
                400,
                r#"{"error":"invalid_grant","error_description":"The refresh token is invalid."}"#
            ),
            Answer::Refused {
                status: 400,
                message: "invalid_grant: The refresh token is invalid.".into()
            }
        );
        assert!(matches!(read(403, "<html>"), Answer::Forbidden(m) if m == "HTTP 403"));
        assert!(matches!(read(418, ""), Answer::Refused { status: 418, .. }));
        assert!(matches!(
            fault(500, &HeaderMap::new()),
            UpstreamError::Status { status: 500, .. }
        ));
        assert!(matches!(
            fault(502, &HeaderMap::new()),
            UpstreamError::Status { status: 502, .. }
        ));
    }

    #[test]
    fn throttling_is_throttling_on_every_route_with_its_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        for status in [429, 503] {
            match fault(status, &headers) {
                UpstreamError::Throttled {
                    status: s,
                    retry_after,
                    ..
                } => {
                    assert_eq!((s, retry_after), (status, Some(Duration::from_secs(7))));
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(matches!(
            fault(429, &HeaderMap::new()),
            UpstreamError::Throttled {
                retry_after: None,
                ..
            }
        ));
    }
}
