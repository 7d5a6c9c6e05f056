//! Every Slitz route through the gateway: normalized answers and their errors.

use gateway::{
    auth::{Scope, sha256_hex},
    configuration::ApiKeySettings,
    sandbox::{Fault, FaultRule},
};
use serde_json::Value;

use crate::helpers::{assert_problem, spawn_app, spawn_app_with};

async fn ok_json(app: &crate::helpers::TestApp, path: &str) -> Value {
    let response = app.get(path).await;
    assert_eq!(response.status().as_u16(), 200, "{path}");
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "{path}"
    );
    response.json().await.unwrap()
}

fn money(amount: &str, currency: &str) -> Value {
    serde_json::json!({"amount": amount, "currency": currency})
}

#[tokio::test]
async fn balance_is_money_in_the_configured_currency() {
    let app = spawn_app().await;
    let body = ok_json(&app, "/v1/billing/balance").await;
    assert_eq!(
        body,
        serde_json::json!({"balance": money("573.50", "SEK"), "credit": money("0.00", "SEK")})
    );
}

#[tokio::test]
async fn invoices_are_listed_normalized_paged_and_filtered() {
    let app = spawn_app().await;
    let all = ok_json(&app, "/v1/billing/invoices").await;
    assert_eq!(all["total"], 5);
    assert_eq!(all["page"], 1);
    assert_eq!(all["per_page"], 25);
    let first = &all["items"][0];
    assert_eq!(first["id"], 303090);
    assert_eq!(
        first["number"], "2015-09-25",
        "invoice numbers stay strings"
    );
    assert_eq!(first["status"], "paid");
    assert_eq!(first["total"], money("58.50", "USD"));
    assert!(
        first["paid_at"]
            .as_str()
            .unwrap()
            .starts_with("2015-09-10T13:13:37")
    );

    let unpaid = ok_json(&app, "/v1/billing/invoices?status=unpaid").await;
    assert_eq!(unpaid["total"], 2);
    for invoice in unpaid["items"].as_array().unwrap() {
        assert_eq!(invoice["status"], "unpaid");
        assert_eq!(
            invoice["paid_at"],
            Value::Null,
            "0000-00-00 00:00:00 becomes null"
        );
    }

    let page = ok_json(&app, "/v1/billing/invoices?page=2&per_page=2").await;
    assert_eq!(page["total"], 5);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["id"], 310002);
    let past_the_end = ok_json(&app, "/v1/billing/invoices?page=9&per_page=2").await;
    assert_eq!(past_the_end["items"], serde_json::json!([]));
}

#[tokio::test]
async fn an_invoice_has_items_taxes_and_the_billed_account() {
    let app = spawn_app().await;
    let invoice = ok_json(&app, "/v1/billing/invoices/310003").await;
    assert_eq!(invoice["id"], 310003);
    assert_eq!(invoice["status"], "unpaid");
    assert_eq!(invoice["total"], money("424.50", "SEK"));
    assert_eq!(invoice["tax_rate"], "25");
    assert_eq!(invoice["tax_exempt"], false);
    let items = invoice["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[1]["amount"],
        money("125.50", "SEK"),
        "125.5 upstream becomes two places"
    );
    assert_eq!(items[0]["item_type"], "vps");
    assert_eq!(items[0]["taxed"], true);
    assert_eq!(items[0]["quantity"], "1");
    assert_eq!(invoice["client"]["id"], 20408);
    assert_eq!(invoice["client"]["first_name"], "Anna");
}

#[tokio::test]
async fn tickets_are_listed_and_one_comes_with_its_replies() {
    let app = spawn_app().await;
    let list = ok_json(&app, "/v1/support/tickets").await;
    assert_eq!(list["total"], 3);
    assert_eq!(list["items"][0]["number"], 437928);
    assert_eq!(list["items"][0]["read_by_client"], true);
    assert_eq!(list["items"][1]["read_by_client"], false);
    let open = ok_json(&app, "/v1/support/tickets?status=open").await;
    assert_eq!(open["total"], 1);

    let ticket = ok_json(&app, "/v1/support/tickets/437928").await;
    assert_eq!(ticket["subject"], "Mail stops arriving after 18:00");
    assert_eq!(ticket["department"], "Support Tickets");
    assert_eq!(ticket["email"], "anna.lindqvist@example.se");
    let replies = ticket["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0]["id"], 57);
    assert_eq!(replies[0]["author_type"], "client");
    assert_eq!(replies[1]["author_type"], "admin");
    chrono::DateTime::parse_from_rfc3339(replies[1]["created_at"].as_str().unwrap()).unwrap();
}

#[tokio::test]
async fn domains_are_listed_and_detailed_without_blank_nameservers() {
    let app = spawn_app().await;
    let list = ok_json(&app, "/v1/domains").await;
    assert_eq!(list["total"], 3);
    let soon = &list["items"][0];
    assert_eq!(soon["name"], "lindqvist.se");
    assert_eq!(soon["days_to_expiry"], 12);
    assert_eq!(soon["autorenew"], false);
    assert_eq!(soon["recurring_amount"], money("99.50", "SEK"));
    let domain = ok_json(&app, "/v1/domains/548").await;
    assert_eq!(
        domain["nameservers"],
        serde_json::json!(["ns1.slitz.se", "ns2.slitz.se", "ns3.slitz.se"])
    );
    assert_eq!(domain["id_protection"], false);
    let expired = ok_json(&app, "/v1/domains/412").await;
    assert_eq!(expired["nameservers"], serde_json::json!([]));
    assert_eq!(
        expired["next_invoice_on"],
        Value::Null,
        "0000-00-00 becomes null"
    );
    assert_eq!(expired["status"], "expired");
}

#[tokio::test]
async fn availability_turns_the_empty_upstream_body_into_false() {
    let app = spawn_app().await;
    let taken = ok_json(&app, "/v1/domains/availability?name=Example.com").await;
    assert_eq!(
        taken,
        serde_json::json!({"name": "example.com", "available": false})
    );
    let free = ok_json(&app, "/v1/domains/availability?name=surely-free-4711.se").await;
    assert_eq!(
        free,
        serde_json::json!({"name": "surely-free-4711.se", "available": true})
    );
    assert_eq!(
        app.sandbox
            .control
            .calls("POST /slitz/api/domainorder/status"),
        2
    );
}

#[tokio::test]
async fn bad_domain_names_are_400s_that_never_reach_slitz() {
    let app = spawn_app().await;
    for query in [
        "",
        "?name=",
        "?name=nodot",
        "?name=sm%C3%B6rg%C3%A5s.se",
        "?name=a%00b.se",
        "?name=-bad.se",
        "?name=a..se",
        "?name=x.se&extra=1",
    ] {
        let response = app.get(&format!("/v1/domains/availability{query}")).await;
        let body = assert_problem(response, 400).await;
        assert!(
            !body["errors"].as_array().unwrap().is_empty(),
            "{query}: {body}"
        );
    }
    let long = format!("?name={}.se", "a".repeat(64));
    assert_problem(
        app.get(&format!("/v1/domains/availability{long}")).await,
        400,
    )
    .await;
    assert_eq!(
        app.sandbox
            .control
            .calls("POST /slitz/api/domainorder/status"),
        0
    );
}

#[tokio::test]
async fn services_hide_credentials_from_keys_without_the_secrets_scope() {
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
    let list = ok_json(&app, "/v1/services").await;
    assert_eq!(list["total"], 3);
    assert_eq!(
        list["items"][0]["total"],
        money("149.00", "SEK"),
        "10.0000-style totals become two places"
    );
    assert_eq!(list["items"][0]["billing_cycle"], "monthly");

    // The sandbox key has `secrets`, and warms the cache first.
    let secret = ok_json(&app, "/v1/services/33301").await;
    assert_eq!(secret["credentials"]["username"], "lindqv01");
    assert!(secret["credentials"]["password"].is_string());

    let plain: Value = app
        .client
        .get(app.url("/v1/services/33301"))
        .bearer_auth("reader-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(plain.get("credentials").is_none(), "{plain}");
    let text = plain.to_string();
    for field in ["password", "rootpassword", "username", "Xk3#pL9!qa"] {
        assert!(!text.contains(field), "{field} leaked: {text}");
    }
}

#[tokio::test]
async fn a_record_slitz_does_not_have_is_a_404_problem() {
    let app = spawn_app().await;
    // The sandbox answers these as HostBill does: `{"error":[...]}` with status 200.
    for (path, upstream) in [
        ("/v1/billing/invoices/1", "GET /slitz/api/invoice/{id}"),
        ("/v1/support/tickets/1", "GET /slitz/api/tickets/{number}"),
        ("/v1/domains/1", "GET /slitz/api/domain/{id}"),
        ("/v1/services/1", "GET /slitz/api/service/{id}"),
    ] {
        let body = assert_problem(app.get(path).await, 404).await;
        assert_eq!(body["type"], "urn:gateway:problem:not-found", "{path}");
        assert_eq!(body["upstream"], "slitz", "{path}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("no such record")),
            "{path}: {body}"
        );
        // Not cached, and not retried: one call each time.
        assert_problem(app.get(path).await, 404).await;
        assert_eq!(app.sandbox.control.calls(upstream), 2, "{path}");
    }
}

#[tokio::test]
async fn hostbills_404_form_and_other_error_bodies_are_told_apart() {
    let app = spawn_app().await;
    // HostBill may also say it with a 404...
    app.sandbox.control.inject(FaultRule::new(
        "/slitz/api/invoice/{id}",
        Fault::Status {
            status: 404,
            body: Some(r#"{"error":["Invoice not found"]}"#.into()),
            retry_after: None,
        },
    ));
    let body = assert_problem(app.get("/v1/billing/invoices/5").await, 404).await;
    assert_eq!(body["upstream"], "slitz");
    // ...while an error that is not about the id stays a refusal.
    app.sandbox.control.clear_faults();
    app.sandbox.control.inject(FaultRule::new(
        "/slitz/api/invoice/{id}",
        Fault::Status {
            status: 200,
            body: Some(r#"{"error":["Database is down"]}"#.into()),
            retry_after: None,
        },
    ));
    let body = assert_problem(app.get("/v1/billing/invoices/5").await, 502).await;
    assert_eq!(body["type"], "urn:gateway:problem:upstream-rejected");
}

#[tokio::test]
async fn bad_ids_are_400s_that_never_reach_slitz() {
    let app = spawn_app().await;
    let bad_ids = [
        "abc",
        "-1",
        "0",
        "1e9999",
        "12345678901234567890",
        "..%2F",
        "1.5",
        "%20",
    ];
    for route in [
        "/v1/billing/invoices",
        "/v1/support/tickets",
        "/v1/domains",
        "/v1/services",
    ] {
        for id in bad_ids {
            let response = app.get(&format!("{route}/{id}")).await;
            let body = assert_problem(response, 400).await;
            let field = body["errors"][0]["field"].as_str().unwrap().to_owned();
            assert!(field == "id" || field == "number", "{route}/{id}: {body}");
        }
    }
    let calls = app.sandbox.control.all_calls();
    assert!(
        calls.keys().all(|k| !k.contains("{")),
        "no detail route was called: {calls:?}"
    );
}

#[tokio::test]
async fn bad_list_parameters_are_400s_naming_the_parameter() {
    let app = spawn_app().await;
    for (query, field) in [
        ("page=0", "page"),
        ("page=abc", "page"),
        ("per_page=101", "per_page"),
        ("per_page=-5", "per_page"),
        ("status=Unpaid", "status"),
        ("status=a%20b", "status"),
        ("colour=red", "colour"),
    ] {
        let response = app.get(&format!("/v1/billing/invoices?{query}")).await;
        let body = assert_problem(response, 400).await;
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    assert_eq!(app.sandbox.control.calls("GET /slitz/api/invoice"), 0);
}

#[tokio::test]
async fn every_bad_query_parameter_is_named_in_one_400() {
    let app = spawn_app().await;
    let response = app
        .authed(
            reqwest::Method::GET,
            "/v1/billing/invoices?page=0&per_page=500&status=Unpaid&sort=date&page=2",
        )
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, 400).await;
    let mut named: Vec<(&str, &str)> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(e.get("pointer").is_none(), "a parameter has no pointer");
            (
                e["parameter"].as_str().unwrap(),
                e["detail"].as_str().unwrap(),
            )
        })
        .collect();
    named.sort_unstable();
    assert_eq!(
        named,
        [
            ("page", "is given more than once"),
            ("per_page", "must be an integer from 1 to 100"),
            ("sort", "is not a parameter of this route"),
            (
                "status",
                "must be a snake_case status such as `unpaid` (a-z, 0-9, _; at most 40)"
            ),
        ],
        "{problem}"
    );
    assert!(app.sandbox.control.all_calls().is_empty());
}
