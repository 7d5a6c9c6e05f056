//! The Slitz simulator behaves as the document and HostBill do.

use gateway::sandbox::data;
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app};

fn get(app: &TestApp, path: &str) -> reqwest::RequestBuilder {
    app.client
        .get(app.upstream(&format!("/slitz/api{path}")))
        .basic_auth(data::SLITZ_EMAIL, Some(data::SLITZ_PASSWORD))
}

async fn json(app: &TestApp, path: &str) -> (u16, Value) {
    let response = get(app, path).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_wrong_login_is_an_error_body_with_status_200() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.upstream("/slitz/api/details"))
        .basic_auth(data::SLITZ_EMAIL, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        serde_json::json!({"error": ["wronglogin"]})
    );
}

#[tokio::test]
async fn details_and_balance_use_string_typed_numbers_and_sentinels() {
    let app = spawn_app().await;
    let (_, details) = json(&app, "/details").await;
    assert_eq!(details["client"]["id"], "20408");
    assert_eq!(details["client"]["company"], "1");
    assert_eq!(details["client"]["credit"], "0.0000");
    assert_eq!(details["client"]["privileges"], Value::Null);
    let (_, balance) = json(&app, "/balance").await;
    assert_eq!(balance["details"]["acc_balance"], "573.50");
    assert_eq!(balance["details"]["acc_credit"], "0.00");
}

#[tokio::test]
async fn invoices_mix_strings_and_numbers_and_carry_items_and_client() {
    let app = spawn_app().await;
    let (_, list) = json(&app, "/invoice").await;
    let invoices = list["invoices"].as_array().unwrap();
    assert!(invoices.len() >= 5);
    assert!(
        invoices
            .iter()
            .any(|i| i["status"] == "Unpaid" && i["datepaid"] == "0000-00-00 00:00:00")
    );
    assert!(invoices.iter().any(|i| i["status"] == "Paid"));
    assert!(invoices.iter().all(|i| i["total"].is_string()));
    let (_, detail) = json(&app, "/invoice/303090").await;
    assert_eq!(detail["invoice"]["subtotal"], 58.5);
    assert_eq!(detail["invoice"]["items"][0]["amount"], "58.50");
    assert_eq!(detail["invoice"]["client"]["id"], "20408");
}

#[tokio::test]
async fn an_unknown_id_is_an_error_body_with_status_200_on_every_detail_route() {
    let app = spawn_app().await;
    for path in ["/invoice/1", "/tickets/1", "/domain/1", "/service/1"] {
        let (status, missing) = json(&app, path).await;
        assert_eq!(status, 200, "{path}: HostBill's form");
        assert!(missing["error"][0].is_string(), "{path}: {missing}");
        assert_eq!(missing.as_object().unwrap().len(), 1, "{path}: {missing}");
    }
}

#[tokio::test]
async fn tickets_come_with_replies() {
    let app = spawn_app().await;
    let (_, list) = json(&app, "/tickets").await;
    assert_eq!(list["tickets"].as_array().unwrap().len(), 3);
    let (_, ticket) = json(&app, "/tickets/437928").await;
    assert_eq!(ticket["tickets"]["status"], "Open");
    assert_eq!(ticket["replies"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn domains_have_a_blank_nameserver_and_one_expires_within_a_month() {
    let app = spawn_app().await;
    let (_, list) = json(&app, "/domain").await;
    let soon = list["domains"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| {
            d["daytoexpire"].as_str().unwrap().parse::<i64>().unwrap() <= 30
                && d["status"] == "Active"
        })
        .count();
    assert_eq!(soon, 1);
    let (_, detail) = json(&app, "/domain/548").await;
    assert_eq!(detail["details"]["nameservers"][3], "");
    assert_eq!(detail["details"]["autorenew"], "0");
}

#[tokio::test]
async fn an_unavailable_domain_is_an_empty_body_and_a_free_one_is_ok() {
    let app = spawn_app().await;
    let check = |name: &'static str| {
        app.client
            .post(app.upstream("/slitz/api/domainorder/status"))
            .basic_auth(data::SLITZ_EMAIL, Some(data::SLITZ_PASSWORD))
            .form(&[("name", name)])
            .send()
    };
    let taken = check("example.com").await.unwrap();
    assert_eq!(taken.status().as_u16(), 200);
    assert_eq!(taken.text().await.unwrap(), "");
    let free: Value = check("surely-free-name-4711.se")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(free, serde_json::json!({"details": {"status": "ok"}}));
}

#[tokio::test]
async fn services_carry_credentials() {
    let app = spawn_app().await;
    let (_, list) = json(&app, "/service").await;
    assert_eq!(list["services"][0]["total"], "149.0000");
    let (_, detail) = json(&app, "/service/33301").await;
    assert!(!detail["service"]["password"].as_str().unwrap().is_empty());
    assert!(detail["service"].get("rootpassword").is_some());
}

#[tokio::test]
async fn updating_details_shows_on_the_next_read() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.upstream("/slitz/api/details"))
        .basic_auth(data::SLITZ_EMAIL, Some(data::SLITZ_PASSWORD))
        .form(&[("city", "Lund"), ("mobilephone", "+46701112233")])
        .send()
        .await
        .unwrap();
    assert!(
        response
            .json::<Value>()
            .await
            .unwrap()
            .get("error")
            .is_none()
    );
    let (_, details) = json(&app, "/details").await;
    assert_eq!(details["client"]["city"], "Lund");
    assert_eq!(details["client"]["mobilephone"], "+46701112233");
}

#[tokio::test]
async fn knobs_faults_and_counters_work_over_http() {
    let app = spawn_app().await;
    let admin = |path: &str| app.upstream(&format!("/__sandbox{path}"));
    let fault = serde_json::json!({"path": "/slitz/api/tickets", "times": 1, "fault": {"kind": "status", "status": 503}});
    let response = app
        .client
        .post(admin("/faults"))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    assert_eq!(
        get(&app, "/tickets")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        503
    );
    assert_eq!(
        get(&app, "/tickets")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200,
        "used up"
    );

    let calls: Value = app
        .client
        .get(admin("/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(calls["GET /slitz/api/tickets"], 2);

    let knobs =
        serde_json::json!({"token_lifetime_ms": 2000, "latency_ms": 0, "dna_plain_token": false});
    let set: Value = app
        .client
        .put(admin("/knobs"))
        .json(&knobs)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(set, knobs);
    assert_eq!(app.sandbox.control.knobs().token_lifetime_ms, 2000);

    app.client.delete(admin("/calls")).send().await.unwrap();
    assert_eq!(app.sandbox.control.calls("GET /slitz/api/tickets"), 0);
}
