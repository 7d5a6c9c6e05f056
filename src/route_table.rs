//! The route table: every route the gateway serves, declared once with the
//! facts the rest of the code needs about it. Its users:
//!
//! - the `Caller` extractor enforces [`RouteSpec::scopes`] (a handler
//!   never checks a scope itself);
//! - the OpenAPI document's `security` entries, and the `304` answer and
//!   `ETag` / `X-Cache` / `Cache-Control` headers of cached reads, are
//!   written from it (`openapi`);
//! - a write forgets the cached routes in [`RouteSpec::invalidates`];
//! - the `route` label of the request metrics is [`RouteSpec::path`].
//!
//! A route is found by its handler's name: the web framework names each
//! resource after its handler (`HttpRequest::match_name`), and utoipa uses the same name
//! as the OpenAPI `operationId`. Tests walk this table against the served
//! document and provoke every route with a key that lacks its scope.
//!
//! A leaf: it names configuration's enums and nothing else.

use crate::configuration::{Route as Cached, Scope, Upstream};

/// One route.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// The handler's name: the server's resource name and the OpenAPI operationId.
    pub name: &'static str,
    pub method: &'static str,
    /// The full path template, as in the OpenAPI document.
    pub path: &'static str,
    /// Every scope a key needs; empty for the operational routes, which take no key.
    pub scopes: &'static [Scope],
    /// A scope that widens the answer (more fields) when the key has it.
    pub widened_by: Option<Scope>,
    /// The cache route its answers are kept under, if it is a cached read.
    pub cached: Option<Cached>,
    /// The upstream operations it calls (as in each client's `OPERATIONS`).
    pub upstream: &'static [(Upstream, &'static str)],
    /// The cached routes whose answers its success changes.
    pub invalidates: &'static [Cached],
}

impl RouteSpec {
    /// Whether the route takes an API key.
    pub fn keyed(&self) -> bool {
        !self.scopes.is_empty()
    }
}

const fn operational(name: &'static str, path: &'static str) -> RouteSpec {
    RouteSpec {
        name,
        method: "GET",
        path,
        scopes: &[],
        widened_by: None,
        cached: None,
        upstream: &[],
        invalidates: &[],
    }
}

/// A cached Slitz read behind the `read` scope.
const fn slitz_read(
    name: &'static str,
    path: &'static str,
    cached: Cached,
    operation: &'static [(Upstream, &'static str)],
) -> RouteSpec {
    RouteSpec {
        name,
        method: "GET",
        path,
        scopes: &[Scope::Read],
        widened_by: None,
        cached: Some(cached),
        upstream: operation,
        invalidates: &[],
    }
}

const DNA_STATUS_CHANGE: &[(Upstream, &str)] = &[
    (Upstream::Dna, "POST /oauth/token"),
    (Upstream::Dna, "POST /residential/client/{id}/{action}"),
];

pub const HEALTHZ: RouteSpec = operational("healthz", "/healthz");
pub const READYZ: RouteSpec = operational("readyz", "/readyz");
pub const METRICS: RouteSpec = operational("metrics", "/metrics");
pub const GET_ACCOUNT: RouteSpec = slitz_read(
    "get_account",
    "/v1/account",
    Cached::Account,
    &[(Upstream::Slitz, "GET /details")],
);
pub const PATCH_ACCOUNT: RouteSpec = RouteSpec {
    name: "patch_account",
    method: "PATCH",
    path: "/v1/account",
    scopes: &[Scope::Write],
    widened_by: None,
    cached: None,
    upstream: &[
        (Upstream::Slitz, "GET /details"),
        (Upstream::Slitz, "POST /details"),
    ],
    // The account, and the invoices that embed it.
    invalidates: &[Cached::Account, Cached::Invoice],
};
pub const GET_BALANCE: RouteSpec = slitz_read(
    "get_balance",
    "/v1/billing/balance",
    Cached::Balance,
    &[(Upstream::Slitz, "GET /balance")],
);
pub const LIST_INVOICES: RouteSpec = slitz_read(
    "list_invoices",
    "/v1/billing/invoices",
    Cached::Invoices,
    &[(Upstream::Slitz, "GET /invoice")],
);
pub const GET_INVOICE: RouteSpec = slitz_read(
    "get_invoice",
    "/v1/billing/invoices/{id}",
    Cached::Invoice,
    &[(Upstream::Slitz, "GET /invoice/{id}")],
);
pub const LIST_TICKETS: RouteSpec = slitz_read(
    "list_tickets",
    "/v1/support/tickets",
    Cached::Tickets,
    &[(Upstream::Slitz, "GET /tickets")],
);
pub const GET_TICKET: RouteSpec = slitz_read(
    "get_ticket",
    "/v1/support/tickets/{number}",
    Cached::Ticket,
    &[(Upstream::Slitz, "GET /tickets/{number}")],
);
pub const GET_AVAILABILITY: RouteSpec = slitz_read(
    "get_availability",
    "/v1/domains/availability",
    Cached::Availability,
    &[(Upstream::Slitz, "POST /domainorder/status")],
);
pub const LIST_DOMAINS: RouteSpec = slitz_read(
    "list_domains",
    "/v1/domains",
    Cached::Domains,
    &[(Upstream::Slitz, "GET /domain")],
);
pub const GET_DOMAIN: RouteSpec = slitz_read(
    "get_domain",
    "/v1/domains/{id}",
    Cached::Domain,
    &[(Upstream::Slitz, "GET /domain/{id}")],
);
pub const LIST_SERVICES: RouteSpec = slitz_read(
    "list_services",
    "/v1/services",
    Cached::Services,
    &[(Upstream::Slitz, "GET /service")],
);
pub const GET_SERVICE: RouteSpec = RouteSpec {
    // With `secrets`, the service's stored credentials are shown.
    widened_by: Some(Scope::Secrets),
    ..slitz_read(
        "get_service",
        "/v1/services/{id}",
        Cached::Service,
        &[(Upstream::Slitz, "GET /service/{id}")],
    )
};
pub const CREATE_CUSTOMER: RouteSpec = RouteSpec {
    name: "create_customer",
    method: "POST",
    path: "/v1/customers",
    scopes: &[Scope::Write],
    widened_by: None,
    cached: None,
    upstream: &[
        (Upstream::Dna, "POST /oauth/token"),
        (Upstream::Dna, "POST /residential/client"),
    ],
    invalidates: &[],
};
pub const ACTIVATE_CUSTOMER: RouteSpec = RouteSpec {
    name: "activate_customer",
    path: "/v1/customers/{id}/activate",
    upstream: DNA_STATUS_CHANGE,
    ..CREATE_CUSTOMER
};
pub const SUSPEND_CUSTOMER: RouteSpec = RouteSpec {
    name: "suspend_customer",
    path: "/v1/customers/{id}/suspend",
    upstream: DNA_STATUS_CHANGE,
    ..CREATE_CUSTOMER
};
pub const GET_OVERVIEW: RouteSpec = RouteSpec {
    name: "get_overview",
    method: "GET",
    path: "/v1/overview",
    scopes: &[Scope::Read],
    widened_by: None,
    // Assembled from the cached routes below, each under its own entry.
    cached: None,
    upstream: &[
        (Upstream::Slitz, "GET /details"),
        (Upstream::Slitz, "GET /balance"),
        (Upstream::Slitz, "GET /invoice"),
        (Upstream::Slitz, "GET /tickets"),
        (Upstream::Slitz, "GET /domain"),
        (Upstream::Slitz, "GET /service"),
    ],
    invalidates: &[],
};

pub const STREAM_EVENTS: RouteSpec = RouteSpec {
    name: "stream_events",
    method: "GET",
    path: "/v1/events",
    scopes: &[Scope::Read],
    widened_by: None,
    cached: None,
    // The watcher's reads, while the stream is open.
    upstream: &[
        (Upstream::Slitz, "GET /invoice"),
        (Upstream::Slitz, "GET /tickets"),
        (Upstream::Slitz, "GET /domain"),
        (Upstream::Slitz, "GET /service"),
    ],
    // A change the watcher sees is forgotten from the cache as it is
    // published, so a subscriber that refetches reads it.
    invalidates: &[
        Cached::Invoices,
        Cached::Invoice,
        Cached::Tickets,
        Cached::Ticket,
        Cached::Domains,
        Cached::Domain,
        Cached::Services,
        Cached::Service,
    ],
};

/// Every route, in the order the server registers them.
pub const ROUTES: &[RouteSpec] = &[
    HEALTHZ,
    READYZ,
    METRICS,
    GET_ACCOUNT,
    PATCH_ACCOUNT,
    GET_BALANCE,
    LIST_INVOICES,
    GET_INVOICE,
    LIST_TICKETS,
    GET_TICKET,
    // Before `/domains/{id}`, which would otherwise claim "availability".
    GET_AVAILABILITY,
    LIST_DOMAINS,
    GET_DOMAIN,
    LIST_SERVICES,
    GET_SERVICE,
    CREATE_CUSTOMER,
    ACTIVATE_CUSTOMER,
    SUSPEND_CUSTOMER,
    GET_OVERVIEW,
    STREAM_EVENTS,
];

/// For each cached route (by its place in `Route::ALL`), whether some
/// route's success changes its answers. Worked out once, at compile time:
/// the cache asks on every hit.
#[allow(
    clippy::indexing_slicing,
    reason = "evaluated at compile time: an index out of bounds fails the build"
)]
const WRITTEN: [bool; Cached::ALL.len()] = {
    let mut written = [false; Cached::ALL.len()];
    let mut i = 0;
    while i < ROUTES.len() {
        let invalidates = ROUTES[i].invalidates;
        let mut j = 0;
        while j < invalidates.len() {
            written[invalidates[j] as usize] = true;
            j += 1;
        }
        i += 1;
    }
    written
};

/// Whether a write through the gateway can change `route`'s answers.
pub fn written(route: Cached) -> bool {
    WRITTEN.get(route as usize).copied().unwrap_or(true)
}

/// The route whose handler is `name`.
pub fn by_name(name: &str) -> Option<&'static RouteSpec> {
    ROUTES.iter().find(|route| route.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_method_and_path_identify_a_route() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert_ne!(a.name, b.name);
                assert!((a.method, a.path) != (b.method, b.path), "{}", a.name);
            }
        }
    }

    #[test]
    fn the_written_routes_are_those_some_route_invalidates() {
        for (i, route) in Cached::ALL.into_iter().enumerate() {
            assert_eq!(route as usize, i, "Route::ALL is in declaration order");
            let invalidated = ROUTES.iter().any(|r| r.invalidates.contains(&route));
            assert_eq!(written(route), invalidated, "{route:?}");
        }
        assert!(written(Cached::Account) && !written(Cached::Balance));
    }

    #[test]
    fn every_cached_read_names_its_one_upstream_operation() {
        for route in ROUTES.iter().filter(|r| r.cached.is_some()) {
            assert_eq!(route.upstream.len(), 1, "{}", route.name);
        }
    }
}
