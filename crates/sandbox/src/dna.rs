//! The Nexogy DNA simulator: Laravel Passport (league/oauth2-server 7.x) for
//! `/oauth/token` with rotating refresh tokens, and the residential client
//! routes with Laravel's validation, 404 and "Unauthenticated." answers.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use rand::Rng;
use serde_json::json;

use super::{Control, data, form_body, lock, merged_input};

/// Refresh tokens outlive access tokens by far, as Passport's do (30 days).
const REFRESH_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

struct AccessToken {
    expires_at: Instant,
}

struct RefreshToken {
    access_token: String,
    expires_at: Instant,
}

#[derive(Clone)]
struct Client {
    customer_id: String,
    status: &'static str,
}

struct Store {
    grants: BTreeMap<String, u64>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    clients: BTreeMap<u64, Client>,
}

pub(super) struct DnaState {
    store: Mutex<Store>,
}

impl Default for DnaState {
    /// Two customers exist from the start, so activate and suspend can be tried at once.
    fn default() -> Self {
        let clients = [
            (
                6517,
                Client {
                    customer_id: "CUST-1001".into(),
                    status: "active",
                },
            ),
            (
                6518,
                Client {
                    customer_id: "CUST-1002".into(),
                    status: "suspended",
                },
            ),
        ];
        Self {
            store: Mutex::new(Store {
                grants: BTreeMap::new(),
                access: HashMap::new(),
                refresh: HashMap::new(),
                clients: clients.into_iter().collect(),
            }),
        }
    }
}

impl DnaState {
    pub(super) fn revoke_all(&self) {
        let mut store = lock(&self.store);
        store.access.clear();
        store.refresh.clear();
    }

    pub(super) fn grants(&self, grant_type: &str) -> u64 {
        lock(&self.store)
            .grants
            .get(grant_type)
            .copied()
            .unwrap_or(0)
    }

    pub(super) fn customer_count(&self) -> usize {
        lock(&self.store).clients.len()
    }

    pub(super) fn customer_status(&self, id: u64) -> Option<&'static str> {
        lock(&self.store).clients.get(&id).map(|c| c.status)
    }
}

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/oauth/token")
            .route(web::post().to(token))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/residential/client")
            .route(web::post().to(create_client))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/residential/client/{id}/{action}")
            .route(web::post().to(change_status))
            .default_service(web::to(method_not_allowed)),
    )
    .default_service(web::to(|| async {
        HttpResponse::NotFound().json(json!({ "message": "" }))
    }));
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    HttpResponse::MethodNotAllowed().insert_header((header::ALLOW, "POST")).json(json!({
        "message": format!("The {} method is not supported for this route. Supported methods: POST.", req.method())
    }))
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .filter_map(|_| ALPHABET.get(rng.random_range(0..ALPHABET.len())))
        .map(|&b| char::from(b))
        .collect()
}

/// league/oauth2-server's error shape, as Passport renders it.
fn oauth_error(status: u16, error: &str, description: &str, hint: Option<&str>) -> HttpResponse {
    let mut body = serde_json::Map::new();
    body.insert("error".into(), json!(error));
    body.insert("error_description".into(), json!(description));
    body.insert("message".into(), json!(description));
    if let Some(hint) = hint {
        body.insert("hint".into(), json!(hint));
    }
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(status).json(body)
}

fn invalid_request(parameter: &str) -> HttpResponse {
    oauth_error(
        400,
        "invalid_request",
        "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed.",
        Some(&format!("Check the `{parameter}` parameter")),
    )
}

async fn token(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<DnaState>,
    control: web::Data<Control>,
) -> HttpResponse {
    let form = form_body(&req, &body);
    let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let grant = get("grant_type");
    if !matches!(grant, Some("password" | "refresh_token")) {
        return oauth_error(
            400,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
            Some("Check that all required parameters have been provided"),
        );
    }
    let Some(client_id) = get("client_id") else {
        return invalid_request("client_id");
    };
    if client_id != data::DNA_CLIENT_ID || get("client_secret") != Some(data::DNA_CLIENT_SECRET) {
        return oauth_error(401, "invalid_client", "Client authentication failed", None);
    }
    let lifetime = Duration::from_millis(control.knobs().token_lifetime_ms);
    let mut store = lock(&state.store);
    let now = Instant::now();
    if grant == Some("password") {
        let Some(username) = get("username") else {
            return invalid_request("username");
        };
        let Some(password) = get("password") else {
            return invalid_request("password");
        };
        if username != data::DNA_USERNAME || password != data::DNA_PASSWORD {
            return oauth_error(
                401,
                "invalid_credentials",
                "The user credentials were incorrect.",
                None,
            );
        }
        if let Some(scope) = get("scope")
            && scope
                .split(' ')
                .any(|s| !s.is_empty() && s != data::DNA_SCOPE && s != "*")
        {
            return oauth_error(
                400,
                "invalid_scope",
                "The requested scope is invalid, unknown, or malformed",
                Some(&format!("Check the `{scope}` scope")),
            );
        }
    } else {
        let Some(presented) = get("refresh_token") else {
            return invalid_request("refresh_token");
        };
        // Rotation: a refresh token works once; using it revokes it and the
        // access token it was issued with.
        match store.refresh.remove(presented) {
            Some(old) if old.expires_at > now => {
                store.access.remove(&old.access_token);
            }
            Some(_) => {
                return oauth_error(
                    401,
                    "invalid_request",
                    "The refresh token is invalid.",
                    Some("Token has expired"),
                );
            }
            None => {
                return oauth_error(
                    401,
                    "invalid_request",
                    "The refresh token is invalid.",
                    Some("Token has been revoked"),
                );
            }
        }
    }
    let access_token = format!("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.{}", random_token(48));
    let refresh_token = format!("def50200{}", random_token(64));
    store.access.insert(
        access_token.clone(),
        AccessToken {
            expires_at: later(now, lifetime),
        },
    );
    store.refresh.insert(
        refresh_token.clone(),
        RefreshToken {
            access_token: access_token.clone(),
            expires_at: later(now, REFRESH_LIFETIME),
        },
    );
    let grants = store
        .grants
        .entry(grant.unwrap_or_default().to_owned())
        .or_default();
    *grants = grants.saturating_add(1);
    let token = json!({
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs_f64().ceil() as u64,
        "access_token": access_token,
        "refresh_token": refresh_token
    });
    // Documented as a one-element array; Passport itself sends the object.
    if control.knobs().dna_plain_token {
        HttpResponse::Ok().json(token)
    } else {
        HttpResponse::Ok().json(json!([token]))
    }
}

/// Laravel's `auth:api` guard: 401 "Unauthenticated." for a JSON client, and
/// a 500 for anyone else, because the redirect to a `login` route fails;
/// `None` when the bearer token is valid.
fn unauthenticated(req: &HttpRequest, state: &DnaState) -> Option<HttpResponse> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let valid = bearer.is_some_and(|token| {
        lock(&state.store)
            .access
            .get(token)
            .is_some_and(|t| t.expires_at > Instant::now())
    });
    if valid {
        return None;
    }
    let wants_json = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    Some(if wants_json {
        HttpResponse::Unauthorized().json(json!({ "message": "Unauthenticated." }))
    } else {
        HttpResponse::InternalServerError()
            .content_type("text/html; charset=UTF-8")
            .body("<!DOCTYPE html><html><head><title>Server Error</title></head><body>Route [login] not defined.</body></html>")
    })
}

fn attribute(field: &str) -> String {
    field.replace('_', " ")
}

async fn create_client(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<DnaState>,
) -> HttpResponse {
    if let Some(denied) = unauthenticated(&req, &state) {
        return denied;
    }
    let input = merged_input(&req, &body);
    let get = |k: &str| {
        input
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    };
    let mut errors: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut fail =
        |field: &'static str, message: String| errors.entry(field).or_default().push(message);
    for field in [
        "start_billing_date",
        "customer_id",
        "email",
        "first_name",
        "last_name",
        "zipcode",
        "address",
        "same_billing_address",
        "has_subreseller_id",
    ] {
        if get(field).is_none() {
            fail(
                field,
                format!("The {} field is required.", attribute(field)),
            );
        }
    }
    if let Some(date) = get("start_billing_date")
        && chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err()
    {
        fail(
            "start_billing_date",
            "The start billing date does not match the format Y-m-d.".into(),
        );
    }
    if let Some(email) = get("email") {
        let ok = email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !email.contains(' ')
        });
        if !ok {
            fail("email", "The email must be a valid email address.".into());
        }
    }
    // Laravel's `boolean` rule: true, false, 1, 0, "1", "0". A form's "true" is a string, and fails.
    let boolean = |field: &str| {
        get(field).map(|v| match v {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        })
    };
    let same_billing = boolean("same_billing_address");
    let has_subreseller = boolean("has_subreseller_id");
    for (field, value) in [
        ("same_billing_address", same_billing),
        ("has_subreseller_id", has_subreseller),
    ] {
        if value == Some(None) {
            fail(
                field,
                format!("The {} field must be true or false.", attribute(field)),
            );
        }
    }
    if same_billing == Some(Some(false)) {
        for field in ["billing_address", "billing_zipcode"] {
            if get(field).is_none() {
                fail(
                    field,
                    format!(
                        "The {} field is required when same billing address is 0.",
                        attribute(field)
                    ),
                );
            }
        }
    }
    if has_subreseller == Some(Some(true)) && get("subreseller_id").is_none() {
        fail(
            "subreseller_id",
            "The subreseller id field is required when has subreseller id is 1.".into(),
        );
    }
    let mut store = lock(&state.store);
    if let Some(customer_id) = get("customer_id")
        && store.clients.values().any(|c| c.customer_id == customer_id)
    {
        fail(
            "customer_id",
            "The customer id has already been taken.".into(),
        );
    }
    if !errors.is_empty() {
        return HttpResponse::UnprocessableEntity().json(json!({
            "message": "The given data was invalid.",
            "errors": errors
        }));
    }
    let id = store
        .clients
        .keys()
        .next_back()
        .map_or(6519, |last| last.saturating_add(1));
    let last_name: String = get("last_name")
        .unwrap_or("client")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    store.clients.insert(
        id,
        Client {
            customer_id: get("customer_id").unwrap_or_default().to_owned(),
            status: "pending",
        },
    );
    HttpResponse::Ok().json(json!([{
        "result": "OK",
        "client": { "id": id, "ns_domain": format!("{last_name}{id}.res.nexogy-sandbox.test") }
    }]))
}

async fn change_status(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<DnaState>,
) -> HttpResponse {
    if let Some(denied) = unauthenticated(&req, &state) {
        return denied;
    }
    let (id, action) = path.into_inner();
    let status = match action.as_str() {
        "activate" => "active",
        "suspend" => "suspended",
        _ => return HttpResponse::NotFound().json(json!({ "message": "" })),
    };
    let mut store = lock(&state.store);
    let client = id
        .parse::<u64>()
        .ok()
        .and_then(|id| store.clients.get_mut(&id));
    let Some(client) = client else {
        return HttpResponse::NotFound().json(json!({
            "message": format!("No query results for model [App\\Models\\Client] {id}")
        }));
    };
    client.status = status;
    HttpResponse::Ok().json(json!({ "result": "OK", "timestamp": chrono::Utc::now().timestamp() }))
}

/// `now + after`, or as far ahead as the clock goes (a century).
fn later(now: Instant, after: Duration) -> Instant {
    now.checked_add(after)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}
