//! `/v1/billing`: balance and invoices (Slitz `GET /balance`, `GET /invoice`,
//! `GET /invoice/{id}`).

use actix_web::{HttpResponse, web};

use std::sync::Arc;

use super::{
    BadRequest, ListQuery, Listing, NotFound, Page, Query, UpstreamErrors, cached_listing, parse_id,
};
use crate::{
    cache::{self, CacheKey, CacheStatus, Cached, ResponseCache},
    error::ApiError,
    model::{Balance, Invoice, InvoiceSummary},
    upstream::slitz::SlitzClient,
};

crate::endpoint! {
    /// Balance and credit
    ///
    /// The total of unpaid invoices and the credit on the account. Cached.
    #[route(get "/v1/billing/balance", scopes = [Read], cached = Balance,
        upstream = [Slitz(GetBalance)], ok = (Balance, "Balance and credit."))]
    #[openapi(tag = "billing",)]
    #[responses(UpstreamErrors)]
    pub(crate) async fn get_balance(
        slitz: web::Data<SlitzClient>,
        cache: web::Data<ResponseCache>,
    ) -> Result<HttpResponse, ApiError> {
        let (entry, status) = cached_balance(&slitz, &cache).await?;
        Ok(cache::respond(&entry, status))
    }
}

/// The balance, through the cache.
pub(crate) async fn cached_balance(
    slitz: &SlitzClient,
    cache: &ResponseCache,
) -> Result<(Arc<Cached>, CacheStatus), ApiError> {
    cache
        .get_or_load(CacheKey::new(get_balance::CACHE, ""), || async {
            Ok::<get_balance::Body, ApiError>(slitz.balance().await?)
        })
        .await
}

crate::endpoint! {
    /// List invoices
    ///
    /// Every invoice of the account, newest as Slitz orders them, optionally only
    /// those with one status, one page at a time. Cached.
    #[route(get "/v1/billing/invoices", scopes = [Read], cached = Invoices,
        upstream = [Slitz(ListInvoices)],
        ok = (Page<InvoiceSummary>, "One page of invoices."))]
    #[openapi(tag = "billing", params(ListQuery),)]
    #[responses(BadRequest, UpstreamErrors)]
    pub(crate) async fn list_invoices(
        query: Query<ListQuery>,
        slitz: web::Data<SlitzClient>,
        cache: web::Data<ResponseCache>,
    ) -> Result<HttpResponse, ApiError> {
        let listing = query.listing();
        let (entry, status) = cached_invoices(&slitz, &cache, &listing).await?;
        Ok(cache::respond(&entry, status))
    }
}

/// A listing of invoices, through the cache.
pub(crate) async fn cached_invoices(
    slitz: &SlitzClient,
    cache: &ResponseCache,
    listing: &Listing,
) -> Result<(Arc<Cached>, CacheStatus), ApiError> {
    cached_listing(
        cache,
        list_invoices::CACHE,
        listing,
        || slitz.invoices(),
        |i: &InvoiceSummary| i.status.as_deref(),
    )
    .await
}

crate::endpoint! {
    /// One invoice
    ///
    /// An invoice with its line items, taxes and the billed account. Cached.
    #[route(get "/v1/billing/invoices/{id}", scopes = [Read], cached = Invoice,
        upstream = [Slitz(GetInvoice)], ok = (Invoice, "The invoice."))]
    #[openapi(tag = "billing", params(("id" = i64, Path, minimum = 1, description = "Invoice id.")),)]
    #[responses(BadRequest, NotFound, UpstreamErrors)]
    pub(crate) async fn get_invoice(
        id: web::Path<String>,
        slitz: web::Data<SlitzClient>,
        cache: web::Data<ResponseCache>,
    ) -> Result<HttpResponse, ApiError> {
        let id = parse_id("id", &id)?;
        cache
            .serve(CacheKey::new(CACHE, id.to_string()), || async {
                Ok::<Body, ApiError>(slitz.invoice(id).await?)
            })
            .await
    }
}
