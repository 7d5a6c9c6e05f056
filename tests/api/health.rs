use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn healthz_answers_without_a_key() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_is_ready_when_both_upstreams_accept_connections() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["dna"]["status"], "up");
    assert_eq!(body["checks"]["slitz"]["status"], "up");
}

#[tokio::test]
async fn readyz_is_a_503_problem_naming_an_unreachable_upstream() {
    let app = spawn_app_with(|s| {
        s.slitz.base_url = crate::helpers::refusing_url();
    })
    .await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    let body = assert_problem(response, 503).await;
    assert_eq!(body["checks"]["slitz"]["status"], "down");
    assert_eq!(body["checks"]["dna"]["status"], "up");
    assert!(body["detail"].as_str().unwrap().contains("slitz"));
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern_without_a_key() {
    let app = spawn_app().await;
    app.client.get(app.url("/healthz")).send().await.unwrap();
    app.client
        .get(app.url("/no/such/route/12345"))
        .send()
        .await
        .unwrap();
    let invented = reqwest::Method::from_bytes(b"BREW").unwrap();
    let brewed = app
        .client
        .request(invented, app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(brewed.status().as_u16(), 405);
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("gateway_http_requests_total")
                && l.contains(r#"route="/healthz""#)
                && l.contains(r#"status="200""#)),
        "{text}"
    );
    assert!(
        text.contains("gateway_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(!text.contains("12345"), "raw paths never become labels");
    // Nor invented methods: those count as `other`.
    assert!(!text.contains("BREW"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("gateway_http_requests_total")
                && l.contains(r#"method="other""#)
                && l.contains(r#"status="405""#)),
        "{text}"
    );
}
