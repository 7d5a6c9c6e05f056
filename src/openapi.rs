//! The OpenAPI document: collected from the handlers' `#[utoipa::path]`
//! attributes through the same `routes::configure` the server uses.

use actix_web::App;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_actix_web::AppExt;

use crate::{
    error::{FieldError, Problem},
    normalize::Money,
    routes,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Unified gateway API",
        description = "One normalized API in front of the Nexogy DNA API (residential VoIP customers) \
and the Internetport Slitz client area (account, billing, support, domains, services).\n\n\
Authenticate with `Authorization: Bearer <api key>` (the sandbox accepts `sandbox-key`). \
Field names are snake_case, dates `YYYY-MM-DD`, date-times RFC 3339 with an offset, money \
`{\"amount\":\"58.50\",\"currency\":\"SEK\"}`. Every error is `application/problem+json` \
with a `request_id`; every response carries `X-Request-Id`."
    ),
    modifiers(&BearerAuth),
    components(schemas(Problem, FieldError, Money)),
    tags(
        (name = "account", description = "The client-area account (Slitz)."),
        (name = "billing", description = "Balance and invoices (Slitz)."),
        (name = "support", description = "Support tickets and replies (Slitz)."),
        (name = "domains", description = "Registered domains and availability (Slitz)."),
        (name = "services", description = "Hosting, VPS and other services (Slitz)."),
        (name = "overview", description = "One call for a dashboard, across every Slitz source."),
        (name = "customers", description = "Residential VoIP customers (DNA). The gateway holds and refreshes the DNA token."),
        (name = "operations", description = "Health and readiness, for orchestrators; no API key needed."),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key issued by the gateway's operators. Scopes: `read`, `write`, `secrets`. \
                         In the sandbox: `sandbox-key` (every scope).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The complete document, as served at `/openapi.json` and printed by `gateway openapi`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes::configure)
        .split_for_parts();
    api
}
