//! `/v1/customers` (reads) and `/v1/audit`: what the gateway recorded of
//! the DNA writes it made (`registry`). DNA itself has no read or list:
//! this is where a frontend finds a customer it created, and who suspended it.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{BadRequest, Count, Query, parse_id};

use crate::{
    error::{ApiError, Problem},
    registry::{
        AuditEntry, AuditFilter, CursorPage, CustomerFilter, CustomerRecord, CustomerStatus,
        Operation, OutcomeName, Registry, read::ReadError,
    },
    representation::validated,
};

/// Default and largest page sizes of the registry's lists.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;
/// The most history entries a customer's detail shows.
const HISTORY: u32 = 100;

/// Text a filter compares: 1 to `MAX` characters, no control characters.
#[derive(Debug, Clone)]
pub struct Text<const MAX: usize>(String);

impl<'de, const MAX: usize> Deserialize<'de> for Text<MAX> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let count = text.chars().count();
        if count == 0 || count > MAX || text.chars().any(char::is_control) {
            return Err(serde::de::Error::custom(format!(
                "must be 1 to {MAX} characters, none of them control characters"
            )));
        }
        Ok(Self(text))
    }
}

/// An operation's name, as the audit trail writes it.
#[derive(Debug, Clone, Copy)]
pub struct OperationName(Operation);

impl<'de> Deserialize<'de> for OperationName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(Self).map_err(|_| {
            serde::de::Error::custom(
                "must be one of customer.create, customer.activate, customer.suspend",
            )
        })
    }
}

/// An instant, RFC 3339 (`2026-12-01T00:00:00Z`).
#[derive(Debug, Clone, Copy)]
pub struct Instant(i64);

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| Self(t.timestamp_millis()))
            .map_err(|_| {
                serde::de::Error::custom("must be an RFC 3339 time such as 2026-12-01T00:00:00Z")
            })
    }
}

/// `GET /v1/customers`'s filters. Each parses itself; every bad one is
/// named in one 400.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CustomerQuery {
    /// Only customers with this status.
    #[param(inline, value_type = Option<CustomerStatus>)]
    status: Option<CustomerStatus>,
    /// Only the customer with this id of yours (as sent to create).
    #[param(value_type = Option<String>, min_length = 1, max_length = 200, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,200}$")]
    customer_id: Option<Text<200>>,
    /// Only customers with this email (case-insensitive).
    #[param(value_type = Option<String>, min_length = 1, max_length = 320, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,320}$")]
    email: Option<Text<320>>,
    /// Only customers created by this principal (a key's name, `service:…`, `person:…`).
    #[param(value_type = Option<String>, min_length = 1, max_length = 200, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,200}$")]
    created_by: Option<Text<200>>,
    /// Words that must each appear in the first name, last name or email
    /// (case-insensitive).
    #[param(value_type = Option<String>, min_length = 1, max_length = 200, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,200}$")]
    q: Option<Text<200>>,
    /// The `next_cursor` of the page before.
    #[param(value_type = Option<String>, min_length = 1, max_length = 200, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,200}$")]
    cursor: Option<Text<200>>,
    /// Items per page.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200, default = 50)]
    limit: Option<Count<MAX_LIMIT>>,
}

impl crate::domain::BodyHints for CustomerQuery {}

/// `GET /v1/audit`'s filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries by this principal (a key's name, `service:…`, `person:…`).
    #[param(value_type = Option<String>, min_length = 1, max_length = 200, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,200}$")]
    principal: Option<Text<200>>,
    /// Only this operation.
    #[param(value_type = Option<String>, pattern = "^customer\\.(create|activate|suspend)$")]
    operation: Option<OperationName>,
    /// Only entries that ended so (`unknown` includes those with no outcome recorded).
    #[param(inline, value_type = Option<OutcomeName>)]
    outcome: Option<OutcomeName>,
    /// Only entries about this customer: DNA's id, or your `customer_id`.
    #[param(value_type = Option<String>, min_length = 1, max_length = 200, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,200}$")]
    customer: Option<Text<200>>,
    /// Only entries recorded at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<Instant>,
    /// Only entries recorded before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<Instant>,
    /// The `next_cursor` of the page before.
    #[param(value_type = Option<String>, min_length = 1, max_length = 200, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,200}$")]
    cursor: Option<Text<200>>,
    /// Items per page.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200, default = 50)]
    limit: Option<Count<MAX_LIMIT>>,
}

impl crate::domain::BodyHints for AuditQuery {}

/// A customer as last known, with the writes the gateway recorded for it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CustomerDetail {
    #[serde(flatten)]
    pub customer: CustomerRecord,
    /// Its recorded writes, newest first (at most 100).
    pub history: Vec<AuditEntry>,
}

fn read_error(error: ReadError) -> ApiError {
    match error {
        ReadError::Cursor(e) => ApiError::bad_field("cursor", e.to_string()),
        ReadError::Registry(error) => {
            tracing::warn!(%error, "a registry read failed");
            ApiError::RegistryUnavailable(
                "the customer registry cannot be read now; retry later".to_owned(),
            )
        }
    }
}

fn text<const MAX: usize>(value: &Option<Text<MAX>>) -> Option<String> {
    value.as_ref().map(|t| t.0.clone())
}

fn limit(value: Option<Count<MAX_LIMIT>>) -> u32 {
    value.map_or(DEFAULT_LIMIT, |c| c.get())
}

crate::endpoint! {
    /// Find customers
    ///
    /// The DNA customers created, activated or suspended through the gateway, as
    /// last known, newest first, filtered, one page at a time: pass a page's
    /// `next_cursor` as `cursor` for the next (pages stay stable while customers
    /// are added). DNA has no read: this is what the gateway recorded. A customer
    /// whose last write's outcome was lost is `unknown`, never guessed.
    #[route(get "/v1/customers", scopes = [Read], validated = true,
        ok = (CursorPage<CustomerRecord>, "One page of customers."))]
    #[openapi(tag = "customers", params(CustomerQuery),)]
    #[responses(BadRequest, (status = 503, description = "The registry cannot be read (type `urn:gateway:problem:shared-state-unavailable`).", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = String))))]
    pub(crate) async fn list_customers(
        query: Query<CustomerQuery>,
        registry: web::Data<Registry>,
    ) -> Result<HttpResponse, ApiError> {
        let filter = CustomerFilter {
            status: query.status,
            customer_id: text(&query.customer_id),
            email: text(&query.email),
            created_by: text(&query.created_by),
            q: text(&query.q),
            cursor: text(&query.cursor),
            limit: limit(query.limit),
        };
        let page: Body = registry.customers(&filter).await.map_err(read_error)?;
        validated(&page)
    }
}

crate::endpoint! {
    /// One customer, with its history
    ///
    /// A customer by DNA's id, as last known, with every write the gateway
    /// recorded for it (who, when, with which request id, how it ended).
    #[route(get "/v1/customers/{id}", scopes = [Read], validated = true,
        ok = (CustomerDetail, "The customer."))]
    #[openapi(tag = "customers", params(("id" = i64, Path, minimum = 1, description = "DNA customer id.")),)]
    #[responses(BadRequest, (status = 404, description = "The gateway recorded no write for this customer.", body = Problem, content_type = "application/problem+json"), (status = 503, description = "The registry cannot be read (type `urn:gateway:problem:shared-state-unavailable`).", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = String))))]
    pub(crate) async fn get_customer(
        id: web::Path<String>,
        registry: web::Data<Registry>,
    ) -> Result<HttpResponse, ApiError> {
        let id = parse_id("id", &id)?;
        let Some((customer, history)) = registry.customer(id, HISTORY).await.map_err(read_error)?
        else {
            return Err(ApiError::NotFound(format!(
                "the gateway recorded no write for DNA customer {id}"
            )));
        };
        let detail: Body = CustomerDetail { customer, history };
        validated(&detail)
    }
}

crate::endpoint! {
    /// The audit trail
    ///
    /// Every DNA write through the gateway, newest first: who (the principal),
    /// when, with which request id and Idempotency-Key, what was asked, and how
    /// it ended (`succeeded`, `refused`, or `unknown`: sent and the answer lost,
    /// or no outcome recorded). Entries are append-only. Filtered, one page at a
    /// time with `cursor`. Needs the `audit` scope.
    #[route(get "/v1/audit", scopes = [Audit], validated = true,
        ok = (CursorPage<AuditEntry>, "One page of audit entries."))]
    #[openapi(tag = "audit", params(AuditQuery),)]
    #[responses(BadRequest, (status = 503, description = "The registry cannot be read (type `urn:gateway:problem:shared-state-unavailable`).", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = String))))]
    pub(crate) async fn list_audit(
        query: Query<AuditQuery>,
        registry: web::Data<Registry>,
    ) -> Result<HttpResponse, ApiError> {
        let filter = AuditFilter {
            principal: text(&query.principal),
            operation: query.operation.map(|o| o.0.as_str().to_owned()),
            outcome: query.outcome,
            customer: text(&query.customer),
            since_ms: query.since.map(|i| i.0),
            until_ms: query.until.map(|i| i.0),
            cursor: text(&query.cursor),
            limit: limit(query.limit),
        };
        let page: Body = registry.audit(&filter).await.map_err(read_error)?;
        validated(&page)
    }
}
