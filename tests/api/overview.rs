//! `GET /v1/overview`: one call for a dashboard, honest about what failed.

use gateway::sandbox::{Fault, FaultRule, data};
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

fn fail(path: &str) -> FaultRule {
    FaultRule::new(
        path,
        Fault::Status {
            status: 500,
            body: None,
            retry_after: None,
        },
    )
}

#[tokio::test]
async fn the_overview_summarizes_every_source() {
    let app = spawn_app().await;
    // Today where the account lives, whatever the host's zone; read before
    // and after, so a midnight in between cannot fail the test.
    let today = || chrono::Utc::now().with_timezone(&data::ZONE).date_naive();
    let before = today();
    let response = app.get("/v1/overview").await;
    let after = today();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["partial"], false);
    assert_eq!(body["errors"], json!([]));
    assert_eq!(body["account"]["name"], "Anna Lindqvist");
    assert_eq!(body["account"]["company_name"], "Lindqvist Konsult AB");
    assert_eq!(
        body["balance"],
        json!({"amount": "573.50", "currency": "SEK"})
    );
    assert_eq!(body["credit"]["amount"], "0.00");
    assert_eq!(body["unpaid_invoices"]["count"], 2);
    assert_eq!(
        body["unpaid_invoices"]["totals"],
        json!([{"amount": "573.50", "currency": "SEK"}])
    );
    assert_eq!(body["services"]["total"], 3);
    assert_eq!(
        body["services"]["by_status"],
        json!({"active": 2, "suspended": 1})
    );
    assert_eq!(
        body["open_tickets"]["count"], 2,
        "open and answered; the closed one is not"
    );
    let tickets = body["open_tickets"]["items"].as_array().unwrap();
    assert_eq!(tickets[0]["number"], 437928, "newest first");
    assert_eq!(body["expiring_domains"]["within_days"], 30);
    let expiring = body["expiring_domains"]["items"].as_array().unwrap();
    assert_eq!(expiring.len(), 1);
    assert_eq!(expiring[0]["name"], "lindqvist.se");
    // The sandbox seeds lindqvist.se to expire 12 days after its start.
    let expires_on: chrono::NaiveDate =
        expiring[0]["expires_on"].as_str().unwrap().parse().unwrap();
    let days_left = expiring[0]["days_left"].as_i64().unwrap();
    assert!(
        [before, after]
            .iter()
            .any(|day| expires_on.signed_duration_since(*day).num_days() == days_left),
        "{days_left} days from {before} or {after} to {expires_on}"
    );
    assert!((11..=12).contains(&days_left), "{days_left}");
}

#[tokio::test]
async fn the_overview_reads_through_the_cache() {
    let app = spawn_app().await;
    assert_eq!(app.get("/v1/overview").await.status().as_u16(), 200);
    let calls = app.sandbox.control.all_calls();
    assert_eq!(
        calls.values().sum::<u64>(),
        6,
        "one call per source: {calls:?}"
    );
    assert_eq!(app.get("/v1/overview").await.status().as_u16(), 200);
    assert_eq!(
        app.sandbox.control.all_calls(),
        calls,
        "the second overview made no call"
    );
}

#[tokio::test]
async fn a_failing_tickets_endpoint_makes_a_partial_overview_that_recovers() {
    let app = spawn_app_with(|s| s.upstream.retries = 1).await;
    app.sandbox.control.inject(fail("/slitz/api/tickets"));
    let response = app.get("/v1/overview").await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["partial"], true);
    assert_eq!(
        body["errors"],
        json!([{"source": "tickets", "status": 502, "title": "The upstream failed"}])
    );
    assert_eq!(body["open_tickets"], Value::Null);
    assert_eq!(
        body["unpaid_invoices"]["count"], 2,
        "the other sources still answer"
    );

    app.sandbox.control.clear_faults();
    let body: Value = app.get("/v1/overview").await.json().await.unwrap();
    assert_eq!(body["partial"], false);
    assert_eq!(body["open_tickets"]["count"], 2);
}

#[tokio::test]
async fn an_overview_with_no_source_is_a_503_problem_naming_each() {
    let app = spawn_app_with(|s| s.upstream.retries = 0).await;
    for path in [
        "details", "balance", "invoice", "service", "tickets", "domain",
    ] {
        app.sandbox
            .control
            .inject(fail(&format!("/slitz/api/{path}")));
    }
    let problem = assert_problem(app.get("/v1/overview").await, 503).await;
    let sources: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source"].as_str().unwrap())
        .collect();
    assert_eq!(
        sources,
        vec![
            "account", "balance", "invoices", "services", "tickets", "domains"
        ]
    );
}

#[tokio::test]
async fn the_expiry_window_is_configurable() {
    let app = spawn_app_with(|s| s.overview.expiring_days = 365).await;
    let body: Value = app.get("/v1/overview").await.json().await.unwrap();
    let names: Vec<&str> = body["expiring_domains"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["lindqvist.se", "konsult-lindqvist.com"],
        "soonest first; the expired one is not listed"
    );
}
