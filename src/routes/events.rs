//! `GET /v1/events`: the change stream (Server-Sent Events).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{BadRequest, Query};
use crate::{
    auth::Principal,
    cache::ResponseCache,
    error::{ApiError, Problem},
    events::{EventHub, TypeFilter, watcher},
    upstream::slitz::SlitzClient,
};

/// `?types=` of the stream.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only these event types, comma-separated: a type (`ticket.updated`),
    /// every type of a resource (`invoice.*`), or `*`. Left out: every type.
    #[param(value_type = Option<String>, example = "invoice.*,ticket.updated", max_length = 400)]
    types: Option<TypeFilter>,
}

impl crate::domain::BodyHints for EventsQuery {}

crate::endpoint! {
    /// Follow changes
    ///
    /// A Server-Sent Events stream of changes: customers created, activated or
    /// suspended and the account changed through the gateway, and invoices,
    /// tickets, services and domains that appeared or changed in Slitz (read
    /// every `events.poll_seconds` while anyone follows). Each event has an
    /// `id`, an `event` type and JSON `data`: `{"type", "id" (the resource's
    /// id), "changed" (each changed field with its new value; every field for
    /// `*.created`), "seen_at"}`. A comment line comes every
    /// `events.heartbeat_seconds` on an idle stream. Send `Last-Event-ID` when
    /// reconnecting to get what was missed; an id that cannot be replayed (too
    /// old, or from before a restart) gets an `event: reset`: refetch what you
    /// show, then follow. A reader that falls too far behind gets a `reset` and
    /// the stream ends. Browsers' `EventSource` cannot send the API key: read it
    /// with `fetch` (the client package's `subscribe()`).
    #[route(get "/v1/events", scopes = [Read],
        // The watcher's reads, while the stream is open.
        upstream = [
            Slitz(ListInvoices),
            Slitz(ListTickets),
            Slitz(ListDomains),
            Slitz(ListServices),
        ],
        // A change the watcher sees is forgotten from the cache as it is
        // published, so a subscriber that refetches reads it.
        invalidates = [Invoices, Invoice, Tickets, Ticket, Domains, Domain, Services, Service])]
    #[openapi(tag = "events", params(
        EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "The `id` of the last event received, to resume after it."),
    ),)]
    #[responses((status = 200, description = "The stream: `retry:`, then events and heartbeats until the gateway shuts down.",
         content_type = "text/event-stream", body = String), BadRequest, (status = 429, description = "The API key holds `events.max_subscribers_per_key` streams already, or is over its rate (type `urn:gateway:problem:rate-limited`; the detail says which). Retry after `Retry-After` seconds.",
         body = Problem, content_type = "application/problem+json", headers(("Retry-After" = String))))]
    pub(crate) async fn stream_events(
        req: HttpRequest,
        caller: Principal,
        query: Query<EventsQuery>,
        hub: web::Data<EventHub>,
        slitz: web::Data<SlitzClient>,
        cache: web::Data<ResponseCache>,
    ) -> Result<HttpResponse, ApiError> {
        let last = req
            .headers()
            .get("last-event-id")
            .and_then(|v| v.to_str().ok());
        let filter = query.0.types.unwrap_or_else(TypeFilter::all);
        let hub = hub.into_inner();
        let subscription = hub.subscribe(&caller.name, last, filter).await?;
        watcher::ensure_running(&hub, &slitz.into_inner(), &cache.into_inner());
        let frames = futures_util::stream::unfold(subscription, |mut subscription| async move {
            let frame = subscription.next_frame().await?;
            Some((Ok::<_, actix_web::Error>(frame), subscription))
        });
        Ok(HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("Cache-Control", "no-cache"))
            // nginx: pass it on as it comes, unbuffered.
            .insert_header(("X-Accel-Buffering", "no"))
            .streaming(frames))
    }
}
