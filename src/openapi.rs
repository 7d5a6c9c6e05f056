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

/// The complete document, as served at `/openapi.json` and printed by
/// `gateway openapi`: utoipa's, plus what its attributes cannot say.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(openapi()).unwrap_or_default();
    contract_fixups(&mut doc);
    doc
}

/// The document as `gateway openapi` prints it and `openapi/openapi.json` holds it.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// JSON Schema keywords and response headers that utoipa's attributes do not
/// express, added to the generated document:
/// - `PATCH /v1/account` needs at least one field (`minProperties`; utoipa
///   5.5 writes its `min_properties` attribute as `maxProperties`);
/// - a billing address and zipcode come together (`dependentRequired`);
/// - every answer carries `X-Request-Id`; 409s, 429s and 503s say `Retry-After`;
/// - cached reads (those documenting a 304) carry `X-Cache`, `ETag` and
///   `Cache-Control` on their 200.
fn contract_fixups(doc: &mut serde_json::Value) {
    use serde_json::json;
    for schema in ["AccountChanges", "NewCustomer"] {
        if let Some(properties) = doc
            .pointer_mut(&format!("/components/schemas/{schema}/properties"))
            .and_then(|p| p.as_object_mut())
        {
            properties.values_mut().for_each(unwrap_single_one_of);
        }
    }
    let mut add = |schema: &str, keyword: &str, value: serde_json::Value| {
        if let Some(fields) = doc
            .pointer_mut(&format!("/components/schemas/{schema}"))
            .and_then(|s| s.as_object_mut())
        {
            fields.insert(keyword.to_owned(), value);
        }
    };
    add("AccountChanges", "minProperties", json!(1));
    add(
        "NewCustomer",
        "dependentRequired",
        json!({
            "billing_address": ["billing_zipcode"],
            "billing_zipcode": ["billing_address"]
        }),
    );
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(operations) = item.as_object_mut() else {
            continue;
        };
        for operation in operations.values_mut() {
            // Answers to a key carry its rate-limit budget.
            let keyed = operation.get("security").is_some();
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(|r| r.as_object_mut())
            else {
                continue;
            };
            let cached = responses.contains_key("304");
            for (status, response) in responses.iter_mut() {
                let headers = response
                    .as_object_mut()
                    .map(|r| r.entry("headers").or_insert_with(|| json!({})));
                let Some(headers) = headers.and_then(|h| h.as_object_mut()) else {
                    continue;
                };
                headers.insert(
                    "X-Request-Id".into(),
                    json!({
                        "description": "The request's id: the caller's own when it sent a plain one (at most 128 of A-Za-z0-9-_.:), else a new UUID. Quote it when reporting a problem.",
                        "schema": {"type": "string"}
                    }),
                );
                if cached && status == "200" {
                    headers.insert(
                        "X-Cache".into(),
                        json!({"description": "HIT (from cache), MISS (fetched now) or STALE (Slitz failed; an expired answer within cache.stale_seconds)", "schema": {"type": "string", "enum": ["HIT", "MISS", "STALE"]}}),
                    );
                    headers.insert(
                        "ETag".into(),
                        json!({"description": "Strong validator of the answer; send it back in If-None-Match for a 304.", "schema": {"type": "string"}}),
                    );
                    headers.insert(
                        "Cache-Control".into(),
                        json!({"description": "private, max-age = seconds the answer stays fresh (0 when STALE).", "schema": {"type": "string"}}),
                    );
                }
                if keyed && status != "401" {
                    headers.insert(
                        "RateLimit-Policy".into(),
                        json!({
                            "description": "Only for a key with `rate_per_second`: its quota policy (draft-ietf-httpapi-ratelimit-headers), e.g. `\"per-key\";q=20;w=2`: a burst of q requests, refilled over w seconds.",
                            "schema": {"type": "string"}
                        }),
                    );
                    headers.insert(
                        "RateLimit".into(),
                        json!({
                            "description": "Only for a key with `rate_per_second`: where it stands now, e.g. `\"per-key\";r=19;t=1`: r requests may be sent at once, and the whole burst is back after t seconds. With `[redis]`, counted for all instances together.",
                            "schema": {"type": "string"}
                        }),
                    );
                }
                if status == "304" {
                    headers.insert(
                        "ETag".into(),
                        json!({"description": "The validator that matched.", "schema": {"type": "string"}}),
                    );
                }
                if status == "409" || status == "429" || status == "503" {
                    headers.insert(
                        "Retry-After".into(),
                        json!({
                            "description": "Seconds to wait before retrying, when known.",
                            "schema": {"type": "string"}
                        }),
                    );
                }
            }
        }
    }
}

/// utoipa writes an inline field schema with a doc comment as
/// `{"description", "oneOf": [schema]}`; the one schema is merged back in,
/// so a field reads as the plain string schema it is.
fn unwrap_single_one_of(property: &mut serde_json::Value) {
    let Some(fields) = property.as_object_mut() else {
        return;
    };
    let single = match fields.get("oneOf").and_then(|o| o.as_array()) {
        Some(items) if items.len() == 1 => items.first().cloned(),
        _ => None,
    };
    if let Some(serde_json::Value::Object(schema)) = single {
        fields.remove("oneOf");
        for (key, value) in schema {
            fields.entry(key).or_insert(value);
        }
    }
}

/// The document as utoipa builds it from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes::configure)
        .split_for_parts();
    api
}
