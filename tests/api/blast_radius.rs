//! What one failure may take down: a failing operation only itself, a
//! refusing upstream only its own operations, a slow upstream only the calls
//! beyond its adaptive limit, slow clients only their own connections.

use std::net::SocketAddr;

use gateway::sandbox::{Fault, FaultRule, Sandbox};
use serde_json::{Value, json};

use crate::{
    customers::{CREATE, activate, create, new_customer},
    helpers::{assert_problem, get_text, samples, spawn_app_with, wait_until},
    resilience::{breakers, open_operations, status},
};

#[tokio::test]
async fn one_failing_operation_does_not_black_out_its_upstream() {
    let app = spawn_app_with(|s| {
        s.upstream.retries = 0;
        s.upstream.breaker_failures = 5;
        s.upstream.breaker_open_ms = 60_000;
        // Every read goes to Slitz: nothing is cached or served stale.
        s.cache.ttl_seconds = 0;
        s.cache.stale_seconds = 0;
    })
    .await;
    app.sandbox
        .control
        .inject(FaultRule::new("/slitz/api/tickets", status(500)));
    for _ in 0..12 {
        let answer = app.get("/v1/support/tickets").await;
        assert!(answer.status().is_server_error());
    }
    assert_eq!(
        app.sandbox.control.calls("GET /slitz/api/tickets"),
        5,
        "open after five"
    );
    let calls = || app.sandbox.control.all_calls().values().sum::<u64>();
    let before = calls();
    for path in [
        "/v1/account",
        "/v1/billing/balance",
        "/v1/billing/invoices",
        "/v1/services",
        "/v1/domains",
    ] {
        let answer = app.get(path).await;
        assert_eq!(answer.status().as_u16(), 200, "{path}");
        assert_eq!(answer.headers()["x-cache"], "MISS", "{path} from Slitz");
    }
    assert_eq!(calls() - before, 5, "each read was a fresh Slitz call");
    // Ready: an operation is failing, not Slitz.
    let ready = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["slitz"]["breaker"], "closed");
    assert_eq!(
        ready["checks"]["slitz"]["open_operations"],
        json!(["GET /tickets"])
    );
    let metrics = get_text(&app.url("/metrics")).await;
    for sample in [
        r#"gateway_breaker_state{upstream="slitz",operation="GET /tickets"} 2"#,
        r#"gateway_breaker_state{upstream="slitz",operation="GET /details"} 0"#,
        r#"gateway_breaker_state{upstream="slitz",operation="*"} 0"#,
        r#"gateway_breaker_opened_total{upstream="slitz",operation="GET /tickets"} 1"#,
    ] {
        assert!(metrics.contains(sample), "{sample}:\n{metrics}");
    }
}

#[tokio::test]
async fn a_failing_dna_activate_leaves_create_and_slitz_alone() {
    let app = spawn_app_with(|s| {
        s.upstream.breaker_failures = 2;
        s.upstream.breaker_open_ms = 60_000;
    })
    .await;
    app.sandbox.control.inject(FaultRule::new(
        "/dna/api/residential/client/{id}/{action}",
        status(500),
    ));
    for _ in 0..2 {
        assert_problem(activate(&app, 6517).await, 502).await;
    }
    let problem = assert_problem(activate(&app, 6517).await, 503).await;
    assert_eq!(problem["type"], "urn:gateway:problem:upstream-circuit-open");
    let creates = app.sandbox.control.calls(CREATE);
    let created = create(&app, &new_customer("blast-1"), None).await;
    assert_eq!(created.status().as_u16(), 201);
    assert_eq!(
        app.sandbox.control.calls(CREATE),
        creates + 1,
        "the create was sent"
    );
    assert_eq!(app.get("/v1/account").await.status().as_u16(), 200);
    assert_eq!(
        open_operations(&app, "dna").await,
        ["POST /residential/client/{id}/{action}"]
    );
    assert!(open_operations(&app, "slitz").await.is_empty());
    assert_eq!(breakers(&app).await, ("closed".into(), "closed".into()));
}

/// A simulator on `port` again, once the stopped one has let it go.
async fn restart_on(port: u16) -> Sandbox {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut sandbox = None;
    wait_until("the stopped simulator's port is free", async || {
        sandbox = Sandbox::start(addr).ok();
        sandbox.is_some()
    })
    .await;
    sandbox.expect("started")
}

#[tokio::test]
async fn a_refusing_slitz_fails_fast_everywhere_and_one_probe_closes_it() {
    // Slitz on a simulator of its own, which the test stops and starts again.
    let slitz = Sandbox::start(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let slitz_url = slitz.slitz_base_url();
    let app = spawn_app_with(|s| {
        s.slitz.base_url = slitz_url.clone();
        s.upstream.retries = 0;
        s.upstream.breaker_failures = 3;
        // Long enough to see it open under a loaded machine, short enough to wait out.
        s.upstream.breaker_open_ms = 1_500;
        s.cache.stale_seconds = 0;
    })
    .await;
    assert_eq!(app.get("/v1/account").await.status().as_u16(), 200);
    slitz.stop().await;
    // Refused connections, over several operations, open Slitz's own
    // breaker (until the stopped simulator's last connections are gone, a
    // call may still be answered, or cut off as a reset: those are not
    // refusals and do not count).
    let paths = ["/v1/billing/balance", "/v1/support/tickets", "/v1/domains"];
    let mut next = paths.iter().cycle();
    let mut unavailable = 0;
    wait_until("slitz's own breaker opens", async || {
        let answer = app.get(next.next().unwrap()).await;
        if answer.status().as_u16() == 503 {
            let problem: Value = answer.json().await.unwrap();
            if problem["type"] == "urn:gateway:problem:upstream-unavailable" {
                unavailable += 1;
            }
        }
        breakers(&app).await.0 == "open"
    })
    .await;
    assert!(unavailable >= 3, "opened by refused connections");
    // ...and every operation fails fast.
    for path in ["/v1/services", "/v1/billing/invoices"] {
        let problem = assert_problem(app.get(path).await, 503).await;
        assert_eq!(problem["type"], "urn:gateway:problem:upstream-circuit-open");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("every call to it"),
            "{problem}"
        );
    }
    let ready = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["slitz"]["status"], "down", "{ready}");
    assert!(
        ready["detail"].as_str().unwrap().contains("slitz"),
        "{ready}"
    );
    assert!(
        ready["checks"]["slitz"]["open_operations"].is_null(),
        "no operation is blamed: {ready}"
    );
    assert_eq!(ready["checks"]["dna"]["status"], "up");
    // DNA is another upstream.
    assert_eq!(activate(&app, 6517).await.status().as_u16(), 200);

    // Slitz comes back on the same address.
    let back = restart_on(slitz_url.port().unwrap()).await;
    wait_until("the slitz breaker lets a probe through", async || {
        breakers(&app).await.0 == "half_open"
    })
    .await;
    assert_eq!(app.get("/v1/services").await.status().as_u16(), 200);
    assert_eq!(breakers(&app).await.0, "closed", "one probe closed it");
    assert_eq!(back.control.calls("GET /slitz/api/service"), 1);
    assert_eq!(app.get("/v1/billing/balance").await.status().as_u16(), 200);
    let ready = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
}

#[tokio::test]
async fn each_upstream_has_its_own_policy() {
    let app = spawn_app_with(|s| {
        s.upstream.retries = 0;
        s.upstream.slitz.timeout_ms = Some(200);
        s.upstream.slitz.deadline_ms = Some(1_000);
    })
    .await;
    for path in [
        "/slitz/api/tickets",
        "/dna/api/residential/client/{id}/{action}",
    ] {
        app.sandbox
            .control
            .inject(FaultRule::new(path, Fault::Delay { ms: 500 }));
    }
    let problem = assert_problem(app.get("/v1/support/tickets").await, 504).await;
    assert_eq!(problem["upstream"], "slitz");
    assert_eq!(
        activate(&app, 6517).await.status().as_u16(),
        200,
        "DNA keeps the default 10 s timeout"
    );
}

/// `gateway_upstream_concurrency_limit` of Slitz now.
async fn slitz_limit(app: &crate::helpers::TestApp) -> u64 {
    let metrics = get_text(&app.url("/metrics")).await;
    samples(&metrics, "gateway_upstream_concurrency_limit")
        .into_iter()
        .find_map(|line| {
            line.strip_prefix(r#"gateway_upstream_concurrency_limit{upstream="slitz"} "#)
        })
        .and_then(|value| value.parse().ok())
        .expect("the slitz limit is in /metrics")
}

#[tokio::test]
async fn the_adaptive_limit_shrinks_when_slitz_slows_and_grows_back() {
    let app = std::sync::Arc::new(
        spawn_app_with(|s| {
            s.upstream.retries = 0;
            s.upstream.slitz.adaptive_concurrency = Some(true);
            s.upstream.slitz.max_concurrency = Some(32);
            s.cache.ttl_seconds = 0;
            s.cache.stale_seconds = 0;
        })
        .await,
    );
    assert_eq!(slitz_limit(&app).await, 32);
    // Steady load: 16 callers, each reading ticket pages (each page its own
    // cache key, so no two reads share a call).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let callers: Vec<_> = (0..16u64)
        .map(|caller| {
            let (app, stop, busy) = (app.clone(), stop.clone(), busy.clone());
            tokio::spawn(async move {
                let mut page = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    page += 1;
                    let path = format!("/v1/support/tickets?page={}", caller * 50_000 + page);
                    let answer = app.get(&path).await;
                    if answer.status().as_u16() == 503 {
                        let problem: Value = answer.json().await.unwrap();
                        assert_eq!(problem["type"], "urn:gateway:problem:upstream-busy");
                        busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    } else {
                        assert_eq!(answer.status().as_u16(), 200);
                    }
                }
            })
        })
        .collect();
    wait_until("a few hundred fast calls", async || {
        app.sandbox.control.calls("GET /slitz/api/tickets") >= 300
    })
    .await;
    assert_eq!(
        slitz_limit(&app).await,
        32,
        "a fast Slitz keeps the ceiling"
    );
    assert_eq!(busy.load(std::sync::atomic::Ordering::Relaxed), 0);

    // Slitz slows from ~1 ms to 300 ms.
    app.sandbox.control.inject(FaultRule::new(
        "/slitz/api/tickets",
        Fault::Delay { ms: 300 },
    ));
    wait_until("the limit shrinks below the callers", async || {
        slitz_limit(&app).await < 16
    })
    .await;
    let refused_before = busy.load(std::sync::atomic::Ordering::Relaxed);
    wait_until("callers beyond the limit are refused", async || {
        busy.load(std::sync::atomic::Ordering::Relaxed) > refused_before + 20
    })
    .await;
    // Refused at once: Slitz saw far fewer calls than callers made.
    let metrics = get_text(&app.url("/metrics")).await;
    assert!(
        metrics.contains(
            r#"gateway_upstream_calls_total{upstream="slitz",operation="GET /tickets",outcome="saturated"}"#
        ),
        "{metrics}"
    );

    // Slitz recovers: the limit grows back to the ceiling.
    app.sandbox.control.clear_faults();
    wait_until("the limit grows back", async || {
        slitz_limit(&app).await == 32
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
}

#[tokio::test]
async fn slow_header_clients_are_cut_off_while_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(|s| s.server.client_request_timeout_ms = 1_000).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    // 300 clients that start a request and never finish its headers.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        stream
            .write_all(b"GET /v1/account HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    // Others are served meanwhile.
    for _ in 0..5 {
        assert_eq!(app.get("/v1/account").await.status().as_u16(), 200);
        assert_eq!(
            app.client
                .get(app.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
            200
        );
    }
    // Each slow one is answered 408 and its connection closed.
    for mut stream in slow {
        let mut answer = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            stream.read_to_end(&mut answer),
        )
        .await;
        assert!(read.is_ok(), "the connection was closed by the gateway");
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
}
