//! Every answer that is not a success is `application/problem+json` (RFC 9457)
//! with the request id, so a frontend can handle all failures one way.

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    error::{JsonPayloadError, PathError, QueryPayloadError},
    http::{Method, StatusCode, header},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{auth::Scope, telemetry::current_request_id, upstream::UpstreamError};

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem: how every error of the gateway is answered.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:gateway:problem:validation",
    "title": "The request is not valid",
    "status": 400,
    "detail": "`id` must be a positive integer",
    "request_id": "9f0c2a4e-6d1b-4a53-8f0e-2b7c1d3e4f56",
    "errors": [{"field": "id", "message": "must be a positive integer"}]
}))]
pub struct Problem {
    /// A URI naming the kind of problem; stable, for code to switch on.
    #[serde(rename = "type")]
    pub problem_type: String,
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

/// One field of the request and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The field, query parameter or path parameter, by its gateway name.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
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
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
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
            detail: errors
                .iter()
                .map(|e| format!("`{}` {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            errors,
        }
    }

    /// A 400 naming one field.
    pub fn bad_field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::BadRequest {
            detail: format!("`{field}` {message}"),
            errors: vec![FieldError::new(field, message)],
        }
    }

    fn code_and_title(&self) -> (&'static str, &'static str) {
        match self {
            Self::BadRequest { .. } => ("validation", "The request is not valid"),
            Self::Unprocessable { .. } => ("validation", "The request is not valid"),
            Self::Unauthenticated { .. } => ("unauthenticated", "A valid API key is required"),
            Self::Forbidden(_) => ("forbidden", "The API key lacks a required scope"),
            Self::NotFound(_) => ("not-found", "Not found"),
            Self::Conflict(_) => (
                "idempotency-key-in-use",
                "A request with this key is in flight",
            ),
            Self::Duplicate { .. } => ("duplicate", "It already exists"),
            Self::RateLimited { .. } => ("rate-limited", "Too many requests"),
            Self::MethodNotAllowed { .. } => ("method-not-allowed", "Method not allowed"),
            Self::PayloadTooLarge { .. } => ("payload-too-large", "The request body is too large"),
            Self::UnsupportedMediaType(_) => ("unsupported-media-type", "Unsupported media type"),
            Self::Upstream(e) => e.code_and_title(),
            Self::NotReady(_) => ("not-ready", "The gateway cannot serve yet"),
            Self::Internal(_) => ("internal", "Internal error"),
        }
    }

    pub fn to_problem(&self) -> Problem {
        let (code, title) = self.code_and_title();
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
            Self::NotFound(detail)
            | Self::Conflict(detail)
            | Self::UnsupportedMediaType(detail)
            | Self::NotReady(detail) => (Some(detail.clone()), vec![], None),
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
            Self::PayloadTooLarge { limit } => (
                Some(format!("the body must be at most {limit} bytes")),
                vec![],
                None,
            ),
            Self::Upstream(e) => (
                Some(e.public_detail()),
                vec![],
                Some(e.upstream().as_str().to_owned()),
            ),
            // The cause is logged, never shown: it may carry internals.
            Self::Internal(_) => (None, vec![], None),
        };
        Problem {
            problem_type: format!("urn:gateway:problem:{code}"),
            title: title.to_owned(),
            status: self.status_code().as_u16(),
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
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) | Self::Duplicate { .. } => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Upstream(e) => e.status(),
            Self::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
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
            Self::Conflict(_) => {
                response.insert_header((header::RETRY_AFTER, "1"));
            }
            Self::RateLimited { retry_after, .. } => {
                response.insert_header((
                    header::RETRY_AFTER,
                    crate::checked::retry_after_seconds(*retry_after).to_string(),
                ));
            }
            Self::Upstream(e) => {
                if let Some(after) = e.retry_after() {
                    response.insert_header((
                        header::RETRY_AFTER,
                        crate::checked::retry_after_seconds(after).to_string(),
                    ));
                }
            }
            _ => {}
        }
        response.json(self.to_problem())
    }
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
                errors: vec![FieldError::new(field, message)],
            }
        }
        JsonPayloadError::Deserialize(e) => ApiError::BadRequest {
            detail: format!("the body is not valid JSON: {e}"),
            errors: vec![FieldError::new("body", "not valid JSON")],
        },
        other => ApiError::BadRequest {
            detail: format!("the body could not be read: {other}"),
            errors: vec![FieldError::new("body", other.to_string())],
        },
    };
    api.into()
}

/// Query strings that do not fit the route's parameters.
pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let message = match &err {
        QueryPayloadError::Deserialize(e) => e.to_string(),
        other => other.to_string(),
    };
    let field = field_in_serde_message(&message).unwrap_or_else(|| "query".to_owned());
    ApiError::BadRequest {
        detail: format!("the query string is not valid: {message}"),
        errors: vec![FieldError::new(field, message)],
    }
    .into()
}

/// Path segments that do not fit the route's parameters.
pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::BadRequest {
        detail: format!("the path is not valid: {err}"),
        errors: vec![FieldError::new("path", err.to_string())],
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
