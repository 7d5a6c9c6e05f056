//! The Slitz read cache, observed through headers and the simulator's call counters.

use gateway::sandbox::{Fault, FaultRule};

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

const INVOICES: &str = "GET /slitz/api/invoice";
const DETAILS: &str = "GET /slitz/api/details";

#[tokio::test]
async fn fifty_concurrent_cold_reads_make_one_slitz_call() {
    let app = spawn_app().await;
    // Slow Slitz down so the 50 requests really overlap.
    app.sandbox
        .control
        .set_latency(std::time::Duration::from_millis(200));
    let requests = (0..50).map(|_| app.get("/v1/billing/invoices"));
    let responses = futures_util::future::join_all(requests).await;
    let mut bodies = std::collections::HashSet::new();
    for response in responses {
        assert_eq!(response.status().as_u16(), 200);
        bodies.insert(response.text().await.unwrap());
    }
    assert_eq!(bodies.len(), 1, "everyone got the same answer");
    assert_eq!(app.sandbox.control.calls(INVOICES), 1);
}

#[tokio::test]
async fn a_warm_read_is_a_hit_that_makes_no_call() {
    let app = spawn_app().await;
    let first = app.get("/v1/billing/invoices").await;
    assert_eq!(first.headers()["x-cache"], "MISS");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "a strong ETag: {etag}"
    );
    let second = app.get("/v1/billing/invoices").await;
    assert_eq!(second.headers()["x-cache"], "HIT");
    assert_eq!(second.headers()["etag"], etag.as_str());
    let cache_control = second.headers()["cache-control"]
        .to_str()
        .unwrap()
        .to_owned();
    let max_age: u64 = cache_control
        .strip_prefix("private, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age <= 60, "{cache_control}");
    assert_eq!(app.sandbox.control.calls(INVOICES), 1);
}

#[tokio::test]
async fn if_none_match_is_answered_with_304() {
    let app = spawn_app().await;
    let first = app.get("/v1/account").await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let again = app
        .authed(reqwest::Method::GET, "/v1/account")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    assert_eq!(again.headers()["x-cache"], "HIT");
    assert!(again.bytes().await.unwrap().is_empty());
    let other = app
        .authed(reqwest::Method::GET, "/v1/account")
        .header("if-none-match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 200);
}

#[tokio::test]
async fn different_pages_are_different_entries() {
    let app = spawn_app().await;
    let one: serde_json::Value = app
        .get("/v1/billing/invoices?per_page=1")
        .await
        .json()
        .await
        .unwrap();
    let two: serde_json::Value = app
        .get("/v1/billing/invoices?per_page=1&page=2")
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(one["items"], two["items"]);
}

#[tokio::test]
async fn a_slitz_failure_after_expiry_serves_the_stale_entry() {
    let app = spawn_app_with(|s| {
        s.cache.routes.insert(gateway::cache::Route::Account, 0);
        s.cache.stale_seconds = 600;
    })
    .await;
    let fresh = app.get("/v1/account").await;
    assert_eq!(fresh.headers()["x-cache"], "MISS");
    let fresh_body = fresh.text().await.unwrap();
    for fault in [
        Fault::Status {
            status: 500,
            body: None,
            retry_after: None,
        },
        Fault::Malformed,
        Fault::Reset,
    ] {
        app.sandbox.control.clear_faults();
        app.sandbox
            .control
            .inject(FaultRule::new("/slitz/api/details", fault.clone()));
        let stale = app.get("/v1/account").await;
        assert_eq!(stale.status().as_u16(), 200, "{fault:?}");
        assert_eq!(stale.headers()["x-cache"], "STALE", "{fault:?}");
        assert_eq!(stale.headers()["cache-control"], "private, max-age=0");
        assert_eq!(stale.text().await.unwrap(), fresh_body);
    }
}

#[tokio::test]
async fn a_hanging_slitz_after_expiry_serves_the_stale_entry() {
    let app = spawn_app_with(|s| {
        s.cache.routes.insert(gateway::cache::Route::Balance, 0);
        s.upstream.timeout_ms = 300;
    })
    .await;
    assert_eq!(app.get("/v1/billing/balance").await.status().as_u16(), 200);
    app.sandbox
        .control
        .inject(FaultRule::new("/slitz/api/balance", Fault::Hang));
    let stale = app.get("/v1/billing/balance").await;
    assert_eq!(stale.headers()["x-cache"], "STALE");
}

#[tokio::test]
async fn past_the_grace_period_a_failure_is_a_problem() {
    let app = spawn_app_with(|s| {
        s.cache.routes.insert(gateway::cache::Route::Account, 0);
        s.cache.stale_seconds = 0;
    })
    .await;
    assert_eq!(app.get("/v1/account").await.status().as_u16(), 200);
    app.sandbox.control.inject(FaultRule::new(
        "/slitz/api/details",
        Fault::Status {
            status: 500,
            body: None,
            retry_after: None,
        },
    ));
    assert_problem(app.get("/v1/account").await, 502).await;
}

#[tokio::test]
async fn errors_are_never_cached() {
    let app = spawn_app().await;
    app.sandbox.control.inject(FaultRule {
        times: Some(3),
        ..FaultRule::new(
            "/slitz/api/details",
            Fault::Status {
                status: 500,
                body: None,
                retry_after: None,
            },
        )
    });
    assert_problem(app.get("/v1/account").await, 502).await;
    assert_eq!(
        app.sandbox.control.calls(DETAILS),
        3,
        "the first try and both retries"
    );
    let ok = app.get("/v1/account").await;
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.headers()["x-cache"], "MISS");
    assert_eq!(app.sandbox.control.calls(DETAILS), 4);
    // A 404 is not cached either (nor retried: it is an answer).
    assert_problem(app.get("/v1/domains/999").await, 404).await;
    assert_problem(app.get("/v1/domains/999").await, 404).await;
    assert_eq!(app.sandbox.control.calls("GET /slitz/api/domain/{id}"), 2);
}
