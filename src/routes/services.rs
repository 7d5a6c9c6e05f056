//! `/v1/services`: hosting, VPS and other services (Slitz `GET /service`,
//! `GET /service/{id}`). Service credentials reach only keys with the
//! `secrets` scope.

use actix_web::{HttpResponse, web};

use std::sync::Arc;

use super::{
    BadRequest, ListQuery, Listing, NotFound, Page, Query, UpstreamErrors, cached_listing, parse_id,
};
use crate::{
    auth::Principal,
    cache::{self, CacheKey, CacheStatus, Cached, ResponseCache},
    error::ApiError,
    model::{Service, ServiceSummary},
    upstream::slitz::SlitzClient,
};

crate::endpoint! {
    /// List services
    ///
    /// Every service of the account, optionally only those with one status, one
    /// page at a time. Cached.
    #[route(get "/v1/services", scopes = [Read], cached = Services, upstream = [Slitz(ListServices)], ok = (Page<ServiceSummary>, "One page of services."))]
    #[openapi(tag = "services", params(ListQuery),)]
    #[responses(BadRequest, UpstreamErrors)]
    pub(crate) async fn list_services(
        query: Query<ListQuery>,
        slitz: web::Data<SlitzClient>,
        cache: web::Data<ResponseCache>,
    ) -> Result<HttpResponse, ApiError> {
        let listing = query.listing();
        let (entry, status) = cached_services(&slitz, &cache, &listing).await?;
        Ok(cache::respond(&entry, status))
    }
}

/// A listing of services, through the cache.
pub(crate) async fn cached_services(
    slitz: &SlitzClient,
    cache: &ResponseCache,
    listing: &Listing,
) -> Result<(Arc<Cached>, CacheStatus), ApiError> {
    cached_listing(
        cache,
        list_services::CACHE,
        listing,
        || slitz.services(),
        |s: &ServiceSummary| s.status.as_deref(),
    )
    .await
}

crate::endpoint! {
    /// One service
    ///
    /// A service with its billing dates. Keys with the `secrets` scope also get
    /// the credentials Slitz stores on it; no other key ever does. Cached, per view.
    #[route(get "/v1/services/{id}", scopes = [Read],
        // With `secrets`, the service's stored credentials are shown.
        widened_by = Secrets, cached = Service, upstream = [Slitz(GetService)], ok = (Service, "The service."))]
    #[openapi(tag = "services", params(("id" = i64, Path, minimum = 1, description = "Service id.")),)]
    #[responses(BadRequest, NotFound, UpstreamErrors)]
    pub(crate) async fn get_service(
        caller: Principal,
        id: web::Path<String>,
        slitz: web::Data<SlitzClient>,
        cache: web::Data<ResponseCache>,
    ) -> Result<HttpResponse, ApiError> {
        let id = parse_id("id", &id)?;
        let with_secrets = ENDPOINT.spec
            .widened_by
            .is_some_and(|scope| caller.has(scope));
        // The view is part of the key: an answer with credentials is never served
        // to a caller without the scope, nor the other way round.
        let view = if with_secrets { "secrets" } else { "plain" };
        let key = CacheKey::new(CACHE, format!("{id}:{view}"));
        cache
            .serve(key, || async {
                let mut service: Service = slitz.service(id).await?;
                if !with_secrets {
                    service.credentials = None;
                }
                Ok::<Service, ApiError>(service)
            })
            .await
    }
}
