//! Simulated upstreams: the Nexogy DNA API under `/dna/api` and the Slitz
//! client area under `/slitz/api`, on one loopback listener, with a
//! simulated identity provider under `/idp` for trying the login. They follow the
//! upstream documents (and the servers behind them) closely enough that the
//! gateway's quirk handling is exercised for real, and they carry test knobs:
//! token lifetime, added latency, injected faults per path, and per-route
//! call counters, reachable from Rust and over HTTP under `/__sandbox`.
//!
//! Its own crate: it knows nothing of the gateway (the gateway builds its
//! sandbox-mode settings from [`Sandbox::dna_base_url`],
//! [`Sandbox::slitz_base_url`] and [`data`]), and the gateway's library
//! code never calls it outside sandbox mode.
#![warn(unreachable_pub)]
// What the gateway holds itself to: a simulator that panics would make the
// gateway look broken.
#![cfg_attr(
    not(test),
    deny(
        clippy::string_slice,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

pub mod data;
mod dna;
mod idp;
mod slitz;

use std::{
    collections::BTreeMap,
    net::{SocketAddr, TcpListener},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use actix_web::{
    App, HttpMessage, HttpRequest, HttpResponse, HttpServer,
    body::{BoxBody, MessageBody},
    dev::{ServerHandle, ServiceRequest, ServiceResponse},
    middleware::{Next, from_fn},
    web,
};
use serde::{Deserialize, Serialize};
use url::Url;

/// The API key sandbox mode accepts.
pub const SANDBOX_API_KEY: &str = "sandbox-key";

/// A fault injected into the simulator for requests to one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Answer with this status and body (default: a generic upstream error
    /// page), and a `Retry-After` when given.
    Status {
        status: u16,
        body: Option<String>,
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Never answer (until the client gives up).
    Hang,
    /// Answer 200 with a truncated JSON body.
    Malformed,
    /// Drop the connection without a complete answer.
    Reset,
    /// Answer normally, after this extra delay.
    Delay { ms: u64 },
    /// Answer normally, with the answer's shape changed: `field` (a path
    /// such as `client.id` or `invoices[].total`, inside a DNA answer's
    /// one-element array) added, dropped or given another JSON type.
    Drift { field: String, change: ShapeChange },
}

/// How [`Fault::Drift`] changes a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShapeChange {
    /// Adds the field (a string), as an upstream release adding one would.
    Add,
    /// Removes the field.
    Drop,
    /// Sends the field as another JSON type: a numeric string as a number,
    /// other strings in an array, numbers and booleans as strings.
    Retype,
}

impl ShapeChange {
    /// Applies the change at `path` (dot-separated; `name[]` is each element
    /// of an array) inside `answer`. A top-level array's elements are each
    /// the answer, so DNA's wrapped and plain answers take the same paths.
    pub fn apply(self, answer: &mut serde_json::Value, path: &str) {
        use serde_json::Value;
        if let Value::Array(items) = answer {
            for item in items {
                self.apply(item, path);
            }
            return;
        }
        let (head, rest) = match path.split_once('.') {
            Some((head, rest)) => (head, Some(rest)),
            None => (path, None),
        };
        let Some(object) = answer.as_object_mut() else {
            return;
        };
        let (name, each) = match head.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (head, false),
        };
        match (rest, each) {
            (None, false) => match self {
                ShapeChange::Add => {
                    object.insert(name.to_owned(), Value::from("added by the sandbox"));
                }
                ShapeChange::Drop => {
                    object.remove(name);
                }
                ShapeChange::Retype => {
                    if let Some(value) = object.get_mut(name) {
                        *value = retyped(value.take());
                    }
                }
            },
            (rest, _) => {
                let rest = rest.unwrap_or_default();
                match object.get_mut(name) {
                    Some(Value::Array(items)) if each => {
                        for item in items {
                            self.apply(item, rest);
                        }
                    }
                    Some(child) if !each => self.apply(child, rest),
                    _ => {}
                }
            }
        }
    }
}

fn retyped(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) => match s.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::Array(vec![Value::String(s)]),
        },
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(if b { "1" } else { "0" }.to_owned()),
        Value::Null => Value::from(0),
        other => Value::String(other.to_string()),
    }
}

/// Where a fault applies: an exact path (`/slitz/api/tickets`) or a route
/// pattern (`/slitz/api/invoice/{id}`), optionally one method, optionally only
/// the next `times` requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    pub path: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub times: Option<u32>,
    pub fault: Fault,
}

impl FaultRule {
    pub fn new(path: impl Into<String>, fault: Fault) -> Self {
        Self {
            path: path.into(),
            method: None,
            times: None,
            fault,
        }
    }
}

/// Knobs a test or a frontend developer can turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Knobs {
    /// Lifetime of DNA access tokens, in milliseconds (the real one: 1 200 000).
    pub token_lifetime_ms: u64,
    /// Latency added to every simulated upstream answer.
    pub latency_ms: u64,
    /// Answer the DNA token request as a plain object, as Laravel Passport
    /// really does, instead of the documented one-element array.
    #[serde(default)]
    pub dna_plain_token: bool,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            token_lifetime_ms: 1_200_000,
            latency_ms: 0,
            dna_plain_token: false,
        }
    }
}

#[derive(Debug, Default)]
struct ControlState {
    knobs: Knobs,
    faults: Vec<FaultRule>,
    calls: BTreeMap<String, u64>,
    last_request_id: Option<String>,
    last_traceparent: Option<String>,
}

/// The shared knobs, faults and counters of one simulator instance.
#[derive(Debug, Default)]
pub struct Control {
    state: Mutex<ControlState>,
}

impl Control {
    fn lock(&self) -> MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn knobs(&self) -> Knobs {
        self.lock().knobs.clone()
    }

    pub fn set_knobs(&self, knobs: Knobs) {
        self.lock().knobs = knobs;
    }

    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.lock().knobs.token_lifetime_ms = lifetime.as_millis().try_into().unwrap_or(u64::MAX);
    }

    pub fn set_latency(&self, latency: Duration) {
        self.lock().knobs.latency_ms = latency.as_millis().try_into().unwrap_or(u64::MAX);
    }

    pub fn inject(&self, rule: FaultRule) {
        self.lock().faults.push(rule);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Calls received for `"METHOD /pattern"`, e.g. `"GET /slitz/api/details"`
    /// or `"GET /slitz/api/invoice/{id}"`; faulted calls count too.
    pub fn calls(&self, route: &str) -> u64 {
        self.lock().calls.get(route).copied().unwrap_or(0)
    }

    pub fn all_calls(&self) -> BTreeMap<String, u64> {
        self.lock().calls.clone()
    }

    /// The `X-Request-Id` of the last call received, to check it is forwarded.
    pub fn last_request_id(&self) -> Option<String> {
        self.lock().last_request_id.clone()
    }

    /// The `traceparent` of the last request the simulators received.
    pub fn last_traceparent(&self) -> Option<String> {
        self.lock().last_traceparent.clone()
    }

    pub fn reset_calls(&self) {
        self.lock().calls.clear();
    }

    /// Counts the call and returns the fault to apply, consuming one use of a
    /// limited rule.
    #[cfg(test)]
    fn record(&self, method: &str, path: &str, pattern: &str) -> (Option<Fault>, Duration) {
        self.record_with_id(method, path, pattern, None, None)
    }

    fn record_with_id(
        &self,
        method: &str,
        path: &str,
        pattern: &str,
        request_id: Option<String>,
        traceparent: Option<String>,
    ) -> (Option<Fault>, Duration) {
        let mut state = self.lock();
        state.last_request_id = request_id;
        state.last_traceparent = traceparent;
        let calls: &mut u64 = state
            .calls
            .entry(format!("{method} {pattern}"))
            .or_default();
        *calls = calls.saturating_add(1);
        let latency = Duration::from_millis(state.knobs.latency_ms);
        let hit = state.faults.iter().position(|r| {
            (r.path == path || r.path == pattern)
                && r.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
        });
        let fault = hit.and_then(|i| {
            let rule = state.faults.get_mut(i)?;
            let fault = rule.fault.clone();
            if let Some(times) = rule.times.as_mut() {
                *times = times.saturating_sub(1);
                if *times == 0 {
                    state.faults.remove(i);
                }
            }
            Some(fault)
        });
        (fault, latency)
    }
}

/// A running pair of simulators.
pub struct Sandbox {
    pub addr: SocketAddr,
    pub control: Arc<Control>,
    dna: web::Data<dna::DnaState>,
    slitz: web::Data<slitz::SlitzState>,
    handle: ServerHandle,
}

impl Sandbox {
    /// Binds `listen` (port 0 for any) and serves both simulators on the
    /// current Tokio runtime until [`Sandbox::stop`] or the runtime ends.
    pub fn start(listen: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        let control = Arc::new(Control::default());
        let control_data = web::Data::from(control.clone());
        let dna_state = web::Data::new(dna::DnaState::default());
        // Seeded for today where the sandbox account lives, not where the
        // host is: the gateway reads Slitz's dates in that zone too.
        let today = chrono::Utc::now().with_timezone(&data::ZONE).date_naive();
        let slitz_state = web::Data::new(slitz::SlitzState::seeded(today));
        let idp_state = web::Data::new(idp::IdpState::default());
        let dna_for_app = dna_state.clone();
        let slitz_for_app = slitz_state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(control_data.clone())
                .app_data(dna_for_app.clone())
                .app_data(slitz_for_app.clone())
                .service(web::scope("/__sandbox").configure(admin_routes))
                .service(
                    web::scope("/idp")
                        .app_data(idp_state.clone())
                        .configure(idp::routes),
                )
                .service(
                    web::scope("/dna/api")
                        .wrap(from_fn(simulate))
                        .configure(dna::routes),
                )
                .service(
                    web::scope("/slitz/api")
                        .wrap(from_fn(simulate))
                        .configure(slitz::routes),
                )
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self {
            addr,
            control,
            dna: dna_state,
            slitz: slitz_state,
            handle,
        })
    }

    pub fn dna_base_url(&self) -> Url {
        base_url(self.addr, "/dna/api")
    }

    pub fn slitz_base_url(&self) -> Url {
        base_url(self.addr, "/slitz/api")
    }

    /// The simulated identity provider's issuer (see [`data::PEOPLE`]).
    pub fn idp_issuer(&self) -> Url {
        base_url(self.addr, "/idp")
    }

    /// Changes one field of a Slitz record in place (`list` is `invoices`,
    /// `tickets`, `domains` or `services`; a ticket by its number), as a
    /// change made in the client area would: the next read shows it. The
    /// value is Slitz's raw one (`"Paid"`, not the gateway's `paid`). False
    /// when there is no such record.
    pub fn change_slitz_record(
        &self,
        list: &str,
        id: &str,
        field: &str,
        value: serde_json::Value,
    ) -> bool {
        self.slitz.change(list, id, field, value)
    }

    /// Revokes every DNA token, as an upstream restart or an admin would.
    pub fn revoke_dna_tokens(&self) {
        self.dna.revoke_all();
    }

    /// Number of DNA customers created so far.
    pub fn dna_customer_count(&self) -> usize {
        self.dna.customer_count()
    }

    /// Successful DNA token grants of one type (`password`, `refresh_token`).
    pub fn dna_grants(&self, grant_type: &str) -> u64 {
        self.dna.grants(grant_type)
    }

    /// `pending`, `active` or `suspended`, for a DNA customer id.
    pub fn dna_customer_status(&self, id: u64) -> Option<&'static str> {
        self.dna.customer_status(id)
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

#[allow(
    clippy::expect_used,
    reason = "a SocketAddr always formats to a valid authority; called at start-up"
)]
fn base_url(addr: SocketAddr, path: &str) -> Url {
    Url::parse(&format!("http://{addr}{path}")).expect("a valid URL from a socket address")
}

/// Counts the call, waits the configured latency, and plays any injected fault.
async fn simulate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(control) = req.app_data::<web::Data<Control>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let pattern = req.match_pattern().unwrap_or_else(|| req.path().to_owned());
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let traceparent = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (fault, latency) = control.record_with_id(
        req.method().as_str(),
        req.path(),
        &pattern,
        request_id,
        traceparent,
    );
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = match fault {
        None => return Ok(next.call(req).await?.map_into_boxed_body()),
        Some(Fault::Delay { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            return Ok(next.call(req).await?.map_into_boxed_body());
        }
        Some(Fault::Drift { field, change }) => {
            let (req, response) = next.call(req).await?.into_parts();
            let status = response.status();
            let body = actix_web::body::to_bytes(response.into_body())
                .await
                .unwrap_or_default();
            let body = match serde_json::from_slice::<serde_json::Value>(&body) {
                Ok(mut answer) => {
                    change.apply(&mut answer, &field);
                    answer.to_string().into()
                }
                Err(_) => body,
            };
            let response = HttpResponse::build(status)
                .content_type("application/json")
                .body(body);
            return Ok(ServiceResponse::new(req, response));
        }
        Some(Fault::Status {
            status,
            body,
            retry_after,
        }) => {
            let status = actix_web::http::StatusCode::from_u16(status)
                .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = HttpResponse::build(status);
            response.content_type("text/html; charset=UTF-8");
            if let Some(seconds) = retry_after {
                response.insert_header(("Retry-After", seconds.to_string()));
            }
            response.body(body.unwrap_or_else(|| {
                "<!DOCTYPE html><html><head><title>Server Error</title></head><body>Server Error</body></html>".to_owned()
            }))
        }
        Some(Fault::Hang) => {
            tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
            HttpResponse::GatewayTimeout().finish()
        }
        Some(Fault::Malformed) => HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"client": {"id": "20408", "email": "#),
        Some(Fault::Reset) => {
            let broken = futures_util::stream::once(async {
                Err::<web::Bytes, _>(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "injected reset",
                ))
            });
            HttpResponse::Ok()
                .content_type("application/json")
                .streaming(broken)
        }
    };
    Ok(req.into_response(response))
}

/// `/__sandbox`: knobs, faults and counters over HTTP, for tests in other
/// languages and for frontend developers poking at failure modes.
fn admin_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/knobs", web::get().to(get_knobs))
        .route("/knobs", web::put().to(put_knobs))
        .route("/faults", web::post().to(post_fault))
        .route("/faults", web::delete().to(delete_faults))
        .route("/calls", web::get().to(get_calls))
        .route("/calls", web::delete().to(delete_calls))
        .route("/dna/revoke-tokens", web::post().to(revoke_tokens));
}

async fn get_knobs(control: web::Data<Control>) -> HttpResponse {
    HttpResponse::Ok().json(control.knobs())
}

async fn put_knobs(control: web::Data<Control>, knobs: web::Json<Knobs>) -> HttpResponse {
    control.set_knobs(knobs.into_inner());
    HttpResponse::Ok().json(control.knobs())
}

async fn post_fault(control: web::Data<Control>, rule: web::Json<FaultRule>) -> HttpResponse {
    control.inject(rule.into_inner());
    HttpResponse::NoContent().finish()
}

async fn delete_faults(control: web::Data<Control>) -> HttpResponse {
    control.clear_faults();
    HttpResponse::NoContent().finish()
}

async fn get_calls(control: web::Data<Control>) -> HttpResponse {
    HttpResponse::Ok().json(control.all_calls())
}

async fn delete_calls(control: web::Data<Control>) -> HttpResponse {
    control.reset_calls();
    HttpResponse::NoContent().finish()
}

async fn revoke_tokens(state: web::Data<dna::DnaState>) -> HttpResponse {
    state.revoke_all();
    HttpResponse::NoContent().finish()
}

/// Request parameters as PHP frameworks see them: query string and form body
/// merged (the body wins), JSON bodies read as strings.
fn merged_input(req: &HttpRequest, body: &[u8]) -> BTreeMap<String, String> {
    let mut input: BTreeMap<String, String> =
        url::form_urlencoded::parse(req.query_string().as_bytes())
            .into_owned()
            .collect();
    let content_type = req.content_type().to_ascii_lowercase();
    if content_type == "application/x-www-form-urlencoded" {
        input.extend(url::form_urlencoded::parse(body).into_owned());
    } else if content_type == "application/json"
        && let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(body)
    {
        for (k, v) in map {
            let text = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Bool(b) => if b { "1" } else { "0" }.to_owned(),
                serde_json::Value::Null => continue,
                other => other.to_string(),
            };
            input.insert(k, text);
        }
    }
    input
}

/// Form body only (league/oauth2-server reads the parsed body, not the query).
fn form_body(req: &HttpRequest, body: &[u8]) -> BTreeMap<String, String> {
    if req
        .content_type()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    {
        url::form_urlencoded::parse(body).into_owned().collect()
    } else {
        BTreeMap::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limited_fault_is_used_up() {
        let control = Control::default();
        control.inject(FaultRule {
            times: Some(2),
            ..FaultRule::new("/slitz/api/invoice/{id}", Fault::Hang)
        });
        let r = |c: &Control| {
            c.record("GET", "/slitz/api/invoice/1", "/slitz/api/invoice/{id}")
                .0
        };
        assert_eq!(r(&control), Some(Fault::Hang));
        assert_eq!(r(&control), Some(Fault::Hang));
        assert_eq!(r(&control), None);
        assert_eq!(control.calls("GET /slitz/api/invoice/{id}"), 3);
    }

    #[test]
    fn a_shape_change_reaches_its_field_through_objects_and_arrays() {
        use serde_json::json;
        let change = |c: ShapeChange, path: &str, mut answer: serde_json::Value| {
            c.apply(&mut answer, path);
            answer
        };
        assert_eq!(
            change(
                ShapeChange::Drop,
                "client.lastname",
                json!({"client": {"id": "1", "lastname": "L"}})
            ),
            json!({"client": {"id": "1"}})
        );
        assert_eq!(
            change(
                ShapeChange::Retype,
                "tickets[].ticket_number",
                json!({"tickets": [{"ticket_number": "7"}, {"ticket_number": "x"}]})
            ),
            json!({"tickets": [{"ticket_number": 7}, {"ticket_number": ["x"]}]})
        );
        assert_eq!(
            change(ShapeChange::Add, "scope", json!([{"access_token": "a"}])),
            json!([{"access_token": "a", "scope": "added by the sandbox"}])
        );
        assert_eq!(
            change(
                ShapeChange::Retype,
                "timestamp",
                json!({"timestamp": 5, "ok": true})
            ),
            json!({"timestamp": "5", "ok": true})
        );
        // A path that leads nowhere changes nothing.
        let answer = json!({"a": {"b": 1}, "c": [1, 2]});
        for path in ["x.y", "a[].b", "c.d", "c[].d", "", ".", "a..b"] {
            assert_eq!(
                change(ShapeChange::Drop, path, answer.clone()),
                answer,
                "{path}"
            );
        }
    }

    #[test]
    fn a_fault_for_one_method_spares_the_others() {
        let control = Control::default();
        control.inject(FaultRule {
            method: Some("POST".into()),
            ..FaultRule::new("/slitz/api/details", Fault::Malformed)
        });
        assert_eq!(
            control
                .record("GET", "/slitz/api/details", "/slitz/api/details")
                .0,
            None
        );
        assert_eq!(
            control
                .record("POST", "/slitz/api/details", "/slitz/api/details")
                .0,
            Some(Fault::Malformed)
        );
    }
}
