//! `/v1/domains`: registered domains and availability (Slitz `GET /domain`,
//! `GET /domain/{id}`, `POST /domainorder/status`).

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use std::sync::Arc;

use super::{
    AuthErrors, BadRequest, ListQuery, Listing, NotFound, Page, UpstreamErrors, cached_listing,
    parse_id,
};
use crate::{
    auth::{Caller, Scope},
    cache::{self, CacheKey, CacheStatus, Cached, ResponseCache, Route},
    error::ApiError,
    model::{Domain, DomainSummary},
    upstream::slitz::SlitzClient,
};

/// Whether a name can be registered.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"name": "lindqvist-konsult.se", "available": true}))]
pub struct Availability {
    /// The name checked, lower-cased.
    pub name: String,
    pub available: bool,
}

/// A registrable domain name: ASCII letters, digits and hyphens in dot-separated
/// labels of 1–63 characters, at most 253 in all, internationalized names in
/// punycode (`xn--`). Returned lower-cased.
pub(crate) fn parse_domain_name(raw: &str) -> Result<String, ApiError> {
    let bad = |message: &str| Err(ApiError::bad_field("name", message));
    if raw.chars().any(char::is_control) {
        return bad("must not contain control characters");
    }
    let name = raw.to_ascii_lowercase();
    if name.is_empty() {
        return bad("is required, e.g. `example.se`");
    }
    if !name.is_ascii() {
        return bad("must be ASCII; send internationalized names in punycode (`xn--…`)");
    }
    if name.len() > 253 {
        return bad("must be at most 253 characters");
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return bad("must have a top-level domain, e.g. `example.se`");
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return bad("must have labels of 1 to 63 characters between the dots");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("may contain only letters, digits, hyphens and dots");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("must not have a label that starts or ends with a hyphen");
        }
    }
    let tld = labels.last().copied().unwrap_or_default();
    if tld.len() < 2
        || !(tld.bytes().all(|b| b.is_ascii_alphabetic())
            || (tld.starts_with("xn--") && tld.len() > 4))
    {
        return bad("must end in a valid top-level domain");
    }
    Ok(name)
}

/// `?name=` of the availability check.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityQuery {
    /// The domain name to check, e.g. `example.se` (IDN in punycode).
    #[param(
        required = true,
        max_length = 253,
        pattern = r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9](?:[A-Za-z0-9-]{0,57}[A-Za-z0-9])?)$",
        example = "lindqvist-konsult.se"
    )]
    name: Option<String>,
}

/// List domains
///
/// Every domain of the account, optionally only those with one status, one
/// page at a time. Cached.
#[utoipa::path(
    tag = "domains",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of domains.", body = Page<DomainSummary>),
        (status = 304, description = "Not modified since the ETag in If-None-Match."),
        BadRequest,
        AuthErrors,
        UpstreamErrors,
    ),
    security(("api_key" = ["read"]))
)]
#[get("/domains")]
pub(crate) async fn list_domains(
    req: HttpRequest,
    caller: Caller,
    query: web::Query<ListQuery>,
    slitz: web::Data<SlitzClient>,
    cache: web::Data<ResponseCache>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    let listing = query.validate()?;
    let (entry, status) = cached_domains(&slitz, &cache, &listing).await?;
    Ok(cache::respond(&req, &entry, status))
}

/// A listing of domains, through the cache.
pub(crate) async fn cached_domains(
    slitz: &SlitzClient,
    cache: &ResponseCache,
    listing: &Listing,
) -> Result<(Arc<Cached>, CacheStatus), ApiError> {
    cached_listing(
        cache,
        Route::Domains,
        listing,
        slitz.domains(),
        |d: &DomainSummary| d.status.as_deref(),
    )
    .await
}

/// One domain
///
/// A domain with its billing dates, WHOIS protection and name servers. Cached.
#[utoipa::path(
    tag = "domains",
    params(("id" = i64, Path, minimum = 1, description = "Domain id.")),
    responses(
        (status = 200, description = "The domain.", body = Domain),
        (status = 304, description = "Not modified since the ETag in If-None-Match."),
        BadRequest,
        NotFound,
        AuthErrors,
        UpstreamErrors,
    ),
    security(("api_key" = ["read"]))
)]
#[get("/domains/{id}")]
pub(crate) async fn get_domain(
    req: HttpRequest,
    caller: Caller,
    id: web::Path<String>,
    slitz: web::Data<SlitzClient>,
    cache: web::Data<ResponseCache>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    let id = parse_id("id", &id)?;
    cache
        .serve(
            &req,
            CacheKey::new(Route::Domain, id.to_string()),
            || async { Ok::<Domain, ApiError>(slitz.domain(id).await?) },
        )
        .await
}

/// Check availability
///
/// Whether a domain name can be registered. Slitz answers an empty body for a
/// taken name; the gateway answers `available: false`. Cached briefly.
#[utoipa::path(
    tag = "domains",
    params(AvailabilityQuery),
    responses(
        (status = 200, description = "Whether the name is free.", body = Availability),
        (status = 304, description = "Not modified since the ETag in If-None-Match."),
        BadRequest,
        AuthErrors,
        UpstreamErrors,
    ),
    security(("api_key" = ["read"]))
)]
#[get("/domains/availability")]
pub(crate) async fn get_availability(
    req: HttpRequest,
    caller: Caller,
    query: web::Query<AvailabilityQuery>,
    slitz: web::Data<SlitzClient>,
    cache: web::Data<ResponseCache>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Scope::Read)?;
    let name = parse_domain_name(query.name.as_deref().unwrap_or_default())?;
    cache
        .serve(
            &req,
            CacheKey::new(Route::Availability, name.clone()),
            || async {
                let available = slitz.domain_available(&name).await?;
                Ok(Availability {
                    name: name.clone(),
                    available,
                })
            },
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_names_are_checked_and_lower_cased() {
        assert_eq!(parse_domain_name("Example.SE").unwrap(), "example.se");
        assert_eq!(
            parse_domain_name("xn--smrgs-wua.se").unwrap(),
            "xn--smrgs-wua.se"
        );
        assert_eq!(parse_domain_name("a-b.co.uk").unwrap(), "a-b.co.uk");
        let long_label = format!("{}.se", "a".repeat(64));
        let too_long = format!("{}.se", vec!["a".repeat(60); 5].join("."));
        for bad in [
            "",
            "se",
            "exa mple.se",
            "smörgås.se",
            "-a.se",
            "a-.se",
            "a..se",
            "a.s",
            "a.123",
            "a\u{0}.se",
            "a\n.se",
            long_label.as_str(),
            too_long.as_str(),
            "a_b.se",
            "../etc.se",
        ] {
            assert!(parse_domain_name(bad).is_err(), "{bad:?}");
        }
    }
}
