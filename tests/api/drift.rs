//! Upstream drift: an answer that differs from its documented shape (a
//! field added, dropped or retyped, as the sandbox's drift fault does) is
//! still answered, counted by `gateway_upstream_drift_total`, and warned
//! about once per operation, field and kind.

use gateway::sandbox::{Fault, FaultRule, Sandbox, ShapeChange};
use serde_json::Value;

use crate::{
    binary::{Gateway, config},
    customers::{activate, create, new_customer},
    helpers::{get_text, samples, spawn_app, wait_until},
};

fn drift(path: &str, field: &str, change: ShapeChange) -> FaultRule {
    FaultRule::new(
        path,
        Fault::Drift {
            field: field.into(),
            change,
        },
    )
}

/// The value of the drift counter for one upstream, operation and kind.
fn drifted(scrape: &str, upstream: &str, operation: &str, kind: &str) -> Option<u64> {
    let labels = format!(
        r#"gateway_upstream_drift_total{{upstream="{upstream}",operation="{operation}",kind="{kind}"}} "#
    );
    samples(scrape, "gateway_upstream_drift_total")
        .iter()
        .find_map(|line| line.strip_prefix(&labels)?.parse().ok())
}

#[tokio::test]
async fn each_kind_of_slitz_drift_is_served_counted_and_warned_about_once() {
    let sandbox = Sandbox::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let control = &sandbox.control;
    control.inject(drift(
        "/slitz/api/balance",
        "details.acc_pending",
        ShapeChange::Add,
    ));
    control.inject(drift(
        "/slitz/api/invoice/{id}",
        "invoice.notes",
        ShapeChange::Drop,
    ));
    control.inject(drift(
        "/slitz/api/tickets",
        "tickets[].ticket_number",
        ShapeChange::Retype,
    ));
    let dir = tempfile::tempdir().unwrap();
    let dna = sandbox.dna_base_url().to_string();
    let gateway = Gateway::start(
        dir.path(),
        &config(&sandbox, &[("frontend", "drift-key", "")], "info", &dna),
    );
    let get = async |path: &str| -> Value {
        let response = gateway.get(path, "drift-key").send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        response.json().await.unwrap()
    };

    // Each answer is served as well as it can be.
    let balance = get("/v1/billing/balance").await;
    assert_eq!(balance["balance"]["amount"], "573.50", "{balance}");
    let tickets = get("/v1/support/tickets").await;
    let numbers: Vec<&Value> = tickets["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["number"])
        .collect();
    assert_eq!(numbers, [437928, 437811, 401200], "{tickets}");
    // Two invoices: two answers with the same drift.
    for id in [310002, 310003] {
        let invoice = get(&format!("/v1/billing/invoices/{id}")).await;
        assert_eq!(invoice["id"], id, "{invoice}");
        assert_eq!(invoice["notes"], Value::Null, "{invoice}");
    }

    let scrape = get_text(&format!("{}/metrics", gateway.base)).await;
    let count = |operation, kind| drifted(&scrape, "slitz", operation, kind);
    assert_eq!(count("GET /balance", "unknown"), Some(1), "{scrape}");
    assert_eq!(count("GET /tickets", "retyped"), Some(1), "{scrape}");
    assert_eq!(count("GET /invoice/{id}", "missing"), Some(2), "{scrape}");
    assert_eq!(
        samples(&scrape, "gateway_upstream_drift_total").len(),
        3,
        "nothing else drifted: {scrape}"
    );

    // One warning per drift, naming the field, however often it is seen.
    // The diagnostic log is written in order by its own thread: once a line
    // logged after the four requests is out (a reload's), every warning
    // before it is too.
    let config_text = config(&sandbox, &[("frontend", "drift-key", "")], "info", &dna);
    gateway.reload(&config_text);
    wait_until("the diagnostic lines are written", async || {
        gateway.lines_with("configuration reloaded") == 1
    })
    .await;
    let warned = |field: &str, kind: &str| {
        gateway
            .log()
            .lines()
            .filter(|line| line.contains("differs from its documented shape"))
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|event| {
                event["level"] == "WARN"
                    && event["fields"]["upstream"] == "slitz"
                    && event["fields"]["field"] == field
                    && event["fields"]["kind"] == kind
            })
            .count()
    };
    assert_eq!(
        warned("details.acc_pending", "unknown"),
        1,
        "{}",
        gateway.log()
    );
    // A line logged inside a request names the request; its access line
    // (another stream) says which one it was.
    let lines: Vec<Value> = gateway
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let warning = lines
        .iter()
        .find(|e| e["fields"]["field"] == "details.acc_pending")
        .unwrap();
    let request_id = warning["request_id"].as_str().unwrap();
    assert!(warning["trace_id"].is_string(), "{warning}");
    wait_until("the request's access line is written", async || {
        gateway.lines_with(&format!("\"request_id\":\"{request_id}\"")) == 2
    })
    .await;
    let access = gateway
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|e| e["log"] == "access" && e["request_id"] == request_id)
        .unwrap();
    assert_eq!(access["path"], "/v1/billing/balance", "{access}");
    assert_eq!(access["method"], "GET", "{access}");
    assert_eq!(
        access["trace_id"], warning["trace_id"],
        "{access} {warning}"
    );
    assert_eq!(warned("tickets[].ticket_number", "retyped"), 1);
    assert_eq!(warned("invoice.notes", "missing"), 1);
    assert!(
        gateway
            .log()
            .contains(r#""documented":"string","received":"number""#),
        "a retyped field names both types: {}",
        gateway.log()
    );
}

#[tokio::test]
async fn dna_drift_is_counted_and_the_write_still_done() {
    let app = spawn_app().await;
    let control = &app.sandbox.control;
    // Token answers are documented wrapped in an array: the path is inside it.
    control.inject(drift("/dna/api/oauth/token", "scope", ShapeChange::Add));
    control.inject(drift(
        "/dna/api/residential/client",
        "result",
        ShapeChange::Drop,
    ));
    control.inject(drift(
        "/dna/api/residential/client/{id}/{action}",
        "timestamp",
        ShapeChange::Retype,
    ));

    let before = app.sandbox.dna_customer_count();
    let created = create(&app, &new_customer("DRIFT-1"), None).await;
    assert_eq!(created.status().as_u16(), 201);
    let created: Value = created.json().await.unwrap();
    let id = created["id"].as_u64().unwrap();
    assert_eq!(app.sandbox.dna_customer_count(), before + 1);
    assert_eq!(activate(&app, id).await.status().as_u16(), 200);
    assert_eq!(app.sandbox.dna_customer_status(id), Some("active"));

    let scrape = get_text(&app.url("/metrics")).await;
    assert_eq!(
        drifted(&scrape, "dna", "POST /oauth/token", "unknown"),
        Some(1),
        "{scrape}"
    );
    assert_eq!(
        drifted(&scrape, "dna", "POST /residential/client", "missing"),
        Some(1),
        "{scrape}"
    );
    // The activation's timestamp came as a string: read all the same.
    assert_eq!(
        drifted(
            &scrape,
            "dna",
            "POST /residential/client/{id}/{action}",
            "retyped"
        ),
        Some(1),
        "{scrape}"
    );
    assert_eq!(
        samples(&scrape, "gateway_upstream_drift_total").len(),
        3,
        "{scrape}"
    );
}
