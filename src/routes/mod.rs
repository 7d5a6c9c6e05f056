//! One module per resource. Each handler carries its OpenAPI contract; the
//! `/v1` scope collects them so the document cannot drift from the routes.

pub mod account;
pub mod billing;
pub mod customers;
pub mod domains;
pub mod events;
pub mod health;
pub mod login;
pub mod metrics;
pub mod overview;
pub mod registry;
pub mod services;
pub mod support;

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, http::Method, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, IntoResponses, ToSchema};

use std::sync::Arc;

pub mod endpoint;
mod input;

pub use endpoint::Endpoint;

pub(crate) use input::{Query, parse_body};

use crate::{
    cache::{CacheKey, CacheStatus, Cached, ResponseCache, Route},
    error::{ApiError, Problem},
    route_table::RouteSpec,
    upstream::UpstreamError,
};

/// Every endpoint, in the order the document lists them. The server
/// registers them in this order too, fixed paths first ([`configure`]).
pub static ENDPOINTS: [&Endpoint; 28] = [
    &health::healthz::ENDPOINT,
    &health::readyz::ENDPOINT,
    &metrics::metrics::ENDPOINT,
    &account::get_account::ENDPOINT,
    &account::patch_account::ENDPOINT,
    &billing::get_balance::ENDPOINT,
    &billing::list_invoices::ENDPOINT,
    &billing::get_invoice::ENDPOINT,
    &support::list_tickets::ENDPOINT,
    &support::get_ticket::ENDPOINT,
    &domains::get_availability::ENDPOINT,
    &domains::list_domains::ENDPOINT,
    &domains::get_domain::ENDPOINT,
    &services::list_services::ENDPOINT,
    &services::get_service::ENDPOINT,
    &customers::create_customer::ENDPOINT,
    &customers::activate_customer::ENDPOINT,
    &customers::suspend_customer::ENDPOINT,
    &registry::list_customers::ENDPOINT,
    &registry::get_customer::ENDPOINT,
    &registry::list_audit::ENDPOINT,
    &overview::get_overview::ENDPOINT,
    &events::stream_events::ENDPOINT,
    &login::begin_login::ENDPOINT,
    &login::finish_login::ENDPOINT,
    &login::get_session::ENDPOINT,
    &login::logout::ENDPOINT,
    &login::backchannel_logout::ENDPOINT,
];

/// Every route's facts, in the order of [`ENDPOINTS`].
pub fn routes() -> impl Iterator<Item = &'static RouteSpec> {
    ENDPOINTS.iter().map(|endpoint| &endpoint.spec)
}

/// Registers every endpoint, each behind admission: every fixed path
/// before any with a `{parameter}`. The router tries resources in order and
/// matches a pattern with parameters by a regular expression, so a request
/// for a fixed path never pays for the parameterized ones ahead of it; and
/// a fixed path (`/v1/domains/availability`) is never taken for a parameter
/// value (`/v1/domains/{id}`), whatever the order of `ENDPOINTS`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let fixed = |endpoint: &&&Endpoint| !endpoint.spec.path.contains('{');
    for endpoint in ENDPOINTS.iter().filter(fixed) {
        (endpoint.register)(cfg);
    }
    for endpoint in ENDPOINTS.iter().filter(|e| !fixed(e)) {
        (endpoint.register)(cfg);
    }
}

/// Which methods each route pattern answers, from the declarations, so the
/// `Allow` header of a 405 is always true.
pub struct AllowedMethods(BTreeMap<&'static str, Vec<Method>>);

impl AllowedMethods {
    pub fn from_routes() -> Self {
        let mut map: BTreeMap<&'static str, Vec<Method>> = BTreeMap::new();
        for route in routes() {
            let methods = map.entry(route.path).or_default();
            if !methods.contains(&route.method) {
                methods.push(route.method.clone());
            }
        }
        Self(map)
    }
}

/// Unknown paths are a 404 problem; known paths with another method a 405
/// with `Allow`.
pub async fn fallback(req: HttpRequest, allowed: web::Data<AllowedMethods>) -> HttpResponse {
    use actix_web::ResponseError;
    let error = match req.match_pattern() {
        Some(pattern) => ApiError::MethodNotAllowed {
            allow: allowed
                .0
                .get(pattern.as_str())
                .cloned()
                .unwrap_or_else(|| vec![Method::GET]),
        },
        None => ApiError::NotFound(format!("no route answers {}", req.path())),
    };
    error.error_response()
}

/// `/docs` without the slash: Swagger UI lives at `/docs/`.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header(("Location", "/docs/"))
        .finish()
}

/// The errors every authenticated route can answer, documented once.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum AuthErrors {
    /// No valid API key.
    #[response(
        status = 401,
        description = "No valid API key: send `Authorization: Bearer <key>`.",
        content_type = "application/problem+json",
        headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"gateway\"`"))
    )]
    Unauthenticated(Problem),
    /// The key lacks the route's scope.
    #[response(
        status = 403,
        description = "The API key lacks the scope this route needs.",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    /// Over the key's rate.
    #[response(
        status = 429,
        description = "The API key is over its rate (`rate_per_second`, `burst`); retry after `Retry-After` seconds.",
        content_type = "application/problem+json"
    )]
    RateLimited(Problem),
}

/// The errors of a route that calls an upstream.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum UpstreamErrors {
    #[response(
        status = 502,
        description = "The upstream failed, sent an unreadable answer, or rejected the gateway's own credentials (`upstream` names it).",
        content_type = "application/problem+json"
    )]
    BadGateway(Problem),
    #[response(
        status = 503,
        description = "The upstream cannot be reached.",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem),
    #[response(
        status = 504,
        description = "The upstream did not answer within the configured timeout.",
        content_type = "application/problem+json"
    )]
    Timeout(Problem),
}

/// One listing of a Slitz list route, through the cache: fetch the whole
/// list (only on a miss), filter by status, cut the page.
pub(crate) async fn cached_listing<T, Fut>(
    cache: &ResponseCache,
    route: Route,
    listing: &Listing,
    fetch: impl FnOnce() -> Fut,
    status_of: impl Fn(&T) -> Option<&str>,
) -> Result<(Arc<Cached>, CacheStatus), ApiError>
where
    T: Serialize,
    Fut: Future<Output = Result<Vec<T>, UpstreamError>>,
{
    // `fetch` makes the upstream call's future only on a miss: a hit never
    // builds (or moves) it.
    cache
        .get_or_load(CacheKey::new(route, listing.key()), || async {
            Ok(listing.apply(fetch().await?, status_of))
        })
        .await
}

/// A numeric path id: ASCII digits only, at least 1, at most `i64::MAX`.
/// Anything else (`abc`, `-1`, `1e9999`, 20 digits, `..%2F`) is a 400 that
/// never reaches an upstream.
pub(crate) fn parse_id(field: &str, raw: &str) -> Result<i64, ApiError> {
    let message = "must be a positive integer (1 to 9223372036854775807)";
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_field(field, message));
    }
    match raw.parse::<i64>() {
        Ok(id) if id >= 1 => Ok(id),
        _ => Err(ApiError::bad_field(field, message)),
    }
}

/// Default and largest page sizes of every list.
pub const DEFAULT_PER_PAGE: u32 = 25;
pub const MAX_PER_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1_000_000;

/// `?page=&per_page=&status=` of every list. Each parameter parses itself,
/// so every bad one is named in one 400, never a framework message.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page to return, from 1.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000000, default = 1)]
    page: Option<Count<MAX_PAGE>>,
    /// Items per page.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 25)]
    per_page: Option<Count<MAX_PER_PAGE>>,
    /// Only items with this status (snake_case, as in the answers, e.g. `unpaid`).
    #[param(value_type = Option<String>, pattern = "^[a-z0-9_]{1,40}$", max_length = 40)]
    status: Option<StatusFilter>,
}

impl crate::domain::BodyHints for ListQuery {}

/// A whole number from 1 to `MAX`, in ASCII digits only.
#[derive(Debug, Clone, Copy)]
pub struct Count<const MAX: u32>(u32);

impl<const MAX: u32> Count<MAX> {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de, const MAX: u32> Deserialize<'de> for Count<MAX> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX).contains(n) && text.bytes().all(|b| b.is_ascii_digit()))
            .map(Self)
            .ok_or_else(|| serde::de::Error::custom(format!("must be an integer from 1 to {MAX}")))
    }
}

/// A snake_case status to filter by: a-z, 0-9 and `_`, 1 to 40 of them.
#[derive(Debug, Clone)]
pub struct StatusFilter(String);

impl<'de> Deserialize<'de> for StatusFilter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if (1..=40).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            Ok(Self(s))
        } else {
            Err(serde::de::Error::custom(
                "must be a snake_case status such as `unpaid` (a-z, 0-9, _; at most 40)",
            ))
        }
    }
}

/// A [`ListQuery`], read.
#[derive(Debug, Clone)]
pub struct Listing {
    pub page: u32,
    pub per_page: u32,
    pub status: Option<String>,
}

impl ListQuery {
    pub fn listing(&self) -> Listing {
        Listing {
            page: self.page.map_or(1, |c| c.0),
            per_page: self.per_page.map_or(DEFAULT_PER_PAGE, |c| c.0),
            status: self.status.as_ref().map(|s| s.0.clone()),
        }
    }
}

impl Listing {
    /// Every item, unfiltered: what the overview reads.
    pub fn all() -> Self {
        Self {
            page: 1,
            per_page: u32::MAX,
            status: None,
        }
    }

    /// The part of a cache key that tells one listing from another.
    pub fn key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.page,
            self.per_page,
            self.status.as_deref().unwrap_or("")
        )
    }

    /// Filters by status, then cuts out the page.
    pub fn apply<T>(&self, items: Vec<T>, status_of: impl Fn(&T) -> Option<&str>) -> Page<T> {
        let filtered: Vec<T> = match &self.status {
            None => items,
            Some(wanted) => items
                .into_iter()
                .filter(|i| status_of(i) == Some(wanted.as_str()))
                .collect(),
        };
        let total = filtered.len();
        let start = (self.page as usize)
            .saturating_sub(1)
            .saturating_mul(self.per_page as usize);
        let items = filtered
            .into_iter()
            .skip(start)
            .take(self.per_page as usize)
            .collect();
        Page {
            items,
            total,
            page: self.page,
            per_page: self.per_page,
        }
    }
}

/// One page of a list. The gateway pages; the upstream returns everything.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Items across all pages (after the status filter).
    pub total: usize,
    pub page: u32,
    pub per_page: u32,
}

/// The 400 of routes with parameters.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BadRequest {
    #[response(
        status = 400,
        description = "A parameter is not valid; `errors` names it. Nothing was sent upstream.",
        content_type = "application/problem+json"
    )]
    Invalid(Problem),
}

/// The 404 of routes reading one record.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum NotFound {
    #[response(
        status = 404,
        description = "Slitz has no such record.",
        content_type = "application/problem+json"
    )]
    Missing(Problem),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_integers_in_range() {
        assert_eq!(parse_id("id", "548").unwrap(), 548);
        assert_eq!(parse_id("id", "9223372036854775807").unwrap(), i64::MAX);
        for bad in [
            "",
            "abc",
            "-1",
            "0",
            "1e9999",
            "9223372036854775808",
            "12345678901234567890",
            "../",
            "+5",
            " 5",
            "5.0",
        ] {
            assert!(parse_id("id", bad).is_err(), "{bad}");
        }
    }

    fn read_listing(raw: &str) -> Result<Listing, Vec<String>> {
        match input::parse_query::<ListQuery>(raw) {
            Ok(q) => Ok(q.listing()),
            Err(ApiError::BadRequest { errors, .. }) => {
                Err(errors.into_iter().map(|e| e.field).collect())
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn listing_pages_and_filters() {
        let listing = read_listing("page=2&per_page=2&status=unpaid").unwrap();
        let items = vec![
            ("a", "unpaid"),
            ("b", "paid"),
            ("c", "unpaid"),
            ("d", "unpaid"),
            ("e", "unpaid"),
        ];
        let page = listing.apply(items, |i| Some(i.1));
        assert_eq!(page.total, 4);
        assert_eq!(
            page.items.iter().map(|i| i.0).collect::<Vec<_>>(),
            vec!["d", "e"]
        );
        let defaults = read_listing("").unwrap();
        assert_eq!((defaults.page, defaults.per_page), (1, DEFAULT_PER_PAGE));
    }

    #[test]
    fn bad_listing_parameters_name_themselves_all_at_once() {
        for (raw, fields) in [
            ("page=0", vec!["page"]),
            ("page=x", vec!["page"]),
            ("per_page=101", vec!["per_page"]),
            ("per_page=-1", vec!["per_page"]),
            ("status=Unpaid", vec!["status"]),
            ("status=", vec!["status"]),
            (
                "page=0&per_page=0&status=X",
                vec!["page", "per_page", "status"],
            ),
        ] {
            let mut found = read_listing(raw).unwrap_err();
            found.sort();
            assert_eq!(found, fields, "{raw}");
        }
    }

    proptest::proptest! {
        /// For any subset of a list's parameters made invalid, and any
        /// unknown ones added, the 400 names exactly those parameters.
        #[test]
        fn a_400_names_exactly_the_parameters_made_invalid(
            mask in 0_u8..8,
            page in proptest::sample::select(vec!["0", "x", "1000001", "-1", "1.5", "", "٣"]),
            per_page in proptest::sample::select(vec!["0", "101", "abc", " 5", "+5"]),
            status in proptest::sample::select(vec!["Unpaid", "", "a b", "é", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]),
            unknown in proptest::collection::btree_set("[a-z]{1,6}z", 0..3),
        ) {
            let mut query = vec![
                format!("page={}", if mask & 1 != 0 { page } else { "2" }),
                format!("per_page={}", if mask & 2 != 0 { per_page } else { "10" }),
                format!("status={}", if mask & 4 != 0 { status } else { "unpaid" }),
            ];
            let mut expected: Vec<String> = ["page", "per_page", "status"]
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, n)| (*n).to_owned())
                .collect();
            for name in &unknown {
                query.push(format!("{name}=1"));
                expected.push(name.clone());
            }
            expected.sort();
            let raw = query
                .iter()
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    format!("{k}={}", url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>())
                })
                .collect::<Vec<_>>()
                .join("&");
            match read_listing(&raw) {
                Ok(_) => proptest::prop_assert!(expected.is_empty(), "{raw}"),
                Err(mut named) => {
                    named.sort();
                    proptest::prop_assert_eq!(named, expected, "{}", raw);
                }
            }
        }
    }
}
