//! Every answer that is not a success is `application/problem+json` (RFC 9457)
//! with the request id, so a frontend can handle all failures one way.

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    error::{JsonPayloadError, PathError},
    http::{Method, StatusCode, header},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{configuration::Scope, context::current_request_id, upstream::UpstreamError};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem: how every error of the gateway is answered.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:gateway:problem:validation",
    "title": "The request is not valid",
    "status": 400,
    "detail": "`id` must be a positive integer",
    "request_id": "9f0c2a4e-6d1b-4a53-8f0e-2b7c1d3e4f56",
    "errors": [{"parameter": "id", "detail": "must be a positive integer", "field": "id", "message": "must be a positive integer"}]
}))]
pub struct Problem {
    /// A URI naming the kind of problem; stable, for code to switch on.
    #[serde(rename = "type")]
    pub problem_type: ProblemType,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request's `X-Request-Id`, to quote when reporting a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The upstream at fault (`dna` or `slitz`), for upstream failures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Field-level errors of a request that failed validation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Members particular to one kind of problem (RFC 9457 extensions), such
    /// as the `checks` of `/readyz`.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(ignore)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    /// Adds an extension member; a value that cannot be serialized is left out.
    pub fn with(mut self, member: &str, value: impl Serialize) -> Self {
        if let Ok(value) = serde_json::to_value(value) {
            self.extensions.insert(member.to_owned(), value);
        }
        self
    }

    /// Answers with this problem: its status, `application/problem+json`.
    pub fn respond(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        HttpResponse::build(status)
            .insert_header((header::CONTENT_TYPE, PROBLEM_JSON))
            .json(self)
    }
}

/// Every kind of problem the gateway answers, as the `type` of a problem.
/// Stable: code may switch on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ProblemType {
    /// A parameter or body field is not valid (400 or 422); `errors` names it.
    #[serde(rename = "urn:gateway:problem:validation")]
    Validation,
    /// No valid API key (401).
    #[serde(rename = "urn:gateway:problem:unauthenticated")]
    Unauthenticated,
    /// The API key lacks the route's scope (403).
    #[serde(rename = "urn:gateway:problem:forbidden")]
    Forbidden,
    /// No such route, or the upstream has no such record (404).
    #[serde(rename = "urn:gateway:problem:not-found")]
    NotFound,
    /// A request with this Idempotency-Key is still being processed (409).
    #[serde(rename = "urn:gateway:problem:idempotency-key-in-use")]
    IdempotencyKeyInUse,
    /// The upstream already has it (409).
    #[serde(rename = "urn:gateway:problem:duplicate")]
    Duplicate,
    /// The API key is over its rate (429).
    #[serde(rename = "urn:gateway:problem:rate-limited")]
    RateLimited,
    /// The route does not answer this method (405).
    #[serde(rename = "urn:gateway:problem:method-not-allowed")]
    MethodNotAllowed,
    /// The body is over `server.max_body_bytes` (413).
    #[serde(rename = "urn:gateway:problem:payload-too-large")]
    PayloadTooLarge,
    /// The body is not JSON (415).
    #[serde(rename = "urn:gateway:problem:unsupported-media-type")]
    UnsupportedMediaType,
    /// The gateway cannot serve yet, or no source of an answer could (503).
    #[serde(rename = "urn:gateway:problem:not-ready")]
    NotReady,
    /// State the gateway keeps or shares cannot be used, and the request
    /// must not go on without it (503): Redis for a create with an
    /// Idempotency-Key; the registry's database for any DNA write (its
    /// intent could not be recorded, so nothing was sent) or registry read.
    #[serde(rename = "urn:gateway:problem:shared-state-unavailable")]
    SharedStateUnavailable,
    /// A fault of the gateway itself (500); the detail is in its logs.
    #[serde(rename = "urn:gateway:problem:internal")]
    Internal,
    /// The upstream rejected the gateway's own credentials (502).
    #[serde(rename = "urn:gateway:problem:upstream-credentials-rejected")]
    UpstreamCredentialsRejected,
    /// The upstream answered with a server error (502).
    #[serde(rename = "urn:gateway:problem:upstream-error")]
    UpstreamError,
    /// The upstream refused the request (502, or 422 for a write it refused).
    #[serde(rename = "urn:gateway:problem:upstream-rejected")]
    UpstreamRejected,
    /// The upstream's answer could not be read (502).
    #[serde(rename = "urn:gateway:problem:upstream-malformed")]
    UpstreamMalformed,
    /// The connection to the upstream broke off mid-call (502).
    #[serde(rename = "urn:gateway:problem:upstream-interrupted")]
    UpstreamInterrupted,
    /// The upstream did not answer in time (504).
    #[serde(rename = "urn:gateway:problem:upstream-timeout")]
    UpstreamTimeout,
    /// The upstream cannot be reached (503).
    #[serde(rename = "urn:gateway:problem:upstream-unavailable")]
    UpstreamUnavailable,
    /// The upstream asked to slow down (503).
    #[serde(rename = "urn:gateway:problem:upstream-throttled")]
    UpstreamThrottled,
    /// The upstream failed repeatedly; calls are paused (503).
    #[serde(rename = "urn:gateway:problem:upstream-circuit-open")]
    UpstreamCircuitOpen,
    /// Too many calls to the upstream are in flight (503).
    #[serde(rename = "urn:gateway:problem:upstream-busy")]
    UpstreamBusy,
}

impl ProblemType {
    pub const ALL: [ProblemType; 23] = [
        Self::Validation,
        Self::Unauthenticated,
        Self::Forbidden,
        Self::NotFound,
        Self::IdempotencyKeyInUse,
        Self::Duplicate,
        Self::RateLimited,
        Self::MethodNotAllowed,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::NotReady,
        Self::SharedStateUnavailable,
        Self::Internal,
        Self::UpstreamCredentialsRejected,
        Self::UpstreamError,
        Self::UpstreamRejected,
        Self::UpstreamMalformed,
        Self::UpstreamInterrupted,
        Self::UpstreamTimeout,
        Self::UpstreamUnavailable,
        Self::UpstreamThrottled,
        Self::UpstreamCircuitOpen,
        Self::UpstreamBusy,
    ];

    /// A short summary of the kind of problem: the problem's `title`.
    pub fn title(self) -> &'static str {
        match self {
            Self::Validation => "The request is not valid",
            Self::Unauthenticated => "A valid API key is required",
            Self::Forbidden => "The API key lacks a required scope",
            Self::NotFound => "Not found",
            Self::IdempotencyKeyInUse => "A request with this key is in flight",
            Self::Duplicate => "It already exists",
            Self::RateLimited => "Too many requests",
            Self::MethodNotAllowed => "Method not allowed",
            Self::PayloadTooLarge => "The request body is too large",
            Self::UnsupportedMediaType => "Unsupported media type",
            Self::NotReady => "The gateway cannot serve yet",
            Self::SharedStateUnavailable => "The state instances share is unavailable",
            Self::Internal => "Internal error",
            Self::UpstreamCredentialsRejected => "The upstream rejected the gateway's credentials",
            Self::UpstreamError => "The upstream failed",
            Self::UpstreamRejected => "The upstream refused the request",
            Self::UpstreamMalformed => "The upstream sent an unreadable answer",
            Self::UpstreamInterrupted => "The connection to the upstream broke off",
            Self::UpstreamTimeout => "The upstream did not answer in time",
            Self::UpstreamUnavailable => "The upstream is unavailable",
            Self::UpstreamThrottled => "The upstream asked to slow down",
            Self::UpstreamCircuitOpen => "The upstream is failing; calls are paused",
            Self::UpstreamBusy => "Too many calls to the upstream are in flight",
        }
    }

    /// The URI of the type, as in a problem's `type`.
    pub fn uri(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// One field of the request and what is wrong with it (RFC 9457 §3's
/// `errors` style): a body member by its JSON `pointer`, a query, path or
/// header parameter by its name in `parameter`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"pointer": "#/email", "detail": "must be an email address such as steve@example.com", "field": "email", "message": "must be an email address such as steve@example.com"}))]
pub struct FieldError {
    /// The body member at fault as a JSON Pointer (RFC 6901) in URI
    /// fragment form: `#/email`, `#/billing/zipcode`; `#` is the body as a
    /// whole. Absent for parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
    /// The query, path or header parameter at fault (`page`,
    /// `Idempotency-Key`). Absent for body members.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// What is wrong with it, fit to show beside the form field.
    pub detail: String,
    /// The field or parameter by its gateway name (`billing.zipcode` for a
    /// nested member, `body` for the whole body). Kept for clients written
    /// before `pointer`.
    pub field: String,
    /// The same text as `detail`, kept for clients written before it.
    pub message: String,
}

impl FieldError {
    /// A member of the body, by its dotted path (`email`, `billing.zipcode`);
    /// `body` is the body as a whole.
    pub fn body(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let pointer = if field == "body" {
            "#".to_owned()
        } else {
            field
                .split('.')
                .fold(String::from("#"), |mut pointer, key| {
                    pointer.push('/');
                    // RFC 6901: `~` and `/` inside a key are escaped.
                    pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    pointer
                })
        };
        Self::with(Some(pointer), None, field, message.into())
    }

    /// A query, path or header parameter.
    pub fn parameter(name: impl Into<String>, message: impl Into<String>) -> Self {
        let name = name.into();
        Self::with(None, Some(name.clone()), name, message.into())
    }

    fn with(
        pointer: Option<String>,
        parameter: Option<String>,
        field: String,
        message: String,
    ) -> Self {
        Self {
            pointer,
            parameter,
            detail: message.clone(),
            field,
            message,
        }
    }
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {detail}")]
    BadRequest {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("unprocessable: {detail}")]
    Unprocessable {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("no valid API key")]
    Unauthenticated { key_presented: bool },
    #[error("missing scope {}", .0.as_str())]
    Forbidden(Scope),
    /// A session cookie that names no live session: why, for the page.
    #[error("signed out: {0}")]
    SignedOut(&'static str),
    /// An unsafe method authenticated by the session cookie without `X-CSRF: 1`.
    #[error("no X-CSRF header")]
    CsrfHeaderMissing,
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("too many streams: {limit}")]
    TooManyStreams { limit: u64 },
    #[error("rate limited")]
    RateLimited {
        retry_after: std::time::Duration,
        per_second: u32,
    },
    #[error("duplicate: {detail}")]
    Duplicate {
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("method not allowed")]
    MethodNotAllowed { allow: Vec<Method> },
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported media type")]
    UnsupportedMediaType(String),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("not ready: {0}")]
    NotReady(String),
    /// The state instances share (Redis) cannot be used, and this request
    /// must not go on without it.
    #[error("shared state unavailable: {0}")]
    StateUnavailable(String),
    /// The registry's database cannot be used; for a write, nothing was sent.
    #[error("registry unavailable: {0}")]
    RegistryUnavailable(String),
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn internal(msg: &'static str) -> Self {
        Self::Internal(anyhow::anyhow!(msg))
    }

    /// A 422 listing every field that failed, its detail summing them up.
    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        Self::Unprocessable {
            detail: summary(&errors),
            errors,
        }
    }

    /// A 400 naming one parameter.
    pub fn bad_field(field: &str, message: impl Into<String>) -> Self {
        Self::bad_parameters(vec![FieldError::parameter(field, message)])
    }

    /// A 400 listing every parameter that failed, its detail summing them up.
    pub fn bad_parameters(errors: Vec<FieldError>) -> Self {
        Self::BadRequest {
            detail: summary(&errors),
            errors,
        }
    }

    /// The failure table: every failure's problem type and status, in one
    /// place, for both upstreams and the gateway itself.
    pub fn classify(&self) -> (ProblemType, StatusCode) {
        use ProblemType as P;
        use StatusCode as S;
        match self {
            Self::BadRequest { .. } => (P::Validation, S::BAD_REQUEST),
            Self::Unprocessable { .. } => (P::Validation, S::UNPROCESSABLE_ENTITY),
            Self::Unauthenticated { .. } => (P::Unauthenticated, S::UNAUTHORIZED),
            Self::Forbidden(_) => (P::Forbidden, S::FORBIDDEN),
            Self::SignedOut(_) => (P::Unauthenticated, S::UNAUTHORIZED),
            Self::CsrfHeaderMissing => (P::Forbidden, S::FORBIDDEN),
            Self::NotFound(_) => (P::NotFound, S::NOT_FOUND),
            Self::Conflict(_) => (P::IdempotencyKeyInUse, S::CONFLICT),
            Self::Duplicate { .. } => (P::Duplicate, S::CONFLICT),
            Self::RateLimited { .. } => (P::RateLimited, S::TOO_MANY_REQUESTS),
            // A limit of the key like its rate: the same type, so clients of
            // the released contract know it (a new type would break them).
            Self::TooManyStreams { .. } => (P::RateLimited, S::TOO_MANY_REQUESTS),
            Self::MethodNotAllowed { .. } => (P::MethodNotAllowed, S::METHOD_NOT_ALLOWED),
            Self::PayloadTooLarge { .. } => (P::PayloadTooLarge, S::PAYLOAD_TOO_LARGE),
            Self::UnsupportedMediaType(_) => (P::UnsupportedMediaType, S::UNSUPPORTED_MEDIA_TYPE),
            Self::NotReady(_) => (P::NotReady, S::SERVICE_UNAVAILABLE),
            Self::StateUnavailable(_) => (P::SharedStateUnavailable, S::SERVICE_UNAVAILABLE),
            // The registry is state the gateway keeps (and, on PostgreSQL,
            // shares): the released contract's type for it, no new one.
            Self::RegistryUnavailable(_) => (P::SharedStateUnavailable, S::SERVICE_UNAVAILABLE),
            Self::Internal(_) => (P::Internal, S::INTERNAL_SERVER_ERROR),
            Self::Upstream(e) => match e {
                UpstreamError::NotFound { .. } => (P::NotFound, S::NOT_FOUND),
                UpstreamError::CredentialsRejected { .. } => {
                    (P::UpstreamCredentialsRejected, S::BAD_GATEWAY)
                }
                UpstreamError::Status { .. } => (P::UpstreamError, S::BAD_GATEWAY),
                UpstreamError::Rejected { .. } => (P::UpstreamRejected, S::BAD_GATEWAY),
                UpstreamError::Malformed { .. } => (P::UpstreamMalformed, S::BAD_GATEWAY),
                UpstreamError::Interrupted { .. } => (P::UpstreamInterrupted, S::BAD_GATEWAY),
                UpstreamError::Timeout { .. } => (P::UpstreamTimeout, S::GATEWAY_TIMEOUT),
                UpstreamError::Unreachable { .. } => {
                    (P::UpstreamUnavailable, S::SERVICE_UNAVAILABLE)
                }
                UpstreamError::Throttled { .. } => (P::UpstreamThrottled, S::SERVICE_UNAVAILABLE),
                UpstreamError::CircuitOpen { .. } => {
                    (P::UpstreamCircuitOpen, S::SERVICE_UNAVAILABLE)
                }
                UpstreamError::Busy { .. } => (P::UpstreamBusy, S::SERVICE_UNAVAILABLE),
            },
        }
    }

    /// When the caller may try again, for `Retry-After`.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        use std::time::Duration;
        match self {
            Self::Conflict(_) | Self::StateUnavailable(_) | Self::RegistryUnavailable(_) => {
                Some(Duration::from_secs(1))
            }
            Self::TooManyStreams { .. } => Some(Duration::from_secs(5)),
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            Self::Upstream(UpstreamError::Throttled { retry_after, .. }) => *retry_after,
            Self::Upstream(UpstreamError::CircuitOpen { retry_after, .. }) => Some(*retry_after),
            Self::Upstream(UpstreamError::Busy { .. }) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    pub fn to_problem(&self) -> Problem {
        let (problem_type, status) = self.classify();
        let (detail, errors, upstream) = match self {
            Self::BadRequest { detail, errors }
            | Self::Unprocessable { detail, errors }
            | Self::Duplicate { detail, errors } => (Some(detail.clone()), errors.clone(), None),
            Self::Unauthenticated {
                key_presented: false,
            } => (
                Some("send `Authorization: Bearer <api key>`".to_owned()),
                vec![],
                None,
            ),
            Self::Unauthenticated {
                key_presented: true,
            } => (Some("the API key is not valid".to_owned()), vec![], None),
            Self::Forbidden(scope) => (
                Some(format!("this route needs the `{}` scope", scope.as_str())),
                vec![],
                None,
            ),
            Self::SignedOut(why) => (Some((*why).to_owned()), vec![], None),
            Self::CsrfHeaderMissing => (
                Some(
                    "a request that changes something and is authenticated by the session \
                     cookie must carry the header `X-CSRF: 1`"
                        .to_owned(),
                ),
                vec![],
                None,
            ),
            Self::NotFound(detail)
            | Self::Conflict(detail)
            | Self::UnsupportedMediaType(detail)
            | Self::NotReady(detail)
            | Self::StateUnavailable(detail)
            | Self::RegistryUnavailable(detail) => (Some(detail.clone()), vec![], None),
            Self::RateLimited {
                retry_after,
                per_second,
            } => (
                Some(format!(
                    "this API key may make {per_second} requests per second; retry in {} ms",
                    retry_after.as_millis()
                )),
                vec![],
                None,
            ),
            Self::MethodNotAllowed { allow } => (
                Some(format!(
                    "this route answers {}",
                    allow
                        .iter()
                        .map(Method::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                vec![],
                None,
            ),
            Self::TooManyStreams { limit } => (
                Some(format!(
                    "this API key holds {limit} open event streams, as many as it may \
                     (events.max_subscribers_per_key); close one, or share one stream per page"
                )),
                vec![],
                None,
            ),
            Self::PayloadTooLarge { limit } => (
                Some(format!("the body must be at most {limit} bytes")),
                vec![],
                None,
            ),
            Self::Upstream(e) => (
                Some(upstream_detail(e)),
                vec![],
                Some(e.upstream().as_str().to_owned()),
            ),
            // The cause is logged, never shown: it may carry internals.
            Self::Internal(_) => (None, vec![], None),
        };
        Problem {
            problem_type,
            title: problem_type.title().to_owned(),
            status: status.as_u16(),
            detail,
            request_id: current_request_id(),
            upstream,
            errors,
            extensions: serde_json::Map::new(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.classify().1
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(e) => tracing::error!(error = format!("{e:#}"), "request failed"),
            Self::Upstream(e) => e.log(),
            _ => {}
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        match self {
            Self::Unauthenticated { key_presented } => {
                let value = if *key_presented {
                    r#"Bearer realm="gateway", error="invalid_token""#
                } else {
                    r#"Bearer realm="gateway""#
                };
                response.insert_header((header::WWW_AUTHENTICATE, value));
            }
            Self::Forbidden(scope) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    format!(
                        r#"Bearer realm="gateway", error="insufficient_scope", scope="{}""#,
                        scope.as_str()
                    ),
                ));
            }
            Self::MethodNotAllowed { allow } => {
                response.insert_header(header::Allow(allow.clone()));
            }
            _ => {}
        }
        if let Some(after) = self.retry_after() {
            response.insert_header((
                header::RETRY_AFTER,
                crate::checked::retry_after_seconds(after).to_string(),
            ));
        }
        response.json(self.to_problem())
    }
}

/// What an upstream failure says to a caller: what happened, never URLs,
/// tokens or bodies.
fn upstream_detail(e: &UpstreamError) -> String {
    let upstream = e.upstream();
    match e {
        UpstreamError::NotFound { detail, .. } => detail.clone(),
        UpstreamError::CredentialsRejected { .. } => format!(
            "{upstream} rejected the credentials the gateway is configured with; operators have been alerted in the logs"
        ),
        UpstreamError::Status { status, .. } => format!("{upstream} answered HTTP {status}"),
        UpstreamError::Rejected { message, .. } => {
            format!("{upstream} refused the request: {message}")
        }
        UpstreamError::Malformed { .. } => {
            format!("{upstream} sent an answer the gateway could not read")
        }
        UpstreamError::Interrupted { .. } => {
            format!("the connection to {upstream} broke off before its answer was complete")
        }
        UpstreamError::Timeout { timeout_ms, .. } => {
            format!("{upstream} did not answer within {timeout_ms} ms")
        }
        UpstreamError::Unreachable { .. } => format!("{upstream} could not be reached"),
        UpstreamError::Throttled { status, .. } => {
            format!("{upstream} answered HTTP {status} and asked to retry later")
        }
        UpstreamError::CircuitOpen {
            retry_after,
            operation,
            ..
        } => {
            let seconds = crate::checked::retry_after_seconds(*retry_after);
            match operation {
                Some(_) => format!(
                    "this {upstream} operation failed repeatedly; calls to it are paused for up to {seconds} s (other {upstream} operations are not)"
                ),
                None => format!(
                    "{upstream} could not be reached repeatedly; every call to it is paused for up to {seconds} s"
                ),
            }
        }
        UpstreamError::Busy { .. } => {
            format!("{upstream} has too many calls in flight; retry shortly")
        }
    }
}

/// One line naming every field at fault: "`email` must be …; `zipcode` …".
fn summary(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("`{}` {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Turns the framework's JSON body errors into problems.
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api = match err {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::PayloadTooLarge { limit },
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType(
            "send the body as `Content-Type: application/json`".into(),
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            let message = e.to_string();
            let field = field_in_serde_message(&message).unwrap_or_else(|| "body".to_owned());
            ApiError::Unprocessable {
                detail: format!("the body does not fit the schema: {message}"),
                errors: vec![FieldError::body(field, message)],
            }
        }
        JsonPayloadError::Deserialize(e) => ApiError::BadRequest {
            detail: format!("the body is not valid JSON: {e}"),
            errors: vec![FieldError::body("body", "not valid JSON")],
        },
        other => ApiError::BadRequest {
            detail: format!("the body could not be read: {other}"),
            errors: vec![FieldError::body("body", other.to_string())],
        },
    };
    api.into()
}

/// Path segments that do not fit the route's parameters.
pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::BadRequest {
        detail: format!("the path is not valid: {err}"),
        errors: vec![FieldError::parameter("path", err.to_string())],
    }
    .into()
}

/// serde names the field in backticks: "missing field `email`", "unknown field `x`, expected ...".
pub(crate) fn field_in_serde_message(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))
        .or_else(|| message.strip_prefix("duplicate field `"))?;
    rest.split('`').next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_name_their_field() {
        assert_eq!(
            field_in_serde_message("unknown field `emial`, expected one of `email`").as_deref(),
            Some("emial")
        );
        assert_eq!(
            field_in_serde_message("missing field `email` at line 1 column 2").as_deref(),
            Some("email")
        );
        assert_eq!(field_in_serde_message("invalid type: integer"), None);
    }

    #[test]
    fn an_internal_error_never_shows_its_cause() {
        let problem = ApiError::Internal(anyhow::anyhow!("db password is hunter2")).to_problem();
        assert_eq!(problem.status, 500);
        assert!(problem.detail.is_none());
        assert!(!serde_json::to_string(&problem).unwrap().contains("hunter2"));
    }
}
