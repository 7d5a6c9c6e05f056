//! `/v1/support/tickets`: support tickets and their replies (Slitz
//! `GET /tickets`, `GET /tickets/{number}`).

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
    model::{Ticket, TicketSummary},
    upstream::slitz::SlitzClient,
};

/// List support tickets
///
/// Every ticket of the account, optionally only those with one status, one
/// page at a time. Cached.
#[utoipa::path(
    tag = "support",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of tickets.", body = Page<TicketSummary>),
        BadRequest,
        AuthErrors,
        UpstreamErrors,
    )
)]
#[get("/support/tickets")]
pub(crate) async fn list_tickets(
    req: HttpRequest,
    _: Caller,
    query: Query<ListQuery>,
    slitz: web::Data<SlitzClient>,
    cache: web::Data<ResponseCache>,
) -> Result<HttpResponse, ApiError> {
    let listing = query.listing();
    let (entry, status) = cached_tickets(&slitz, &cache, &listing).await?;
    Ok(cache::respond(&req, &entry, status))
}

/// A listing of tickets, through the cache.
pub(crate) async fn cached_tickets(
    slitz: &SlitzClient,
    cache: &ResponseCache,
    listing: &Listing,
) -> Result<(Arc<Cached>, CacheStatus), ApiError> {
    cached_listing(
        cache,
        Route::Tickets,
        listing,
        || slitz.tickets(),
        |t: &TicketSummary| t.status.as_deref(),
    )
    .await
}

/// One ticket, with replies
///
/// A support ticket and every reply in it. Cached.
#[utoipa::path(
    tag = "support",
    params(("number" = i64, Path, minimum = 1, description = "Ticket number.")),
    responses(
        (status = 200, description = "The ticket.", body = Ticket),
        BadRequest,
        NotFound,
        AuthErrors,
        UpstreamErrors,
    )
)]
#[get("/support/tickets/{number}")]
pub(crate) async fn get_ticket(
    req: HttpRequest,
    _: Caller,
    number: web::Path<String>,
    slitz: web::Data<SlitzClient>,
    cache: web::Data<ResponseCache>,
) -> Result<HttpResponse, ApiError> {
    let number = parse_id("number", &number)?;
    cache
        .serve(
            &req,
            CacheKey::new(Route::Ticket, number.to_string()),
            || async { Ok::<Ticket, ApiError>(slitz.ticket(number).await?) },
        )
        .await
}
