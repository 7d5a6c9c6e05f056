use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let app = spawn_app().await;
    for path in ["/nope", "/v1/nope", "/v2/account", "/v1/account/extra"] {
        let response = app.get(path).await;
        let body = assert_problem(response, 404).await;
        assert!(body["detail"].as_str().unwrap().contains(path), "{body}");
    }
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem_with_allow() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        (reqwest::Method::DELETE, "/v1/account", "GET, PATCH"),
        (reqwest::Method::POST, "/healthz", "GET"),
        (reqwest::Method::PUT, "/readyz", "GET"),
    ] {
        let response = app.authed(method.clone(), path).send().await.unwrap();
        assert_eq!(response.headers()["allow"], allow, "{method} {path}");
        assert_problem(response, 405).await;
    }
    assert_eq!(app.sandbox.control.calls("GET /slitz/api/details"), 0);
}

#[tokio::test]
async fn a_body_over_max_body_bytes_is_a_413_problem_on_any_route() {
    let app = spawn_app_with(|s| s.server.max_body_bytes = 1024).await;
    let response = app
        .authed(reqwest::Method::POST, "/v1/account")
        .header("content-type", "application/json")
        .body(format!(r#"{{"x":"{}"}}"#, "a".repeat(2048)))
        .send()
        .await
        .unwrap();
    let body = assert_problem(response, 413).await;
    assert!(body["detail"].as_str().unwrap().contains("1024"), "{body}");
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_with_a_431_before_any_upstream_call() {
    let app = spawn_app().await;
    // More headers than the HTTP server parses, and one header of 200 KB.
    let many = (0..120).fold(app.authed(reqwest::Method::GET, "/v1/account"), |r, i| {
        r.header(format!("x-h{i}"), "v")
    });
    let huge = app
        .authed(reqwest::Method::GET, "/v1/account")
        .header("x-big", "a".repeat(200_000));
    for request in [many, huge] {
        let answer = request.send().await.unwrap();
        // The HTTP server answers before any gateway code runs: a bare 431
        // (no problem body), and the connection is closed.
        assert_eq!(answer.status().as_u16(), 431);
        assert_eq!(answer.headers()["connection"], "close");
    }
    assert_eq!(app.sandbox.control.calls("GET /slitz/api/details"), 0);
    // A large but parseable head is served as usual.
    let large = app
        .authed(reqwest::Method::GET, "/v1/account")
        .header("x-big", "a".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(large.status().as_u16(), 200);
}

#[tokio::test]
async fn every_problem_carries_the_callers_request_id() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/v1/nope"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
    let body = assert_problem(response, 404).await;
    assert_eq!(body["request_id"], "trace-me-123");
}
