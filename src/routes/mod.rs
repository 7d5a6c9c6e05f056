//! One module per resource. Each handler carries its OpenAPI contract; the
//! `/v1` scope collects them so the document cannot drift from the routes.

pub mod account;
pub mod health;
pub mod metrics;

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{HttpRequest, HttpResponse, http::Method, web};
use utoipa::IntoResponses;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{ApiError, Problem};

/// Every documented route.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(metrics::metrics)
        .service(utoipa_actix_web::scope("/v1").service(account::get_account));
}

/// Which methods each route pattern answers, taken from the OpenAPI
/// document so the `Allow` header of a 405 is always true.
pub struct AllowedMethods(BTreeMap<String, Vec<Method>>);

impl AllowedMethods {
    pub fn from_openapi(api: &utoipa::openapi::OpenApi) -> Self {
        use utoipa::openapi::HttpMethod;
        let mut map = BTreeMap::new();
        for (path, item) in &api.paths.paths {
            let mut methods = BTreeSet::new();
            let ops = [
                (HttpMethod::Get, item.get.is_some()),
                (HttpMethod::Post, item.post.is_some()),
                (HttpMethod::Put, item.put.is_some()),
                (HttpMethod::Patch, item.patch.is_some()),
                (HttpMethod::Delete, item.delete.is_some()),
            ];
            for (method, present) in ops {
                if present {
                    methods.insert(match method {
                        HttpMethod::Get => "GET",
                        HttpMethod::Post => "POST",
                        HttpMethod::Put => "PUT",
                        HttpMethod::Patch => "PATCH",
                        _ => "DELETE",
                    });
                }
            }
            let methods = methods
                .into_iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect();
            map.insert(path.clone(), methods);
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
                .get(&pattern)
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
