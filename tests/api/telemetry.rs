use crate::helpers::spawn_app;

#[tokio::test]
async fn a_sane_request_id_is_echoed() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn a_missing_or_unsafe_request_id_is_replaced_by_a_fresh_one() {
    let app = spawn_app().await;
    let mut seen = std::collections::HashSet::new();
    for header in [None, Some("has spaces in it"), Some(&*"x".repeat(200))] {
        let mut request = app.client.get(app.url("/healthz"));
        if let Some(value) = header {
            request = request.header("x-request-id", value);
        }
        let response = request.send().await.unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(uuid_like(&id), "{id}");
        assert!(seen.insert(id), "ids are unique");
    }
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test]
async fn the_request_id_is_forwarded_to_slitz() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/v1/account"))
        .bearer_auth(crate::helpers::KEY)
        .header("x-request-id", "fwd-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-request-id"], "fwd-42");
    assert_eq!(
        app.sandbox.control.last_request_id().as_deref(),
        Some("fwd-42")
    );
}
