use gateway::sandbox::{Fault, FaultRule};
use secrecy::SecretString;
use serde_json::Value;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

const DETAILS: &str = "GET /slitz/api/details";

#[tokio::test]
async fn get_account_returns_the_normalized_account() {
    let app = spawn_app().await;
    let response = app.get_account().await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], 20408, "numeric ids are integers");
    assert_eq!(body["email"], "anna.lindqvist@example.se");
    assert_eq!(body["first_name"], "Anna");
    assert_eq!(body["last_name"], "Lindqvist");
    assert_eq!(body["status"], "active");
    assert_eq!(body["is_company"], true);
    assert_eq!(body["zipcode"], "753 20");
    assert_eq!(body["address2"], Value::Null, "empty strings become null");
    assert_eq!(
        body["parent_id"],
        Value::Null,
        "a parent id of 0 means none"
    );
    assert_eq!(
        body["credit"],
        serde_json::json!({"amount": "0.00", "currency": "SEK"})
    );
    assert_eq!(body["created_on"], "2015-03-16");
    let last_login = body["last_login_at"].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(last_login).expect("RFC 3339 with an offset");
    assert!(
        last_login.ends_with("+01:00") || last_login.ends_with("+02:00"),
        "{last_login}"
    );
    for upstream_name in [
        "firstname",
        "lastname",
        "postcode",
        "datecreated",
        "lastlogin",
        "companyname",
        "company",
    ] {
        assert!(
            body.get(upstream_name).is_none(),
            "{upstream_name} leaked: {body}"
        );
    }
    assert_eq!(app.sandbox.control.calls(DETAILS), 1);
}

#[tokio::test]
async fn date_times_are_read_in_the_configured_zone_and_money_in_its_currency() {
    let app = spawn_app_with(|s| {
        s.slitz.timezone = chrono_tz::UTC;
        s.slitz.currency = "EUR".into();
    })
    .await;
    let body: Value = app.get_account().await.json().await.unwrap();
    assert!(
        body["last_login_at"]
            .as_str()
            .unwrap()
            .ends_with("T09:00:20+00:00"),
        "{body}"
    );
    assert_eq!(body["credit"]["currency"], "EUR");
}

#[tokio::test]
async fn slitz_rejecting_the_gateways_credentials_is_a_502_never_a_401() {
    let app = spawn_app_with(|s| s.slitz.password = SecretString::from("not-the-password")).await;
    let response = app.get_account().await;
    let body = assert_problem(response, 502).await;
    assert_eq!(body["upstream"], "slitz");
    assert!(
        body["detail"].as_str().unwrap().contains("credentials"),
        "{body}"
    );
    assert!(!body.to_string().contains("not-the-password"));
}

#[tokio::test]
async fn a_slitz_500_is_a_502_problem() {
    let app = spawn_app().await;
    app.sandbox.control.inject(FaultRule::new(
        "/slitz/api/details",
        Fault::Status {
            status: 500,
            body: None,
            retry_after: None,
        },
    ));
    let body = assert_problem(app.get_account().await, 502).await;
    assert_eq!(body["upstream"], "slitz");
    assert!(body["detail"].as_str().unwrap().contains("500"));
}

#[tokio::test]
async fn a_malformed_or_cut_slitz_answer_is_a_502_problem() {
    for fault in [Fault::Malformed, Fault::Reset] {
        let app = spawn_app().await;
        app.sandbox
            .control
            .inject(FaultRule::new("/slitz/api/details", fault.clone()));
        let body = assert_problem(app.get_account().await, 502).await;
        assert_eq!(body["upstream"], "slitz", "{fault:?}");
    }
}

#[tokio::test]
async fn a_hanging_slitz_is_a_504_problem_after_the_configured_timeout() {
    let app = spawn_app_with(|s| s.upstream.timeout_ms = 300).await;
    app.sandbox
        .control
        .inject(FaultRule::new("/slitz/api/details", Fault::Hang));
    let body = assert_problem(app.get_account().await, 504).await;
    assert_eq!(body["upstream"], "slitz");
    assert!(body["detail"].as_str().unwrap().contains("300 ms"));
}

#[tokio::test]
async fn an_unreachable_slitz_is_a_503_problem() {
    let app = spawn_app_with(|s| s.slitz.base_url = crate::helpers::refusing_url()).await;
    let body = assert_problem(app.get_account().await, 503).await;
    assert_eq!(body["upstream"], "slitz");
    assert!(
        !body["detail"].as_str().unwrap().contains("127.0.0.1"),
        "no internal addresses"
    );
}

#[tokio::test]
async fn a_broken_field_upstream_is_a_502_naming_nothing_secret() {
    let app = spawn_app().await;
    app.sandbox.control.inject(FaultRule::new(
        "/slitz/api/details",
        Fault::Status {
            status: 200,
            body: Some(r#"{"client":{"id":"not-a-number"}}"#.into()),
            retry_after: None,
        },
    ));
    let body = assert_problem(app.get_account().await, 502).await;
    assert_eq!(body["type"], "urn:gateway:problem:upstream-malformed");
}
