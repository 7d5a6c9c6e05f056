//! `/v1/billing`: balance and invoices (Slitz `GET /balance`, `GET /invoice`,
//! `GET /invoice/{id}`).

use actix_web::{HttpRequest, HttpResponse, get, web};

use std::sync::Arc;

use super::{
    AuthErrors, BadRequest, ListQuery, Listing, NotFound, Page, Query, UpstreamErrors,
    cached_listing, parse_id,
};
use crate::{
    auth::Caller,
    cache::{self, CacheKey, CacheStatus, Cached, ResponseCache, Route},
    error::ApiError,
    model::{Balance, Invoice, InvoiceSummary},
    upstream::slitz::SlitzClient,
};

/// Balance and credit
///
/// The total of unpaid invoices and the credit on the account. Cached.
#[utoipa::path(
    tag = "billing",
    responses(
        (status = 200, description = "Balance and credit.", body = Balance),
        AuthErrors,
        UpstreamErrors,
    )
)]
#[get("/billing/balance")]
pub(crate) async fn get_balance(
    req: HttpRequest,
    _: Caller,
    slitz: web::Data<SlitzClient>,
    cache: web::Data<ResponseCache>,
) -> Result<HttpResponse, ApiError> {
    let (entry, status) = cached_balance(&slitz, &cache).await?;
    Ok(cache::respond(&req, &entry, status))
}

/// The balance, through the cache.
pub(crate) async fn cached_balance(
    slitz: &SlitzClient,
    cache: &ResponseCache,
) -> Result<(Arc<Cached>, CacheStatus), ApiError> {
    cache
        .get_or_load(CacheKey::new(Route::Balance, ""), || async {
            Ok::<Balance, ApiError>(slitz.balance().await?)
        })
        .await
}

/// List invoices
///
/// Every invoice of the account, newest as Slitz orders them, optionally only
/// those with one status, one page at a time. Cached.
#[utoipa::path(
    tag = "billing",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of invoices.", body = Page<InvoiceSummary>),
        BadRequest,
        AuthErrors,
        UpstreamErrors,
    )
)]
#[get("/billing/invoices")]
pub(crate) async fn list_invoices(
    req: HttpRequest,
    _: Caller,
    query: Query<ListQuery>,
    slitz: web::Data<SlitzClient>,
    cache: web::Data<ResponseCache>,
) -> Result<HttpResponse, ApiError> {
    let listing = query.listing();
    let (entry, status) = cached_invoices(&slitz, &cache, &listing).await?;
    Ok(cache::respond(&req, &entry, status))
}

/// A listing of invoices, through the cache.
pub(crate) async fn cached_invoices(
    slitz: &SlitzClient,
    cache: &ResponseCache,
    listing: &Listing,
) -> Result<(Arc<Cached>, CacheStatus), ApiError> {
    cached_listing(
        cache,
        Route::Invoices,
        listing,
        || slitz.invoices(),
        |i: &InvoiceSummary| i.status.as_deref(),
    )
    .await
}

/// One invoice
///
/// An invoice with its line items, taxes and the billed account. Cached.
#[utoipa::path(
    tag = "billing",
    params(("id" = i64, Path, minimum = 1, description = "Invoice id.")),
    responses(
        (status = 200, description = "The invoice.", body = Invoice),
        BadRequest,
        NotFound,
        AuthErrors,
        UpstreamErrors,
    )
)]
#[get("/billing/invoices/{id}")]
pub(crate) async fn get_invoice(
    req: HttpRequest,
    _: Caller,
    id: web::Path<String>,
    slitz: web::Data<SlitzClient>,
    cache: web::Data<ResponseCache>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id("id", &id)?;
    cache
        .serve(
            &req,
            CacheKey::new(Route::Invoice, id.to_string()),
            || async { Ok::<Invoice, ApiError>(slitz.invoice(id).await?) },
        )
        .await
}
