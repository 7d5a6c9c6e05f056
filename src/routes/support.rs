//! `/v1/support/tickets`: support tickets and their replies (Slitz
//! `GET /tickets`, `GET /tickets/{number}`).

use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono::{DateTime, FixedOffset};
use chrono_tz::Tz;
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
    normalize::{NormalizeError, opt_rfc3339},
    upstream::slitz::{self, SlitzClient},
};

/// A ticket as listed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "number": 437928, "subject": "Mail stops arriving after 18:00", "status": "open",
    "department": "Support Tickets", "created_at": "2026-11-21T12:01:45+01:00", "read_by_client": true
}))]
pub struct TicketSummary {
    /// The ticket number (upstream `ticket_number`); the id of the ticket routes.
    pub number: i64,
    pub subject: Option<String>,
    /// `open`, `answered`, `customer_reply`, `closed`, …
    pub status: Option<String>,
    /// Department (upstream `deptname`).
    pub department: Option<String>,
    /// When it was opened (upstream `date`).
    #[serde(serialize_with = "opt_rfc3339")]
    pub created_at: Option<DateTime<FixedOffset>>,
    /// Whether the client has read the latest reply (upstream `client_read`).
    pub read_by_client: Option<bool>,
}

/// One message in a ticket.
#[derive(Debug, Serialize, ToSchema)]
pub struct TicketReply {
    pub id: i64,
    /// Who wrote it (upstream `name`).
    pub author: Option<String>,
    /// `admin` (staff) or `client` (upstream `type`).
    pub author_type: Option<String>,
    #[serde(serialize_with = "opt_rfc3339")]
    pub created_at: Option<DateTime<FixedOffset>>,
    pub body: Option<String>,
    /// Delivery status, e.g. `sent`.
    pub status: Option<String>,
}

/// A ticket with every reply, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "number": 437928, "subject": "Mail stops arriving after 18:00", "status": "open",
    "department": "Support Tickets", "created_at": "2026-11-21T12:01:45+01:00", "read_by_client": true,
    "name": "Anna Lindqvist", "email": "anna.lindqvist@example.se",
    "replies": [{"id": 57, "author": "Anna Lindqvist", "author_type": "client",
                 "created_at": "2026-11-21T12:01:45+01:00", "body": "Since Monday no mail arrives after 18:00.",
                 "status": "sent"}]
}))]
pub struct Ticket {
    #[serde(flatten)]
    pub summary: TicketSummary,
    /// Who opened it.
    pub name: Option<String>,
    pub email: Option<String>,
    pub replies: Vec<TicketReply>,
}

impl TicketSummary {
    fn from_slitz(t: &slitz::TicketSummary, zone: Tz) -> Result<Self, NormalizeError> {
        Ok(Self {
            number: t.ticket_number.id("ticket_number")?,
            subject: t.subject.text(),
            status: t.status.status(),
            department: t.deptname.text(),
            created_at: t.date.datetime("date", zone)?,
            read_by_client: t.client_read.flag("client_read")?,
        })
    }
}

impl Ticket {
    fn from_slitz(
        t: slitz::TicketDetail,
        replies: Vec<slitz::TicketReply>,
        zone: Tz,
    ) -> Result<Self, NormalizeError> {
        let summary = TicketSummary::from_slitz(
            &slitz::TicketSummary {
                client_read: t.client_read.clone(),
                ticket_number: t.ticket_number.clone(),
                date: t.date.clone(),
                deptname: t.deptname.clone(),
                subject: t.subject.clone(),
                status: t.status.clone(),
            },
            zone,
        )?;
        let replies = replies
            .iter()
            .map(|r| {
                Ok(TicketReply {
                    id: r.id.id("replies.id")?,
                    author: r.name.text(),
                    author_type: r.reply_type.status(),
                    created_at: r.date.datetime("replies.date", zone)?,
                    body: r.body.text(),
                    status: r.status.status(),
                })
            })
            .collect::<Result<Vec<_>, NormalizeError>>()?;
        Ok(Self {
            summary,
            name: t.name.text(),
            email: t.email.text(),
            replies,
        })
    }
}

/// List support tickets
///
/// Every ticket of the account, optionally only those with one status, one
/// page at a time. Cached.
#[utoipa::path(
    tag = "support",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of tickets.", body = Page<TicketSummary>),
        (status = 304, description = "Not modified since the ETag in If-None-Match."),
        BadRequest,
        AuthErrors,
        UpstreamErrors,
    ),
    security(("api_key" = ["read"]))
)]
#[get("/support/tickets")]
pub(crate) async fn list_tickets(
    req: HttpRequest,
    caller: Caller,
    query: web::Query<ListQuery>,
    slitz: web::Data<SlitzClient>,
    cache: web::Data<ResponseCache>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    let listing = query.validate()?;
    let (entry, status) = cached_tickets(&slitz, &cache, &listing).await?;
    Ok(cache::respond(&req, &entry, status))
}

/// A listing of tickets, through the cache.
pub(crate) async fn cached_tickets(
    slitz: &SlitzClient,
    cache: &ResponseCache,
    listing: &Listing,
) -> Result<(Arc<Cached>, CacheStatus), ApiError> {
    let normalize = |t: &_| TicketSummary::from_slitz(t, slitz.zone());
    cached_listing(
        cache,
        Route::Tickets,
        listing,
        slitz.tickets(),
        normalize,
        |t| t.status.as_deref(),
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
        (status = 304, description = "Not modified since the ETag in If-None-Match."),
        BadRequest,
        NotFound,
        AuthErrors,
        UpstreamErrors,
    ),
    security(("api_key" = ["read"]))
)]
#[get("/support/tickets/{number}")]
pub(crate) async fn get_ticket(
    req: HttpRequest,
    caller: Caller,
    number: web::Path<String>,
    slitz: web::Data<SlitzClient>,
    cache: web::Data<ResponseCache>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    let number = parse_id("number", &number)?;
    cache
        .serve(
            &req,
            CacheKey::new(Route::Ticket, number.to_string()),
            || async {
                let (ticket, replies) = slitz.ticket(number).await?;
                Ticket::from_slitz(ticket, replies, slitz.zone()).map_err(slitz_malformed)
            },
        )
        .await
}
