//! Clients of the two upstreams, and how their failures read to a caller.

pub mod dna;
pub mod policy;
pub mod slitz;

use std::{fmt, time::Duration};

use actix_web::http::StatusCode;

use crate::{configuration::UpstreamSettings, normalize::NormalizeError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    Dna,
    Slitz,
}

impl Upstream {
    pub fn as_str(self) -> &'static str {
        match self {
            Upstream::Dna => "dna",
            Upstream::Slitz => "slitz",
        }
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong talking to an upstream. The `Display` text is for logs;
/// callers see [`UpstreamError::public_detail`], which carries no internals.
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

    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::CredentialsRejected { .. }
            | Self::Status { .. }
            | Self::Rejected { .. }
            | Self::Malformed { .. } => StatusCode::BAD_GATEWAY,
            Self::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Unreachable { .. }
            | Self::Throttled { .. }
            | Self::CircuitOpen { .. }
            | Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub(crate) fn code_and_title(&self) -> (&'static str, &'static str) {
        match self {
            Self::NotFound { .. } => ("not-found", "Not found"),
            Self::CredentialsRejected { .. } => (
                "upstream-credentials-rejected",
                "The upstream rejected the gateway's credentials",
            ),
            Self::Status { .. } => ("upstream-error", "The upstream failed"),
            Self::Rejected { .. } => ("upstream-rejected", "The upstream refused the request"),
            Self::Malformed { .. } => (
                "upstream-malformed",
                "The upstream sent an unreadable answer",
            ),
            Self::Timeout { .. } => ("upstream-timeout", "The upstream did not answer in time"),
            Self::Unreachable { .. } => ("upstream-unavailable", "The upstream is unavailable"),
            Self::Throttled { .. } => ("upstream-throttled", "The upstream asked to slow down"),
            Self::CircuitOpen { .. } => (
                "upstream-circuit-open",
                "The upstream is failing; calls are paused",
            ),
            Self::Busy { .. } => (
                "upstream-busy",
                "Too many calls to the upstream are in flight",
            ),
        }
    }

    /// A detail fit for a caller: what happened, never URLs, tokens or bodies.
    pub fn public_detail(&self) -> String {
        let upstream = self.upstream();
        match self {
            Self::NotFound { detail, .. } => detail.clone(),
            Self::CredentialsRejected { .. } => format!(
                "{upstream} rejected the credentials the gateway is configured with; operators have been alerted in the logs"
            ),
            Self::Status { status, .. } => format!("{upstream} answered HTTP {status}"),
            Self::Rejected { message, .. } => format!("{upstream} refused the request: {message}"),
            Self::Malformed { .. } => {
                format!("{upstream} sent an answer the gateway could not read")
            }
            Self::Timeout { timeout_ms, .. } => {
                format!("{upstream} did not answer within {timeout_ms} ms")
            }
            Self::Unreachable { .. } => format!("{upstream} could not be reached"),
            Self::Throttled { status, .. } => {
                format!("{upstream} answered HTTP {status} and asked to retry later")
            }
            Self::CircuitOpen { retry_after, .. } => format!(
                "{upstream} failed repeatedly; calls are paused for up to {} s",
                retry_after.as_secs().max(1)
            ),
            Self::Busy { .. } => format!("{upstream} has too many calls in flight; retry shortly"),
        }
    }

    /// When the caller may try again, for `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after, .. } => *retry_after,
            Self::CircuitOpen { retry_after, .. } => Some(*retry_after),
            Self::Busy { .. } => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// A fault of the upstream's health, worth a retry (for reads) and
    /// counted by the circuit breaker; a 404, a refusal or rejected
    /// credentials are answers, not faults.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Status { .. }
                | Self::Malformed { .. }
                | Self::Timeout { .. }
                | Self::Unreachable { .. }
                | Self::Throttled { .. }
        )
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
        if e.is_timeout() {
            Self::Timeout {
                upstream,
                timeout_ms: timeout.as_millis().try_into().unwrap_or(u64::MAX),
            }
        } else if e.is_connect() {
            Self::Unreachable {
                upstream,
                detail: error_chain(e),
                refused: is_refused(e),
            }
        } else {
            Self::Malformed {
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

/// One HTTP client per upstream, so pools and timeouts are per upstream.
pub(crate) fn http_client(settings: &UpstreamSettings) -> anyhow::Result<reqwest::Client> {
    use anyhow::Context;
    reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
        .timeout(Duration::from_millis(settings.timeout_ms))
        .pool_idle_timeout(Duration::from_secs(60))
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
