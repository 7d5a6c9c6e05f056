//! The Slitz (HostBill user API) simulator: Basic auth with the account's
//! email, `{"error":[...]}` bodies (with status 200 for a wrong login, as
//! HostBill does), string-typed numbers, and an empty body for a domain that
//! is not available.

use std::sync::Mutex;

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use base64::Engine;
use chrono::NaiveDate;
use serde_json::{Value, json};

use super::{data, lock, merged_input};

struct Store {
    account: Value,
    invoices: Vec<Value>,
    tickets: Vec<(Value, Vec<Value>)>,
    domains: Vec<Value>,
    services: Vec<(Value, Value)>,
}

pub(super) struct SlitzState {
    today: NaiveDate,
    store: Mutex<Store>,
}

impl SlitzState {
    pub(super) fn seeded(today: NaiveDate) -> Self {
        Self {
            today,
            store: Mutex::new(Store {
                account: data::account(today),
                invoices: data::invoices(today),
                tickets: data::tickets(today),
                domains: data::domains(today),
                services: data::services(today),
            }),
        }
    }
}

impl SlitzState {
    /// Sets `field` of one record of a list (`invoices`, `tickets`,
    /// `domains`, `services`, by its id; a ticket by its number), as a change
    /// made in the client area would. False when there is no such record.
    pub(super) fn change(&self, list: &str, id: &str, field: &str, value: Value) -> bool {
        let mut store = lock(&self.store);
        let record = match list {
            "invoices" => store.invoices.iter_mut().find(|r| r["id"] == id),
            "tickets" => store
                .tickets
                .iter_mut()
                .map(|(ticket, _)| ticket)
                .find(|r| r["ticket_number"] == id),
            "domains" => store.domains.iter_mut().find(|r| r["id"] == id),
            "services" => store
                .services
                .iter_mut()
                .map(|(service, _)| service)
                .find(|r| r["id"] == id),
            _ => None,
        };
        match record.and_then(Value::as_object_mut) {
            Some(fields) => {
                fields.insert(field.to_owned(), value);
                true
            }
            None => false,
        }
    }
}

pub(super) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/details", web::get().to(get_details))
        .route("/details", web::post().to(post_details))
        .route("/balance", web::get().to(get_balance))
        .route("/invoice", web::get().to(list_invoices))
        .route("/invoice/{id}", web::get().to(get_invoice))
        .route("/tickets", web::get().to(list_tickets))
        .route("/tickets/{number}", web::get().to(get_ticket))
        .route("/domain", web::get().to(list_domains))
        .route("/domain/{id}", web::get().to(get_domain))
        .route("/domainorder/status", web::post().to(domain_status))
        .route("/service", web::get().to(list_services))
        .route("/service/{id}", web::get().to(get_service))
        .default_service(web::to(|| async { error(404, "Unknown API method") }));
}

/// HostBill answers an id that does not exist, or is not the caller's, with
/// an error body and status 200.
fn unknown_id(message: &str) -> HttpResponse {
    error(200, message)
}

fn error(status: u16, message: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(status).json(json!({ "error": [message] }))
}

/// HostBill answers a bad login with `{"error":["wronglogin"]}` and status
/// 200; `None` when the login is good.
fn unauthorized(req: &HttpRequest, state: &SlitzState) -> Option<HttpResponse> {
    let email = lock(&state.store)
        .account
        .get("email")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .is_some_and(|pair| pair == format!("{email}:{}", data::SLITZ_PASSWORD));
    (!ok).then(|| HttpResponse::Ok().json(json!({ "error": ["wronglogin"] })))
}

macro_rules! authorize {
    ($req:expr, $state:expr) => {
        if let Some(denied) = unauthorized(&$req, &$state) {
            return denied;
        }
    };
}

async fn get_details(req: HttpRequest, state: web::Data<SlitzState>) -> HttpResponse {
    authorize!(req, state);
    let account = lock(&state.store).account.clone();
    HttpResponse::Ok().json(json!({ "client": account }))
}

/// Fields `POST /details` accepts, as documented.
const UPDATABLE: &[&str] = &[
    "type",
    "companyname",
    "vateu",
    "firstname",
    "lastname",
    "email",
    "address1",
    "address2",
    "city",
    "state",
    "postcode",
    "country",
    "phonenumber",
    "orgpersonnr",
    "mobilephone",
    "referens",
];

async fn post_details(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<SlitzState>,
) -> HttpResponse {
    authorize!(req, state);
    let input = merged_input(&req, &body);
    if let Some(email) = input.get("email")
        && !(email.contains('@') && email.contains('.'))
    {
        return HttpResponse::Ok().json(json!({ "error": ["Email address is invalid"] }));
    }
    if let Some(country) = input.get("country")
        && !(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return HttpResponse::Ok().json(json!({ "error": ["Country is invalid"] }));
    }
    let mut store = lock(&state.store);
    let mut changed = 0_usize;
    for key in UPDATABLE {
        if let Some(value) = input.get(*key)
            && let Some(account) = store.account.as_object_mut()
        {
            account.insert((*key).to_owned(), Value::String(value.clone()));
            changed = changed.saturating_add(1);
        }
    }
    if changed == 0 {
        return HttpResponse::Ok().json(json!({ "error": ["Nothing to update"] }));
    }
    HttpResponse::Ok().json(json!({ "info": ["Your details have been updated"] }))
}

async fn get_balance(req: HttpRequest, state: web::Data<SlitzState>) -> HttpResponse {
    authorize!(req, state);
    let store = lock(&state.store);
    // The balance is the unpaid total in the account's own currency.
    let unpaid: f64 = store
        .invoices
        .iter()
        .filter(|i| i["status"] == "Unpaid" && i["currency"] == "SEK")
        .filter_map(|i| i["total"].as_f64())
        .sum();
    let credit: f64 = store
        .account
        .get("credit")
        .and_then(Value::as_str)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0.0);
    HttpResponse::Ok().json(json!({
        "details": { "acc_balance": format!("{unpaid:.2}"), "acc_credit": format!("{credit:.2}") }
    }))
}

async fn list_invoices(req: HttpRequest, state: web::Data<SlitzState>) -> HttpResponse {
    authorize!(req, state);
    let store = lock(&state.store);
    let invoices: Vec<Value> = store.invoices.iter().map(data::invoice_summary).collect();
    HttpResponse::Ok().json(json!({ "invoices": invoices }))
}

async fn get_invoice(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<SlitzState>,
) -> HttpResponse {
    authorize!(req, state);
    let store = lock(&state.store);
    let Some(invoice) = store.invoices.iter().find(|i| i["id"] == path.as_str()) else {
        return unknown_id("Invalid invoice id");
    };
    let mut invoice = invoice.clone();
    if let Some(fields) = invoice.as_object_mut() {
        fields.insert("client".into(), store.account.clone());
    }
    HttpResponse::Ok().json(json!({ "invoice": invoice }))
}

async fn list_tickets(req: HttpRequest, state: web::Data<SlitzState>) -> HttpResponse {
    authorize!(req, state);
    let store = lock(&state.store);
    let tickets: Vec<Value> = store
        .tickets
        .iter()
        .map(|(t, _)| {
            json!({
                "client_read": t["client_read"], "ticket_number": t["ticket_number"],
                "date": t["date"], "deptname": t["deptname"],
                "subject": t["subject"], "status": t["status"]
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({ "tickets": tickets }))
}

async fn get_ticket(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<SlitzState>,
) -> HttpResponse {
    authorize!(req, state);
    let store = lock(&state.store);
    match store
        .tickets
        .iter()
        .find(|(t, _)| t["ticket_number"] == path.as_str())
    {
        Some((ticket, replies)) => {
            HttpResponse::Ok().json(json!({ "tickets": ticket, "replies": replies }))
        }
        None => unknown_id("Ticket not found"),
    }
}

async fn list_domains(req: HttpRequest, state: web::Data<SlitzState>) -> HttpResponse {
    authorize!(req, state);
    let store = lock(&state.store);
    let domains: Vec<Value> = store
        .domains
        .iter()
        .map(|d| data::domain_summary(d, state.today))
        .collect();
    HttpResponse::Ok().json(json!({ "domains": domains }))
}

async fn get_domain(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<SlitzState>,
) -> HttpResponse {
    authorize!(req, state);
    let store = lock(&state.store);
    match store.domains.iter().find(|d| d["id"] == path.as_str()) {
        Some(domain) => HttpResponse::Ok().json(json!({ "details": domain })),
        None => unknown_id("Invalid domain id"),
    }
}

/// `{"details":{"status":"ok"}}` when the name is free; an empty body when not.
async fn domain_status(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<SlitzState>,
) -> HttpResponse {
    authorize!(req, state);
    let input = merged_input(&req, &body);
    let Some(name) = input.get("name").map(|n| n.trim().to_ascii_lowercase()) else {
        return HttpResponse::Ok().json(json!({ "error": ["Domain name is required"] }));
    };
    let valid = name.contains('.')
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !valid {
        return HttpResponse::Ok().json(json!({ "error": ["Invalid domain name"] }));
    }
    let store = lock(&state.store);
    let taken = data::TAKEN_DOMAINS.contains(&name.as_str())
        || store.domains.iter().any(|d| d["name"] == name.as_str());
    if taken {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::Ok().json(json!({ "details": { "status": "ok" } }))
    }
}

async fn list_services(req: HttpRequest, state: web::Data<SlitzState>) -> HttpResponse {
    authorize!(req, state);
    let store = lock(&state.store);
    let services: Vec<Value> = store.services.iter().map(|(_, s)| s.clone()).collect();
    HttpResponse::Ok().json(json!({ "services": services }))
}

async fn get_service(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<SlitzState>,
) -> HttpResponse {
    authorize!(req, state);
    let store = lock(&state.store);
    match store
        .services
        .iter()
        .find(|(d, _)| d["id"] == path.as_str())
    {
        Some((detail, _)) => HttpResponse::Ok().json(json!({ "service": detail })),
        None => unknown_id("Invalid service id"),
    }
}
