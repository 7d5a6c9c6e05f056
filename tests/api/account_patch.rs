//! `PATCH /v1/account`: validated, minimal, visible on the next read.

use gateway::{
    auth::{Scope, sha256_hex},
    configuration::ApiKeySettings,
};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with};

const UPDATE: &str = "POST /slitz/api/details";

async fn patch(app: &TestApp, body: Value) -> reqwest::Response {
    app.authed(reqwest::Method::PATCH, "/v1/account")
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_patch_is_visible_on_the_next_read() {
    let app = spawn_app().await;
    let before = app.get("/v1/account").await;
    assert_eq!(before.headers()["x-cache"], "MISS");
    let response = patch(
        &app,
        json!({"city": "Lund", "zipcode": "222 20", "mobile_phone": "+46701112233"}),
    )
    .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let answered: Value = response.json().await.unwrap();
    assert_eq!(answered["city"], "Lund");
    assert_eq!(answered["mobile_phone"], "+46701112233");
    let after: Value = app.get("/v1/account").await.json().await.unwrap();
    assert_eq!(after["city"], "Lund");
    assert_eq!(after["zipcode"], "222 20");
    assert_eq!(app.sandbox.control.calls(UPDATE), 1);
}

#[tokio::test]
async fn a_patch_also_refreshes_invoices_that_embed_the_account() {
    let app = spawn_app().await;
    let before: Value = app
        .get("/v1/billing/invoices/310002")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(before["client"]["city"], "Uppsala");
    assert_eq!(
        patch(&app, json!({"city": "Lund"})).await.status().as_u16(),
        200
    );
    let after: Value = app
        .get("/v1/billing/invoices/310002")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["client"]["city"], "Lund");
}

#[tokio::test]
async fn only_changed_fields_are_sent_and_no_change_sends_nothing() {
    let app = spawn_app().await;
    let same = patch(&app, json!({"city": "Uppsala", "first_name": "Anna"})).await;
    assert_eq!(same.status().as_u16(), 200);
    assert_eq!(
        app.sandbox.control.calls(UPDATE),
        0,
        "nothing changed, nothing written"
    );
    let cleared = patch(&app, json!({"company_name": null, "city": "Uppsala"})).await;
    assert_eq!(cleared.status().as_u16(), 200);
    let body: Value = cleared.json().await.unwrap();
    assert_eq!(body["company_name"], Value::Null);
    assert_eq!(body["city"], "Uppsala");
    assert_eq!(app.sandbox.control.calls(UPDATE), 1);
}

#[tokio::test]
async fn invalid_fields_are_a_422_naming_each_and_nothing_reaches_slitz() {
    let app = spawn_app().await;
    for (field, value) in [
        ("country", json!("Sweden")),
        ("phone", json!("0701234567")),
        ("first_name", json!("")),
        ("first_name", json!(null)),
        ("nickname", json!("x")),
        ("email", json!("x@y.se")),
        // Once a panic in the VAT check: `value[..2]` inside a two-byte character.
        ("eu_vat_number", json!("tº²R")),
        ("city", json!("Lund\u{85}")),
    ] {
        let response = patch(&app, json!({ field: value })).await;
        let body = assert_problem(response, 422).await;
        assert_eq!(body["errors"][0]["field"], field, "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    assert!(
        app.sandbox.control.all_calls().is_empty(),
        "{:?}",
        app.sandbox.control.all_calls()
    );
}

#[tokio::test]
async fn malformed_json_is_a_400_and_a_non_object_a_422() {
    let app = spawn_app().await;
    let malformed = app
        .authed(reqwest::Method::PATCH, "/v1/account")
        .header("content-type", "application/json")
        .body(r#"{"city": "Lund""#)
        .send()
        .await
        .unwrap();
    let body = assert_problem(malformed, 400).await;
    assert_eq!(body["errors"][0]["field"], "body");
    assert_problem(patch(&app, json!(["city"])).await, 422).await;
    let wrong_type = app
        .authed(reqwest::Method::PATCH, "/v1/account")
        .header("content-type", "text/plain")
        .body("city=Lund")
        .send()
        .await
        .unwrap();
    assert_problem(wrong_type, 415).await;
    let merge_patch = app
        .authed(reqwest::Method::PATCH, "/v1/account")
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"city": "Lund"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(merge_patch.status().as_u16(), 200);
    assert_eq!(app.sandbox.control.calls(UPDATE), 1);
}

#[tokio::test]
async fn patching_needs_the_write_scope() {
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
        .patch(app.url("/v1/account"))
        .bearer_auth("reader-key")
        .json(&json!({"city": "Lund"}))
        .send()
        .await
        .unwrap();
    assert_problem(response, 403).await;
    assert!(app.sandbox.control.all_calls().is_empty());
}

#[tokio::test]
async fn slitz_refusing_a_change_is_a_422_and_nothing_is_reported_done() {
    let app = spawn_app().await;
    app.sandbox.control.inject(FaultRule {
        method: Some("POST".into()),
        ..FaultRule::new(
            "/slitz/api/details",
            Fault::Status {
                status: 200,
                body: Some(r#"{"error":["Postcode is invalid"]}"#.into()),
                retry_after: None,
            },
        )
    });
    let body = assert_problem(patch(&app, json!({"zipcode": "99999"})).await, 422).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Postcode is invalid"),
        "{body}"
    );
    let after: Value = app.get("/v1/account").await.json().await.unwrap();
    assert_eq!(after["zipcode"], "753 20");
}

#[tokio::test]
async fn a_failed_write_is_a_problem_never_a_success() {
    let app = spawn_app().await;
    app.sandbox.control.inject(FaultRule {
        method: Some("POST".into()),
        ..FaultRule::new(
            "/slitz/api/details",
            Fault::Status {
                status: 500,
                body: None,
                retry_after: None,
            },
        )
    });
    assert_problem(patch(&app, json!({"city": "Lund"})).await, 502).await;
    assert_eq!(
        app.sandbox.control.calls(UPDATE),
        1,
        "a write is never retried"
    );
}

use gateway::sandbox::{Fault, FaultRule};

#[tokio::test]
async fn a_patch_with_several_bad_fields_names_them_all_and_changes_nothing() {
    let app = spawn_app().await;
    let response = app
        .authed(reqwest::Method::PATCH, "/v1/account")
        .json(&json!({
            "country": "Sweden", "phone": "070", "city": "", "email": "a@b.se", "zipcode": "222 20"
        }))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, 422).await;
    let pointers = crate::helpers::pointers(&problem);
    assert_eq!(
        pointers,
        ["#/city", "#/country", "#/email", "#/phone"],
        "{problem}"
    );
    assert!(
        app.sandbox.control.all_calls().is_empty(),
        "nothing reached Slitz"
    );
}
