//! `/v1/support/tickets`: support tickets and their replies (Slitz
//! `GET /tickets`, `GET /tickets/{number}`).

use actix_web::{HttpResponse, web};

use std::sync::Arc;

use super::{
    BadRequest, ListQuery, Listing, NotFound, Page, Query, UpstreamErrors, cached_listing, parse_id,
};
use crate::{
    cache::{self, CacheKey, CacheStatus, Cached, ResponseCache},
    error::ApiError,
    model::{Ticket, TicketSummary},
    upstream::slitz::SlitzClient,
};

crate::endpoint! {
    /// List support tickets
    ///
    /// Every ticket of the account, optionally only those with one status, one
    /// page at a time. Cached.
    #[route(get "/v1/support/tickets", scopes = [Read], cached = Tickets, upstream = [Slitz(ListTickets)], ok = (Page<TicketSummary>, "One page of tickets."))]
    #[openapi(tag = "support", params(ListQuery),)]
    #[responses(BadRequest, UpstreamErrors)]
    pub(crate) async fn list_tickets(
        query: Query<ListQuery>,
        slitz: web::Data<SlitzClient>,
        cache: web::Data<ResponseCache>,
    ) -> Result<HttpResponse, ApiError> {
        let listing = query.listing();
        let (entry, status) = cached_tickets(&slitz, &cache, &listing).await?;
        Ok(cache::respond(&entry, status))
    }
}

/// A listing of tickets, through the cache.
pub(crate) async fn cached_tickets(
    slitz: &SlitzClient,
    cache: &ResponseCache,
    listing: &Listing,
) -> Result<(Arc<Cached>, CacheStatus), ApiError> {
    cached_listing(
        cache,
        list_tickets::CACHE,
        listing,
        || slitz.tickets(),
        |t: &TicketSummary| t.status.as_deref(),
    )
    .await
}

crate::endpoint! {
    /// One ticket, with replies
    ///
    /// A support ticket and every reply in it. Cached.
    #[route(get "/v1/support/tickets/{number}", scopes = [Read], cached = Ticket, upstream = [Slitz(GetTicket)], ok = (Ticket, "The ticket."))]
    #[openapi(tag = "support", params(("number" = i64, Path, minimum = 1, description = "Ticket number.")),)]
    #[responses(BadRequest, NotFound, UpstreamErrors)]
    pub(crate) async fn get_ticket(
        number: web::Path<String>,
        slitz: web::Data<SlitzClient>,
        cache: web::Data<ResponseCache>,
    ) -> Result<HttpResponse, ApiError> {
        let number = parse_id("number", &number)?;
        cache
            .serve(
                CacheKey::new(CACHE, number.to_string()),
                || async { Ok::<Ticket, ApiError>(slitz.ticket(number).await?) },
            )
            .await
    }
}
