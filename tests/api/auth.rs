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
