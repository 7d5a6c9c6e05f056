//! `/v1/domains`: registered domains and availability (Slitz `GET /domain`,
//! `GET /domain/{id}`, `POST /domainorder/status`).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use std::sync::Arc;

use super::{
    BadRequest, ListQuery, Listing, NotFound, Page, Query, UpstreamErrors, cached_listing, parse_id,
};
use crate::{
    cache::{self, CacheKey, CacheStatus, Cached, ResponseCache},
    domain::{DomainName, Parse},
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

/// `?name=` of the availability check.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityQuery {
    /// The domain name to check, e.g. `example.se` (IDN in punycode).
    #[param(
        required = true,
        max_length = 253,
        pattern = r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,63}|[Xx][Nn]--[A-Za-z0-9](?:[A-Za-z0-9-]{0,57}[A-Za-z0-9])?)$",
        example = "lindqvist-konsult.se"
    )]
    name: Option<String>,
}

impl crate::domain::BodyHints for AvailabilityQuery {}

crate::endpoint! {
    /// List domains
    ///
    /// Every domain of the account, optionally only those with one status, one
    /// page at a time. Cached.
    #[route(get "/v1/domains", scopes = [Read], cached = Domains, upstream = [Slitz(ListDomains)], ok = (Page<DomainSummary>, "One page of domains."))]
    #[openapi(tag = "domains", params(ListQuery),)]
    #[responses(BadRequest, UpstreamErrors)]
    pub(crate) async fn list_domains(
        query: Query<ListQuery>,
        slitz: web::Data<SlitzClient>,
        cache: web::Data<ResponseCache>,
    ) -> Result<HttpResponse, ApiError> {
        let listing = query.listing();
        let (entry, status) = cached_domains(&slitz, &cache, &listing).await?;
        Ok(cache::respond(&entry, status))
    }
}

/// A listing of domains, through the cache.
pub(crate) async fn cached_domains(
    slitz: &SlitzClient,
    cache: &ResponseCache,
    listing: &Listing,
) -> Result<(Arc<Cached>, CacheStatus), ApiError> {
    cached_listing(
        cache,
        list_domains::CACHE,
        listing,
        || slitz.domains(),
        |d: &DomainSummary| d.status.as_deref(),
    )
    .await
}

crate::endpoint! {
    /// One domain
    ///
    /// A domain with its billing dates, WHOIS protection and name servers. Cached.
    #[route(get "/v1/domains/{id}", scopes = [Read], cached = Domain, upstream = [Slitz(GetDomain)], ok = (Domain, "The domain."))]
    #[openapi(tag = "domains", params(("id" = i64, Path, minimum = 1, description = "Domain id.")),)]
    #[responses(BadRequest, NotFound, UpstreamErrors)]
    pub(crate) async fn get_domain(
        id: web::Path<String>,
        slitz: web::Data<SlitzClient>,
        cache: web::Data<ResponseCache>,
    ) -> Result<HttpResponse, ApiError> {
        let id = parse_id("id", &id)?;
        cache
            .serve(
                CacheKey::new(CACHE, id.to_string()),
                || async { Ok::<Domain, ApiError>(slitz.domain(id).await?) },
            )
            .await
    }
}

crate::endpoint! {
    /// Check availability
    ///
    /// Whether a domain name can be registered. Slitz answers an empty body for a
    /// taken name; the gateway answers `available: false`. Cached briefly.
    #[route(get "/v1/domains/availability", scopes = [Read], cached = Availability, upstream = [Slitz(DomainAvailability)], ok = (Availability, "Whether the name is free."))]
    #[openapi(tag = "domains", params(AvailabilityQuery),)]
    #[responses(BadRequest, UpstreamErrors)]
    pub(crate) async fn get_availability(
        query: Query<AvailabilityQuery>,
        slitz: web::Data<SlitzClient>,
        cache: web::Data<ResponseCache>,
    ) -> Result<HttpResponse, ApiError> {
        let name = match query.name.as_deref() {
            None | Some("") => {
                return Err(ApiError::bad_field(
                    "name",
                    "is required, e.g. `example.se`",
                ));
            }
            Some(raw) => DomainName::parse(raw)
                .map_err(|message| ApiError::bad_field("name", message))?
                .as_str()
                .to_owned(),
        };
        cache
            .serve(
                CacheKey::new(CACHE, name.clone()),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameter's schema needs a literal; this keeps it the parser's.
    #[test]
    fn the_documented_name_pattern_is_the_parsers() {
        let doc = crate::openapi::document();
        let params = doc["paths"]["/v1/domains/availability"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let name = params.iter().find(|p| p["name"] == "name").unwrap();
        assert_eq!(name["schema"]["pattern"], DomainName::PATTERN);
        assert_eq!(name["schema"]["maxLength"], DomainName::MAX_CHARS);
    }

    #[test]
    fn domain_names_are_checked_and_lower_cased() {
        assert_eq!(
            DomainName::parse("Example.SE").unwrap().as_str(),
            "example.se"
        );
        assert_eq!(
            DomainName::parse("xn--smrgs-wua.se").unwrap().as_str(),
            "xn--smrgs-wua.se"
        );
        assert_eq!(
            DomainName::parse("a-b.co.uk").unwrap().as_str(),
            "a-b.co.uk"
        );
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
            assert!(DomainName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
