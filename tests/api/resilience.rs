//! Timeouts, retries, circuit breakers and isolation, with the simulator's faults.

use std::time::{Duration, Instant};

use gateway::sandbox::{Fault, FaultRule};
use serde_json::Value;

use crate::{
    customers::activate,
    helpers::{assert_problem, spawn_app, spawn_app_with, wait_until},
};

const DETAILS: &str = "GET /slitz/api/details";

/// The whole-upstream breaker states `/readyz` reports: (slitz, dna).
pub async fn breakers(app: &crate::helpers::TestApp) -> (String, String) {
    let ready = crate::helpers::get_json(&app.url("/readyz")).await;
    let state = |upstream: &str| {
        ready["checks"][upstream]["breaker"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    (state("slitz"), state("dna"))
}

/// The operations of `upstream` whose breaker `/readyz` lists as not closed.
pub async fn open_operations(app: &crate::helpers::TestApp, upstream: &str) -> Vec<String> {
    let ready = crate::helpers::get_json(&app.url("/readyz")).await;
    ready["checks"][upstream]["open_operations"]
        .as_array()
        .map(|ops| {
            ops.iter()
                .map(|op| op.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}
const TICKETS: &str = "GET /slitz/api/tickets";

/// The simulator answering `code` with a generic error page.
pub fn status(code: u16) -> Fault {
    Fault::Status {
        status: code,
        body: None,
        retry_after: None,
    }
}

#[tokio::test]
async fn each_fault_class_maps_to_its_problem() {
    for (fault, expected) in [
        (status(500), 502),
        (Fault::Malformed, 502),
        (Fault::Reset, 502),
        (Fault::Hang, 504),
        (status(503), 503),
        (status(429), 503),
    ] {
        let app = spawn_app_with(|s| {
            s.upstream.retries = 0;
            s.upstream.timeout_ms = 300;
        })
        .await;
        app.sandbox
            .control
            .inject(FaultRule::new("/slitz/api/tickets", fault.clone()));
        let problem = assert_problem(app.get("/v1/support/tickets").await, expected).await;
        assert_eq!(problem["upstream"], "slitz", "{fault:?}");
    }
}

#[tokio::test]
async fn a_slow_answer_within_the_timeout_is_just_slow() {
    let app = spawn_app_with(|s| s.upstream.timeout_ms = 2_000).await;
    app.sandbox.control.inject(FaultRule::new(
        "/slitz/api/tickets",
        Fault::Delay { ms: 300 },
    ));
    assert_eq!(app.get("/v1/support/tickets").await.status().as_u16(), 200);
}

#[tokio::test]
async fn reads_are_retried_until_they_succeed() {
    let app = spawn_app().await;
    app.sandbox.control.inject(FaultRule {
        times: Some(2),
        ..FaultRule::new("/slitz/api/details", status(500))
    });
    assert_eq!(app.get("/v1/account").await.status().as_u16(), 200);
    assert_eq!(app.sandbox.control.calls(DETAILS), 3);
}

#[tokio::test]
async fn writes_are_never_retried() {
    let app = spawn_app().await;
    app.sandbox.control.inject(FaultRule::new(
        "/dna/api/residential/client/{id}/{action}",
        status(500),
    ));
    assert_problem(activate(&app, 6517).await, 502).await;
    assert_eq!(
        app.sandbox
            .control
            .calls("POST /dna/api/residential/client/{id}/{action}"),
        1
    );
}

#[tokio::test]
async fn retry_after_from_the_upstream_is_honoured() {
    let app = spawn_app().await;
    app.sandbox.control.inject(FaultRule {
        times: Some(1),
        ..FaultRule::new(
            "/slitz/api/balance",
            Fault::Status {
                status: 503,
                body: None,
                retry_after: Some(1),
            },
        )
    });
    let started = Instant::now();
    assert_eq!(app.get("/v1/billing/balance").await.status().as_u16(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited as asked: {:?}",
        started.elapsed()
    );
    assert_eq!(app.sandbox.control.calls("GET /slitz/api/balance"), 2);
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_and_recovers() {
    let app = spawn_app_with(|s| {
        s.upstream.retries = 0;
        s.upstream.breaker_failures = 3;
        s.upstream.breaker_open_ms = 500;
    })
    .await;
    app.sandbox
        .control
        .inject(FaultRule::new("/slitz/api/tickets", status(500)));
    for _ in 0..3 {
        assert_problem(app.get("/v1/support/tickets").await, 502).await;
    }
    // Open: fails fast, Slitz is not called, the caller is told when to retry.
    let fast = app.get("/v1/support/tickets").await;
    assert!(fast.headers().contains_key("retry-after"));
    let problem = assert_problem(fast, 503).await;
    assert_eq!(problem["type"], "urn:gateway:problem:upstream-circuit-open");
    assert_eq!(app.sandbox.control.calls(TICKETS), 3);
    assert_eq!(open_operations(&app, "slitz").await, ["GET /tickets"]);
    assert_eq!(
        breakers(&app).await,
        ("closed".into(), "closed".into()),
        "the upstreams as a whole are fine"
    );
    // DNA is not affected.
    assert_eq!(activate(&app, 6517).await.status().as_u16(), 200);

    app.sandbox.control.clear_faults();
    wait_until("the tickets breaker lets a probe through", async || {
        crate::helpers::get_text(&app.url("/metrics"))
            .await
            .contains(r#"gateway_breaker_state{upstream="slitz",operation="GET /tickets"} 1"#)
    })
    .await;
    // Half-open: one probe goes through, succeeds, and closes the breaker.
    assert_eq!(app.get("/v1/support/tickets").await.status().as_u16(), 200);
    assert!(open_operations(&app, "slitz").await.is_empty());
}

#[tokio::test]
async fn an_open_breaker_still_serves_stale_cache() {
    let app = spawn_app_with(|s| {
        s.upstream.retries = 0;
        s.upstream.breaker_failures = 2;
        s.upstream.breaker_open_ms = 60_000;
        s.cache.routes.insert(gateway::cache::Route::Account, 0);
    })
    .await;
    assert_eq!(app.get("/v1/account").await.status().as_u16(), 200);
    app.sandbox
        .control
        .inject(FaultRule::new("/slitz/api/details", status(500)));
    // Two failures open the details breaker; stale answers meanwhile.
    for _ in 0..3 {
        let stale = app.get("/v1/account").await;
        assert_eq!(stale.status().as_u16(), 200);
        assert_eq!(stale.headers()["x-cache"], "STALE");
    }
    assert_eq!(
        app.sandbox.control.calls(DETAILS),
        3,
        "the third read did not call Slitz"
    );
    assert_eq!(open_operations(&app, "slitz").await, ["GET /details"]);
}

#[tokio::test]
async fn a_hanging_slitz_does_not_slow_healthz_or_dna() {
    let app = spawn_app_with(|s| s.upstream.timeout_ms = 10_000).await;
    app.sandbox
        .control
        .inject(FaultRule::new("/slitz/api/details", Fault::Hang));
    let hanging: Vec<_> = (0..20)
        .map(|_| {
            let request = app.authed(reqwest::Method::GET, "/v1/account").send();
            tokio::spawn(request)
        })
        .collect();
    wait_until("a read hangs at slitz", async || {
        app.sandbox.control.calls(DETAILS) >= 1
    })
    .await;
    let limit = Duration::from_secs(2);
    let health = tokio::time::timeout(limit, app.client.get(app.url("/healthz")).send()).await;
    assert_eq!(
        health
            .expect("healthz answers while slitz hangs")
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let write = tokio::time::timeout(limit, activate(&app, 6517)).await;
    assert_eq!(
        write
            .expect("dna answers while slitz hangs")
            .status()
            .as_u16(),
        200
    );
    let balance = tokio::time::timeout(limit, app.get("/v1/billing/balance")).await;
    assert_eq!(
        balance
            .expect("other slitz routes answer")
            .status()
            .as_u16(),
        200
    );
    assert!(
        hanging.iter().all(|h| !h.is_finished()),
        "the slitz calls were still hanging meanwhile"
    );
    for h in hanging {
        h.abort();
    }
}

#[tokio::test]
async fn calls_beyond_the_concurrency_bound_get_a_503() {
    let app = spawn_app_with(|s| {
        s.upstream.max_concurrency = 2;
        s.upstream.timeout_ms = 10_000;
    })
    .await;
    // Two different routes: concurrent reads of one route share one call.
    app.sandbox
        .control
        .inject(FaultRule::new("/slitz/api/details", Fault::Hang));
    app.sandbox
        .control
        .inject(FaultRule::new("/slitz/api/tickets", Fault::Hang));
    let hanging: Vec<_> = ["/v1/account", "/v1/support/tickets"]
        .into_iter()
        .map(|path| tokio::spawn(app.authed(reqwest::Method::GET, path).send()))
        .collect();
    wait_until("both reads hang at slitz", async || {
        app.sandbox.control.calls(DETAILS) >= 1
            && app.sandbox.control.calls("GET /slitz/api/tickets") >= 1
    })
    .await;
    let problem = assert_problem(app.get("/v1/billing/balance").await, 503).await;
    assert_eq!(problem["type"], "urn:gateway:problem:upstream-busy");
    for h in hanging {
        h.abort();
    }
}

#[tokio::test]
async fn the_request_deadline_bounds_retries() {
    let app = spawn_app_with(|s| {
        s.upstream.timeout_ms = 1_000;
        s.upstream.deadline_ms = 1_500;
        s.upstream.retries = 5;
    })
    .await;
    app.sandbox
        .control
        .inject(FaultRule::new("/slitz/api/details", Fault::Hang));
    let started = Instant::now();
    assert_problem(app.get("/v1/account").await, 504).await;
    // Six one-second attempts would take over six seconds.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(app.sandbox.control.calls(DETAILS) <= 2);
}

#[tokio::test]
async fn everything_recovers_without_a_restart() {
    let app = spawn_app_with(|s| {
        s.upstream.retries = 0;
        s.upstream.breaker_failures = 2;
        s.upstream.breaker_open_ms = 300;
    })
    .await;
    for path in [
        "/slitz/api/details",
        "/dna/api/residential/client/{id}/{action}",
    ] {
        app.sandbox
            .control
            .inject(FaultRule::new(path, status(500)));
    }
    for _ in 0..3 {
        let _ = app.get("/v1/account").await;
        let _ = activate(&app, 6517).await;
    }
    app.sandbox.control.clear_faults();
    wait_until("no breaker is open", async || {
        let metrics = crate::helpers::get_text(&app.url("/metrics")).await;
        !crate::helpers::samples(&metrics, "gateway_breaker_state")
            .iter()
            .any(|sample| sample.ends_with(" 2"))
    })
    .await;
    assert_eq!(app.get("/v1/account").await.status().as_u16(), 200);
    assert_eq!(activate(&app, 6517).await.status().as_u16(), 200);
    let overview: Value = app.get("/v1/overview").await.json().await.unwrap();
    assert_eq!(overview["partial"], false);
}
