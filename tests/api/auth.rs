use gateway::{auth::Scope, auth::sha256_hex, configuration::ApiKeySettings};

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_request_without_a_key_is_a_401_problem_with_www_authenticate() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/v1/account")).send().await.unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="gateway""#
    );
    assert_problem(response, 401).await;
    assert_eq!(app.sandbox.control.calls("GET /slitz/api/details"), 0);
}

#[tokio::test]
async fn a_wrong_or_malformed_key_is_a_401_and_never_reaches_slitz() {
    let app = spawn_app().await;
    for header in [
        "Bearer wrong-key",
        "Bearer ",
        "Basic c2FuZGJveC1rZXk6",
        "sandbox-key",
        "Bearer sandbox-key2",
    ] {
        let response = app
            .client
            .get(app.url("/v1/account"))
            .header("Authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{header}");
        let www = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(www.starts_with("Bearer"), "{header}: {www}");
        assert_problem(response, 401).await;
    }
    assert_eq!(app.sandbox.control.calls("GET /slitz/api/details"), 0);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/v1/account"))
        .header("Authorization", "bearer sandbox-key")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn a_key_without_the_read_scope_is_a_403_and_never_reaches_slitz() {
    let app = spawn_app_with(|s| {
        s.auth.api_keys.push(ApiKeySettings {
            name: "writer-only".into(),
            sha256: sha256_hex("writer-key"),
            scopes: [Scope::Write].into(),
            rate_per_second: 0,
            burst: 0,
        });
    })
    .await;
    let response = app
        .client
        .get(app.url("/v1/account"))
        .bearer_auth("writer-key")
        .send()
        .await
        .unwrap();
    let www = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(www.contains(r#"error="insufficient_scope""#), "{www}");
    let body = assert_problem(response, 403).await;
    assert!(body["detail"].as_str().unwrap().contains("read"));
    assert_eq!(app.sandbox.control.calls("GET /slitz/api/details"), 0);
}

#[tokio::test]
async fn a_second_configured_key_works_with_its_own_scopes() {
    let app = spawn_app_with(|s| {
        s.auth.api_keys.push(ApiKeySettings {
            name: "reader".into(),
            sha256: sha256_hex("reader-key"),
            scopes: [Scope::Read].into(),
            rate_per_second: 0,
            burst: 0,
        });
    })
    .await;
    let response = app
        .client
        .get(app.url("/v1/account"))
        .bearer_auth("reader-key")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn operational_routes_and_docs_need_no_key() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/openapi.json", "/docs/"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
    }
}

#[tokio::test]
async fn a_key_over_its_rate_gets_a_429_with_retry_after_and_slitz_is_spared() {
    let app = spawn_app_with(|s| {
        s.auth.api_keys.push(ApiKeySettings {
            name: "slow".into(),
            sha256: sha256_hex("slow-key"),
            scopes: [Scope::Read].into(),
            rate_per_second: 1,
            burst: 2,
        });
    })
    .await;
    let call = || {
        app.client
            .get(app.url("/v1/account"))
            .bearer_auth("slow-key")
            .send()
    };
    // Every answer tells the key where it stands (the IETF RateLimit fields).
    let first = call().await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    assert_eq!(first.headers()["ratelimit-policy"], "\"per-key\";q=2;w=2");
    assert_eq!(first.headers()["ratelimit"], "\"per-key\";r=1;t=1");
    let second = call().await.unwrap();
    assert_eq!(second.status().as_u16(), 200);
    let left = second.headers()["ratelimit"].to_str().unwrap().to_owned();
    assert!(left.starts_with("\"per-key\";r=0;t="), "{left}");
    let limited = call().await.unwrap();
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let state = limited.headers()["ratelimit"].to_str().unwrap().to_owned();
    let reset: u64 = state
        .strip_prefix("\"per-key\";r=0;t=")
        .unwrap_or_else(|| panic!("{state}"))
        .parse()
        .unwrap();
    assert!((retry_after..=3).contains(&reset), "{state}");
    let problem = assert_problem(limited, 429).await;
    assert_eq!(problem["type"], "urn:gateway:problem:rate-limited");
    // Other keys have their own budget; an unlimited key gets no fields.
    let unlimited = app.get("/v1/account").await;
    assert_eq!(unlimited.status().as_u16(), 200);
    assert!(!unlimited.headers().contains_key("ratelimit"));
    assert_eq!(
        app.sandbox.control.calls("GET /slitz/api/details"),
        1,
        "the rest were cache hits or refused"
    );
}

#[tokio::test]
async fn cors_answers_preflights_for_allowed_origins_only() {
    let app =
        spawn_app_with(|s| s.server.cors_allowed_origins = vec!["https://app.example.com".into()])
            .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/customers"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, idempotency-key",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(allowed.status().as_u16(), 200);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let methods = allowed.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");

    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let simple = app
        .authed(reqwest::Method::GET, "/v1/account")
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(simple.status().as_u16(), 200);
    let exposed = simple.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for header in [
        "x-request-id",
        "x-cache",
        "etag",
        "ratelimit",
        "ratelimit-policy",
    ] {
        assert!(exposed.contains(header), "{header} in {exposed}");
    }
}

#[tokio::test]
async fn without_configured_origins_there_are_no_cors_headers() {
    let app = spawn_app_with(|s| s.server.cors_allowed_origins.clear()).await;
    let response = app
        .authed(reqwest::Method::GET, "/v1/account")
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "same-origin style requests still work"
    );
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
