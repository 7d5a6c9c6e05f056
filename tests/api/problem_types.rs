//! Every problem type the gateway documents, provoked over real HTTP. The
//! match over `ProblemType` is exhaustive: a new type does not compile until
//! it has its case here.

use std::net::{SocketAddr, TcpListener};

use gateway::{
    auth::{Scope, sha256_hex},
    configuration::{ApiKeySettings, RedisSettings, Settings},
    error::ProblemType,
    sandbox::{Fault, FaultRule, Sandbox},
    startup::Application,
};
use serde_json::Value;

use crate::{
    customers::{CREATE, create, new_customer},
    helpers::{TestApp, assert_problem, refusing_url, spawn_app, spawn_app_with, wait_until},
};

const DETAILS: &str = "/slitz/api/details";

fn fault(app: &TestApp, path: &str, fault: Fault) {
    app.sandbox.control.inject(FaultRule::new(path, fault));
}

fn status(status: u16, body: Option<&str>, retry_after: Option<u64>) -> Fault {
    Fault::Status {
        status,
        body: body.map(str::to_owned),
        retry_after,
    }
}

fn no_retries(s: &mut Settings) {
    s.upstream.retries = 0;
}

/// A key of its own, with these scopes and this rate.
fn with_key(s: &mut Settings, scopes: &[Scope], rate: u32) {
    s.auth.api_keys.push(ApiKeySettings {
        name: "other".into(),
        sha256: sha256_hex("other-key"),
        scopes: scopes.iter().copied().collect(),
        rate_per_second: rate,
        burst: rate,
    });
}

/// A gateway with a route that panics, as a bug would.
async fn panicking_gateway() -> (String, Sandbox) {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let sandbox = Sandbox::start(loopback).unwrap();
    let settings = crate::helpers::sandbox_settings(&sandbox, loopback);
    let app =
        Application::build_with_routes(settings, TcpListener::bind(loopback).unwrap(), |cfg| {
            cfg.route(
                "/test/panic",
                actix_web::web::get().to(|| async {
                    let empty: Vec<u8> = Vec::new();
                    #[allow(clippy::indexing_slicing)]
                    empty[1].to_string()
                }),
            );
        })
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    (base, sandbox)
}

/// Provokes `kind` and returns the problem answered, checked as a problem.
async fn provoke(kind: ProblemType) -> (u16, Value) {
    use ProblemType as P;
    let (expected, response) = match kind {
        P::Validation => {
            let app = spawn_app().await;
            (400, app.get("/v1/billing/invoices/abc").await)
        }
        P::Unauthenticated => {
            let app = spawn_app().await;
            (
                401,
                app.client.get(app.url("/v1/account")).send().await.unwrap(),
            )
        }
        P::Forbidden => {
            let app = spawn_app_with(|s| with_key(s, &[Scope::Read], 0)).await;
            let response = app
                .client
                .patch(app.url("/v1/account"))
                .bearer_auth("other-key")
                .json(&serde_json::json!({"city": "Lund"}))
                .send()
                .await
                .unwrap();
            (403, response)
        }
        P::NotFound => {
            let app = spawn_app().await;
            (404, app.get("/v1/nothing-here").await)
        }
        P::IdempotencyKeyInUse => {
            let app = spawn_app().await;
            fault(
                &app,
                "/dna/api/residential/client",
                Fault::Delay { ms: 1500 },
            );
            let body = new_customer("IN-USE-1");
            let first = create(&app, &body, Some("in-use"));
            let second = async {
                wait_until("the first create reaches DNA", async || {
                    app.sandbox.control.calls(CREATE) == 1
                })
                .await;
                create(&app, &body, Some("in-use")).await
            };
            let (_, second) = tokio::join!(first, second);
            (409, second)
        }
        P::Duplicate => {
            let app = spawn_app().await;
            let body = new_customer("TWICE-1");
            assert_eq!(create(&app, &body, None).await.status().as_u16(), 201);
            (409, create(&app, &body, None).await)
        }
        P::RateLimited => {
            let app = spawn_app_with(|s| with_key(s, &[Scope::Read], 1)).await;
            let call = || {
                app.client
                    .get(app.url("/v1/account"))
                    .bearer_auth("other-key")
                    .send()
            };
            assert_eq!(call().await.unwrap().status().as_u16(), 200);
            (429, call().await.unwrap())
        }
        P::MethodNotAllowed => {
            let app = spawn_app().await;
            (
                405,
                app.authed(reqwest::Method::DELETE, "/v1/account")
                    .send()
                    .await
                    .unwrap(),
            )
        }
        P::PayloadTooLarge => {
            let app = spawn_app_with(|s| s.server.max_body_bytes = 1024).await;
            let response = app
                .authed(reqwest::Method::POST, "/v1/customers")
                .header("content-type", "application/json")
                .body(format!("{{\"customer_id\":\"{}\"}}", "x".repeat(2048)))
                .send()
                .await
                .unwrap();
            (413, response)
        }
        P::UnsupportedMediaType => {
            let app = spawn_app().await;
            let response = app
                .authed(reqwest::Method::PATCH, "/v1/account")
                .header("content-type", "text/plain")
                .body("city=Lund")
                .send()
                .await
                .unwrap();
            (415, response)
        }
        P::NotReady => {
            let app = spawn_app_with(|s| s.slitz.base_url = refusing_url()).await;
            (
                503,
                app.client.get(app.url("/readyz")).send().await.unwrap(),
            )
        }
        P::SharedStateUnavailable => {
            // A Redis nothing can connect to: creates with a key fail closed.
            let app = spawn_app_with(|s| {
                s.redis = Some(RedisSettings::new("redis://127.0.0.1:0/0", "gw:", 500));
            })
            .await;
            (
                503,
                create(&app, &new_customer("NO-STATE-1"), Some("k")).await,
            )
        }
        P::Internal => {
            let (base, _sandbox) = panicking_gateway().await;
            (
                500,
                reqwest::get(format!("{base}/test/panic")).await.unwrap(),
            )
        }
        P::UpstreamCredentialsRejected => {
            let app = spawn_app_with(|s| s.slitz.password = "wrong".to_owned().into()).await;
            (502, app.get_account().await)
        }
        P::UpstreamError => {
            let app = spawn_app_with(no_retries).await;
            fault(&app, DETAILS, status(500, None, None));
            (502, app.get_account().await)
        }
        P::UpstreamRejected => {
            let app = spawn_app().await;
            fault(
                &app,
                DETAILS,
                status(200, Some(r#"{"error":["Database is down"]}"#), None),
            );
            (502, app.get_account().await)
        }
        P::UpstreamMalformed => {
            let app = spawn_app().await;
            fault(&app, DETAILS, Fault::Malformed);
            (502, app.get_account().await)
        }
        P::UpstreamInterrupted => {
            let app = spawn_app_with(no_retries).await;
            fault(&app, DETAILS, Fault::Reset);
            (502, app.get_account().await)
        }
        P::UpstreamTimeout => {
            let app = spawn_app_with(|s| {
                no_retries(s);
                s.upstream.timeout_ms = 300;
            })
            .await;
            fault(&app, DETAILS, Fault::Hang);
            (504, app.get_account().await)
        }
        P::UpstreamUnavailable => {
            let app = spawn_app_with(|s| {
                no_retries(s);
                s.slitz.base_url = refusing_url();
            })
            .await;
            (503, app.get_account().await)
        }
        P::UpstreamThrottled => {
            let app = spawn_app_with(no_retries).await;
            fault(&app, DETAILS, status(429, None, Some(3)));
            (503, app.get_account().await)
        }
        P::UpstreamCircuitOpen => {
            let app = spawn_app_with(|s| {
                no_retries(s);
                s.upstream.breaker_failures = 1;
                s.upstream.breaker_open_ms = 60_000;
            })
            .await;
            fault(&app, DETAILS, status(500, None, None));
            assert_problem(app.get_account().await, 502).await;
            (503, app.get_account().await)
        }
        P::UpstreamBusy => {
            let app = spawn_app_with(|s| s.upstream.max_concurrency = 1).await;
            fault(&app, DETAILS, Fault::Hang);
            let hanging = tokio::spawn(app.authed(reqwest::Method::GET, "/v1/account").send());
            wait_until("a read holds the only slot", async || {
                app.sandbox.control.calls("GET /slitz/api/details") == 1
            })
            .await;
            let busy = app.get("/v1/billing/balance").await;
            hanging.abort();
            (503, busy)
        }
    };
    let body = assert_problem(response, expected).await;
    (expected, body)
}

#[tokio::test]
async fn every_problem_type_is_answered_as_documented() {
    for kind in ProblemType::ALL {
        let (status, body) = provoke(kind).await;
        assert_eq!(body["type"], kind.uri(), "{kind:?}: {body}");
        assert_eq!(body["title"], kind.title(), "{kind:?}: {body}");
        assert_eq!(body["status"], status, "{kind:?}: {body}");
    }
}

#[test]
fn every_problem_type_is_in_the_openapi_document() {
    let doc = gateway::openapi::document();
    let listed: Vec<&str> = doc["components"]["schemas"]["ProblemType"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let all: Vec<String> = ProblemType::ALL.iter().map(|t| t.uri()).collect();
    assert_eq!(listed, all);
}
