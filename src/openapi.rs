//! The OpenAPI document: collected from the endpoints' declarations
//! (`routes::ENDPOINTS`, the same list the server registers), then given
//! each route's facts (security and auth errors, cache headers) and the
//! headers every answer carries.

use std::collections::BTreeMap;

use actix_web::http::Method;
use utoipa::{
    IntoResponses, Modify, OpenApi,
    openapi::{
        ObjectBuilder, RefOr, Response, Type,
        header::{Header, HeaderBuilder},
        path::Operation,
        security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        },
    },
};

use crate::{
    configuration::Scope,
    error::{FieldError, Problem},
    events::{ChangeEvent, EventType, ResetEvent},
    normalize::Money,
    representation,
    route_table::RouteSpec,
    routes::{self, AuthErrors},
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
    components(schemas(Problem, FieldError, Money, EventType, ChangeEvent, ResetEvent)),
    tags(
        (name = "account", description = "The client-area account (Slitz)."),
        (name = "billing", description = "Balance and invoices (Slitz)."),
        (name = "support", description = "Support tickets and replies (Slitz)."),
        (name = "domains", description = "Registered domains and availability (Slitz)."),
        (name = "services", description = "Hosting, VPS and other services (Slitz)."),
        (name = "overview", description = "One call for a dashboard, across every Slitz source."),
        (name = "events", description = "Live changes as Server-Sent Events: from writes through the gateway, and from Slitz, read while anyone follows."),
        (name = "customers", description = "Residential VoIP customers (DNA). The gateway holds and refreshes the DNA token, and records every write: DNA has no read, so finding a customer is the gateway's registry."),
        (name = "audit", description = "The audit trail of DNA writes: who, when, what, how it ended. Needs the `audit` scope."),
        (name = "operations", description = "Health and readiness, for orchestrators; no API key needed."),
        (name = "auth", description = "People logging in through the gateway (a backend-for-frontend): the session cookie admits them to every `/v1` route."),
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
                        "An API key issued by the gateway's operators. Scopes: `read`, `write`, `secrets`, `audit`. \
                         In the sandbox: `sandbox-key` (every scope). A service may instead send the \
                         identity provider's JWT access token for the gateway's audience, where operators \
                         accept them (`[identity.jwt]`); its scopes come from its groups and `scope`.",
                    ))
                    .build(),
            ),
        );
        // People: the session cookie /auth/login sets. Swagger UI cannot set
        // an HttpOnly cookie and need not: log in at
        // /auth/login?return_to=/docs/ and the browser sends it with every
        // "Try it out". Unsafe methods by cookie also need X-CSRF: 1, the
        // `csrf` scheme ("Authorize" it with the value 1).
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::identity::session::COOKIE,
                "A person's session, set by `/auth/login` where operators configured it                  (`[identity.oidc]`'s client); the browser sends it by itself. In Swagger UI,                  open `/auth/login?return_to=/docs/` first. Scopes come from the person's groups.",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF",
                "`1`, on every unsafe method (POST, PATCH, PUT, DELETE) sent with the session                  cookie: a page on another site cannot send it without a CORS preflight.",
            ))),
        );
    }
}

/// The complete document, as served at `/openapi.json` and printed by
/// `gateway openapi`: utoipa's, with the route table's facts and the
/// headers every answer carries, plus the schema keywords utoipa cannot say.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(openapi()).unwrap_or_default();
    schema_keywords(&mut doc);
    fields_parameters(&mut doc);
    partial_answers(&mut doc);
    event_stream(&mut doc);
    doc
}

/// The document as `gateway openapi` prints it and `openapi/openapi.json` holds it.
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// What the route table says about each operation: who may call it
/// (`security`, from its scopes) and, for a cached read, its `304` and the
/// `ETag`, `X-Cache` and `Cache-Control` of its `200`.
struct RouteFacts;

impl Modify for RouteFacts {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for route in routes::routes() {
            let Some(operation) = operation_mut(openapi, route) else {
                continue;
            };
            if route.keyed() {
                // 401, 403 and 429, unless the route says more of one.
                for (status, response) in AuthErrors::responses() {
                    operation
                        .responses
                        .responses
                        .entry(status)
                        .or_insert(response);
                }
                let unsafe_method =
                    !matches!(route.method, Method::GET | Method::HEAD | Method::OPTIONS);
                let scopes = |scheme: &str, extra: Option<Scope>| {
                    let names = route
                        .scopes
                        .iter()
                        .chain(extra.as_ref())
                        .map(|s| s.as_str());
                    let requirement = SecurityRequirement::new(scheme, names);
                    if scheme == "session" && unsafe_method {
                        requirement.add("csrf", Vec::<String>::new())
                    } else {
                        requirement
                    }
                };
                let mut security = Vec::new();
                for scheme in ["api_key", "session"] {
                    security.push(scopes(scheme, None));
                    security.extend(route.widened_by.map(|scope| scopes(scheme, Some(scope))));
                }
                operation.security = Some(security);
            }
            if route.cached.is_some() || route.validated {
                let responses = &mut operation.responses.responses;
                responses.insert(
                    "304".into(),
                    Response::new("Not modified since the ETag in If-None-Match.").into(),
                );
                if let Some(RefOr::T(ok)) = responses.get_mut("200")
                    && route.validated
                {
                    ok.headers.insert(
                        "ETag".into(),
                        header("Strong validator of the answer (weak when compressed); send it back in If-None-Match for a 304."),
                    );
                    ok.headers.insert(
                        "Cache-Control".into(),
                        header("private, no-cache: revalidate on every use."),
                    );
                }
                if let Some(RefOr::T(ok)) = responses.get_mut("200")
                    && route.cached.is_some()
                {
                    ok.headers.insert(
                        "X-Cache".into(),
                        header_one_of(
                            "HIT (from cache), MISS (fetched now) or STALE (Slitz failed; an expired answer within cache.stale_seconds)",
                            &["HIT", "MISS", "STALE"],
                        ),
                    );
                    ok.headers.insert(
                        "ETag".into(),
                        header("Strong validator of the answer; send it back in If-None-Match for a 304."),
                    );
                    ok.headers.insert(
                        "Cache-Control".into(),
                        header("private, max-age = seconds the answer stays fresh (0 when STALE)."),
                    );
                }
            }
        }
    }
}

/// The headers answers carry whatever the route: `X-Request-Id` on all;
/// the rate-limit fields on every answer to a key (401s aside);
/// `Retry-After` on 409s, 429s and 503s; `ETag` on a 304.
struct CommonHeaders;

impl Modify for CommonHeaders {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                let keyed = operation.security.is_some();
                for (status, response) in &mut operation.responses.responses {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    let headers = &mut response.headers;
                    headers.insert(
                        "X-Request-Id".into(),
                        header("The request's id: the caller's own when it sent a plain one (at most 128 of A-Za-z0-9-_.:), else a new UUID. Quote it when reporting a problem."),
                    );
                    if keyed && status != "401" {
                        headers.insert(
                            "RateLimit-Policy".into(),
                            header("Only for a key with `rate_per_second`: its quota policy (draft-ietf-httpapi-ratelimit-headers), e.g. `\"per-key\";q=20;w=2`: a burst of q requests, refilled over w seconds."),
                        );
                        headers.insert(
                            "RateLimit".into(),
                            header("Only for a key with `rate_per_second`: where it stands now, e.g. `\"per-key\";r=19;t=1`: r requests may be sent at once, and the whole burst is back after t seconds. With `[redis]`, counted for all instances together."),
                        );
                    }
                    if status == "304" {
                        headers.insert("ETag".into(), header("The validator that matched."));
                    }
                    if matches!(status.as_str(), "409" | "429" | "503") {
                        headers.insert(
                            "Retry-After".into(),
                            header("Seconds to wait before retrying, when known."),
                        );
                    }
                }
            }
        }
    }
}

/// The operation the route table's `route` names in the document.
fn operation_mut<'a>(
    openapi: &'a mut utoipa::openapi::OpenApi,
    route: &RouteSpec,
) -> Option<&'a mut Operation> {
    let item = openapi.paths.paths.get_mut(route.path)?;
    match route.method {
        Method::GET => item.get.as_mut(),
        Method::POST => item.post.as_mut(),
        Method::PUT => item.put.as_mut(),
        Method::PATCH => item.patch.as_mut(),
        Method::DELETE => item.delete.as_mut(),
        _ => None,
    }
}

fn header(description: &str) -> Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some(description))
        .build()
}

fn header_one_of(description: &str, values: &[&str]) -> Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(values.iter().copied())),
        )
        .description(Some(description))
        .build()
}

/// JSON Schema keywords utoipa's attributes and builders cannot express,
/// added to the generated document:
/// - `PATCH /v1/account` needs at least one field (`minProperties`; utoipa
///   5.5 writes its `min_properties` attribute as `maxProperties`);
/// - a billing address and zipcode come together (`dependentRequired`);
/// - a documented field of an inline schema reads as its plain schema.
fn schema_keywords(doc: &mut serde_json::Value) {
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
}

/// Every read route takes `?fields=`: its names are read from the route's
/// own `200` schema (`representation::fields`), the same list the server
/// checks against, and an unknown one is a 400.
fn fields_parameters(doc: &mut serde_json::Value) {
    use serde_json::json;
    let problem = json!({
        "description": "A parameter is not valid; `errors` names it. Nothing was sent upstream.",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    });
    for (route, set) in representation::fields::read_routes(doc, routes::routes()) {
        let path = route.path.replace('~', "~0").replace('/', "~1");
        let Some(operation) = doc
            .pointer_mut(&format!("/paths/{path}/get"))
            .and_then(|o| o.as_object_mut())
        else {
            continue;
        };
        let shape = if set.list {
            "of each item (the page's `total`, `page` and `per_page` stay)"
        } else {
            "of the answer"
        };
        let parameter = json!({
            "name": representation::fields::PARAMETER,
            "in": "query",
            "required": false,
            "description": format!(
                "Only these fields {shape}, comma-separated: `?fields=id,status`. A dotted name \
                 selects inside an object (`total.amount`). An unknown name is a 400 naming it. \
                 The answer has an `ETag` of its own."
            ),
            "style": "form",
            "explode": false,
            "schema": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": true,
                "items": {"type": "string", "enum": set.names}
            }
        });
        if let Some(parameters) = operation
            .entry("parameters")
            .or_insert_with(|| json!([]))
            .as_array_mut()
        {
            parameters.push(parameter);
        }
        if let Some(responses) = operation
            .get_mut("responses")
            .and_then(|r| r.as_object_mut())
        {
            responses.entry("400").or_insert_with(|| problem.clone());
        }
    }
}

/// What an answer cut by `?fields=` is: each read route's `200` gets a
/// second media type, [`representation::fields::PARTIAL_MEDIA_TYPE`], whose
/// schema is the whole answer's with no member required (a list keeps its
/// envelope: `items`, `total`, `page` and `per_page` are always there). The
/// server sends a cut answer as that type, so a tool checks it against what
/// a cut answer may be, and the whole answer against the whole schema.
/// A media type rather than a profile parameter: tools choose the schema
/// by the media type alone. Component `X` gets `PartialX`, made once.
fn partial_answers(doc: &mut serde_json::Value) {
    use serde_json::{Value, json};
    let mut made: BTreeMap<String, Value> = BTreeMap::new();
    let mut answers = Vec::new();
    for (route, set) in representation::fields::read_routes(doc, routes::routes()) {
        let content = format!(
            "/paths/{}/get/responses/200/content",
            route.path.replace('~', "~0").replace('/', "~1")
        );
        let Some(whole) = doc
            .pointer(&format!("{content}/application~1json/schema"))
            .cloned()
        else {
            continue;
        };
        let partial = if set.list {
            // The page: its envelope as it is, each item partial.
            let mut page = resolved(doc, &whole).clone();
            if let Some(items) = page.pointer_mut("/properties/items/items") {
                *items = partial_of(doc, items, &mut made);
            }
            page
        } else {
            partial_of(doc, &whole, &mut made)
        };
        answers.push((content, partial));
    }
    for (content, partial) in answers {
        if let Some(content) = doc.pointer_mut(&content).and_then(Value::as_object_mut) {
            content.insert(
                representation::fields::PARTIAL_MEDIA_TYPE.to_owned(),
                json!({ "schema": partial }),
            );
        }
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        schemas.extend(made);
    }
}

/// The schema `$ref` points at (one step), or the schema itself.
fn resolved<'a>(
    doc: &'a serde_json::Value,
    schema: &'a serde_json::Value,
) -> &'a serde_json::Value {
    schema
        .get("$ref")
        .and_then(serde_json::Value::as_str)
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .and_then(|name| doc.pointer(&format!("/components/schemas/{name}")))
        .unwrap_or(schema)
}

/// `schema` with no member required, at any depth: references point at
/// partial components (made in `made`, each once, cycles included), and
/// `oneOf` reads as `anyOf` (two partial objects may both match).
fn partial_of(
    doc: &serde_json::Value,
    schema: &serde_json::Value,
    made: &mut BTreeMap<String, serde_json::Value>,
) -> serde_json::Value {
    use serde_json::{Value, json};
    match schema {
        Value::Object(members) => {
            if let Some(name) = members
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                let partial = format!("Partial{name}");
                if !made.contains_key(&partial) {
                    // Taken before it is made: a schema that refers to itself ends here.
                    made.insert(partial.clone(), Value::Null);
                    let target = doc
                        .pointer(&format!("/components/schemas/{name}"))
                        .cloned()
                        .unwrap_or_default();
                    let mut value = partial_of(doc, &target, made);
                    if let Some(fields) = value.as_object_mut() {
                        fields.insert(
                            "description".to_owned(),
                            json!(format!(
                                "`{name}` cut by `?fields=`: any member may be left out."
                            )),
                        );
                    }
                    made.insert(partial.clone(), value);
                }
                return json!({ "$ref": format!("#/components/schemas/{partial}") });
            }
            let mut out = serde_json::Map::new();
            for (key, value) in members {
                match key.as_str() {
                    "required" => {}
                    "properties" => {
                        let properties = value
                            .as_object()
                            .map(|p| {
                                p.iter()
                                    .map(|(k, v)| (k.clone(), partial_of(doc, v, made)))
                                    .collect::<serde_json::Map<_, _>>()
                            })
                            .unwrap_or_default();
                        out.insert(key.clone(), Value::Object(properties));
                    }
                    "oneOf" | "anyOf" => {
                        out.insert("anyOf".to_owned(), partial_of(doc, value, made));
                    }
                    "items" | "allOf" | "additionalProperties" => {
                        out.insert(key.clone(), partial_of(doc, value, made));
                    }
                    _ => {
                        out.insert(key.clone(), value.clone());
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| partial_of(doc, i, made)).collect())
        }
        other => other.clone(),
    }
}

/// What `GET /v1/events` sends, event by event, where tools read it: the
/// stream's schema is that of one parsed event (OpenAPI 3.1 puts a
/// sequential media type's per-item schema under `schema`; 3.2 names it
/// `itemSchema`): its SSE `event` and `id`, and its `data`, JSON whose
/// schema (`contentSchema`) is `ChangeEvent` or `ResetEvent`, both derived
/// from the types the gateway serializes (`events`).
fn event_stream(doc: &mut serde_json::Value) {
    use serde_json::json;
    let data = |schema: &str| {
        json!({
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": format!("#/components/schemas/{schema}")}
        })
    };
    let frame = json!({
        "description": "One event of the stream, as an SSE parser reads it (comment lines, the heartbeats, and the `retry:` line carry no event).",
        "oneOf": [
            {
                "type": "object",
                "description": "A change: `event` is its type, `id` what to send back as `Last-Event-ID`.",
                "required": ["event", "id", "data"],
                "properties": {
                    "event": {"$ref": "#/components/schemas/EventType"},
                    "id": {"type": "string"},
                    "data": data("ChangeEvent")
                }
            },
            {
                "type": "object",
                "description": "Events were missed: refetch what you show, then follow the stream.",
                "required": ["event", "data"],
                "properties": {
                    "event": {"const": "reset"},
                    "data": data("ResetEvent")
                }
            }
        ]
    });
    if let Some(media) = doc
        .pointer_mut("/paths/~1v1~1events/get/responses/200/content/text~1event-stream")
        .and_then(|m| m.as_object_mut())
    {
        media.insert("schema".to_owned(), frame);
    }
    // `?types=` as what it is: a comma-separated list of event types,
    // resources' `.*` and `*`, each from `EventType`.
    let mut names: Vec<String> = vec!["*".to_owned()];
    for event_type in EventType::ALL {
        let resource = event_type.as_str().split('.').next().unwrap_or_default();
        let every = format!("{resource}.*");
        if !names.contains(&every) {
            names.push(every);
        }
    }
    names.extend(EventType::ALL.iter().map(|t| t.as_str().to_owned()));
    if let Some(parameters) = doc
        .pointer_mut("/paths/~1v1~1events/get/parameters")
        .and_then(|p| p.as_array_mut())
    {
        for parameter in parameters.iter_mut().filter(|p| p["name"] == "types") {
            parameter["example"] = json!(["invoice.*", "ticket.updated"]);
            parameter["style"] = json!("form");
            parameter["explode"] = json!(false);
            parameter["schema"] = json!({
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "enum": names}
            });
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

/// The document as utoipa builds it from the endpoints' declarations.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut api = ApiDoc::openapi();
    for endpoint in routes::ENDPOINTS {
        (endpoint.document)(&mut api);
    }
    RouteFacts.modify(&mut api);
    CommonHeaders.modify(&mut api);
    api
}
