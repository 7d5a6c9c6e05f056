//! `/v1/services`: hosting, VPS and other services (Slitz `GET /service`,
//! `GET /service/{id}`). Service credentials reach only keys with the
//! `secrets` scope.

use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use std::sync::Arc;

use super::{
    AuthErrors, BadRequest, ListQuery, Listing, NotFound, Page, UpstreamErrors, cached_listing,
    parse_id, slitz_malformed,
};
use crate::{
    auth::{Caller, Scope},
    cache::{self, CacheKey, CacheStatus, Cached, ResponseCache, Route},
    error::ApiError,
    normalize::{Money, NormalizeError},
    upstream::slitz::{self, SlitzClient},
};

/// A service as listed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": 33301, "name": "Starter Hosting", "domain": "lindqvist.se", "category": "Hosting",
    "category_slug": "hosting", "status": "active", "billing_cycle": "monthly",
    "next_due_on": "2026-12-18", "total": {"amount": "149.00", "currency": "SEK"}
}))]
pub struct ServiceSummary {
    pub id: i64,
    /// Product name.
    pub name: Option<String>,
    /// The domain the service is for, if any.
    pub domain: Option<String>,
    pub category: Option<String>,
    /// URL-safe category name (upstream `category_url`).
    pub category_slug: Option<String>,
    /// `active`, `suspended`, `terminated`, `pending`, …
    pub status: Option<String>,
    /// `monthly`, `quarterly`, `annually`, … (upstream `billingcycle`).
    pub billing_cycle: Option<String>,
    /// Next payment due (upstream `next_due`).
    pub next_due_on: Option<NaiveDate>,
    /// Recurring price, in the configured currency.
    pub total: Option<Money>,
}

/// Credentials Slitz stores on a service. Only for keys with the `secrets` scope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceCredentials {
    pub username: Option<String>,
    pub password: Option<String>,
    /// Root password (upstream `rootpassword`).
    pub root_password: Option<String>,
}

/// A service with its billing dates; `credentials` only for the `secrets` scope.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "id": 33301, "name": "Starter Hosting", "label": null, "domain": "lindqvist.se", "status": "active",
    "billing_cycle": "monthly", "created_on": "2025-10-19", "next_due_on": "2026-12-18",
    "next_invoice_on": "2026-12-13", "first_payment": {"amount": "149.00", "currency": "SEK"},
    "total": {"amount": "149.00", "currency": "SEK"}
}))]
pub struct Service {
    pub id: i64,
    pub name: Option<String>,
    /// The customer's own label for the service.
    pub label: Option<String>,
    pub domain: Option<String>,
    pub status: Option<String>,
    pub billing_cycle: Option<String>,
    /// Order date (upstream `date_created`).
    pub created_on: Option<NaiveDate>,
    pub next_due_on: Option<NaiveDate>,
    /// Next invoice date (upstream `next_invoice`).
    pub next_invoice_on: Option<NaiveDate>,
    /// First payment (upstream `firstpayment`).
    pub first_payment: Option<Money>,
    /// Recurring price.
    pub total: Option<Money>,
    /// Present only for keys with the `secrets` scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<ServiceCredentials>,
}

impl ServiceSummary {
    fn from_slitz(s: &slitz::ServiceSummary, currency: &str) -> Result<Self, NormalizeError> {
        Ok(Self {
            id: s.id.id("id")?,
            name: s.name.text(),
            domain: s.domain.text(),
            category: s.category.text(),
            category_slug: s.category_url.text(),
            status: s.status.status(),
            billing_cycle: s.billingcycle.status(),
            next_due_on: s.next_due.date("next_due")?,
            total: s.total.money("total", currency)?,
        })
    }
}

impl Service {
    fn from_slitz(
        s: slitz::ServiceDetail,
        currency: &str,
        with_secrets: bool,
    ) -> Result<Self, NormalizeError> {
        Ok(Self {
            id: s.id.id("id")?,
            name: s.name.text(),
            label: s.label.text(),
            domain: s.domain.text(),
            status: s.status.status(),
            billing_cycle: s.billingcycle.status(),
            created_on: s.date_created.date("date_created")?,
            next_due_on: s.next_due.date("next_due")?,
            next_invoice_on: s.next_invoice.date("next_invoice")?,
            first_payment: s.firstpayment.money("firstpayment", currency)?,
            total: s.total.money("total", currency)?,
            credentials: with_secrets.then(|| ServiceCredentials {
                username: s.username.text(),
                password: s.password.text(),
                root_password: s.rootpassword.text(),
            }),
        })
    }
}

/// List services
///
/// Every service of the account, optionally only those with one status, one
/// page at a time. Cached.
#[utoipa::path(
    tag = "services",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of services.", body = Page<ServiceSummary>),
        (status = 304, description = "Not modified since the ETag in If-None-Match."),
        BadRequest,
        AuthErrors,
        UpstreamErrors,
    ),
    security(("api_key" = ["read"]))
)]
#[get("/services")]
pub(crate) async fn list_services(
    req: HttpRequest,
    caller: Caller,
    query: web::Query<ListQuery>,
    slitz: web::Data<SlitzClient>,
    cache: web::Data<ResponseCache>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    let listing = query.validate()?;
    let (entry, status) = cached_services(&slitz, &cache, &listing).await?;
    Ok(cache::respond(&req, &entry, status))
}

/// A listing of services, through the cache.
pub(crate) async fn cached_services(
    slitz: &SlitzClient,
    cache: &ResponseCache,
    listing: &Listing,
) -> Result<(Arc<Cached>, CacheStatus), ApiError> {
    let normalize = |s: &_| ServiceSummary::from_slitz(s, slitz.currency());
    cached_listing(
        cache,
        Route::Services,
        listing,
        slitz.services(),
        normalize,
        |s| s.status.as_deref(),
    )
    .await
}

/// One service
///
/// A service with its billing dates. Keys with the `secrets` scope also get
/// the credentials Slitz stores on it; no other key ever does. Cached, per view.
#[utoipa::path(
    tag = "services",
    params(("id" = i64, Path, minimum = 1, description = "Service id.")),
    responses(
        (status = 200, description = "The service.", body = Service),
        (status = 304, description = "Not modified since the ETag in If-None-Match."),
        BadRequest,
        NotFound,
        AuthErrors,
        UpstreamErrors,
    ),
    security(("api_key" = ["read"]), ("api_key" = ["read", "secrets"]))
)]
#[get("/services/{id}")]
pub(crate) async fn get_service(
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    slitz: web::Data<SlitzClient>,
    cache: web::Data<ResponseCache>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    let id = parse_id("id", &id)?;
    let with_secrets = caller.has(Scope::Secrets);
    // The view is part of the key: an answer with credentials is never served
    // to a caller without the scope, nor the other way round.
    let view = if with_secrets { "secrets" } else { "plain" };
    let key = CacheKey::new(Route::Service, format!("{id}:{view}"));
    cache
        .serve(&req, key, || async {
            let service = slitz.service(id).await?;
            Service::from_slitz(service, slitz.currency(), with_secrets).map_err(slitz_malformed)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail() -> slitz::ServiceDetail {
        serde_json::from_value(serde_json::json!({
            "id": "33337", "date_created": "2015-09-02", "domain": "example.com", "firstpayment": "10.00",
            "total": "10.00", "billingcycle": "Monthly", "next_due": "2015-10-22", "next_invoice": "2015-10-20",
            "status": "Active", "label": "", "username": "u1", "password": "p1", "rootpassword": "", "name": "Starter Hosting"
        }))
        .unwrap()
    }

    #[test]
    fn credentials_appear_only_with_secrets() {
        let plain =
            serde_json::to_value(Service::from_slitz(detail(), "SEK", false).unwrap()).unwrap();
        assert!(plain.get("credentials").is_none());
        assert!(!plain.to_string().contains("p1"));
        let secret =
            serde_json::to_value(Service::from_slitz(detail(), "SEK", true).unwrap()).unwrap();
        assert_eq!(secret["credentials"]["password"], "p1");
        assert_eq!(
            secret["credentials"]["root_password"],
            serde_json::Value::Null
        );
        assert_eq!(secret["billing_cycle"], "monthly");
        assert_eq!(secret["label"], serde_json::Value::Null);
    }
}
