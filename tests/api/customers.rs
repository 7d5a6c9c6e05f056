//! DNA customers through the gateway: validation, Idempotency-Key, status changes.

use gateway::sandbox::{Fault, FaultRule};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with};

pub const CREATE: &str = "POST /dna/api/residential/client";
pub const TOKEN: &str = "POST /dna/api/oauth/token";

pub fn new_customer(customer_id: &str) -> Value {
    json!({
        "start_billing_date": "2026-12-01",
        "customer_id": customer_id,
        "email": "steve@example.com",
        "first_name": "Steve",
        "last_name": "Harris",
        "address": "126 Mendoza Avenue",
        "zipcode": "33134"
    })
}

pub async fn create(app: &TestApp, body: &Value, key: Option<&str>) -> reqwest::Response {
    let mut request = app
        .authed(reqwest::Method::POST, "/v1/customers")
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

pub async fn activate(app: &TestApp, id: u64) -> reqwest::Response {
    app.authed(
        reqwest::Method::POST,
        &format!("/v1/customers/{id}/activate"),
    )
    .send()
    .await
    .unwrap()
}

#[tokio::test]
async fn creating_a_customer_answers_201_with_location() {
    let app = spawn_app().await;
    let before = app.sandbox.dna_customer_count();
    let response = create(&app, &new_customer("CUST-1"), None).await;
    assert_eq!(response.status().as_u16(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_u64().unwrap();
    assert_eq!(location, format!("/v1/customers/{id}"));
    assert_eq!(body["status"], "pending");
    assert_eq!(body["customer_id"], "CUST-1");
    assert!(body["ns_domain"].as_str().unwrap().contains("harris"));
    assert_eq!(app.sandbox.dna_customer_count(), before + 1);
    assert_eq!(app.sandbox.dna_customer_status(id), Some("pending"));
}

#[tokio::test]
async fn a_separate_billing_address_and_a_subreseller_are_sent_with_derived_flags() {
    let app = spawn_app().await;
    let mut body = new_customer("CUST-2");
    body["billing_address"] = json!("2121 Ponce de Leon");
    body["billing_zipcode"] = json!("33308");
    body["subreseller_id"] = json!("123");
    // The simulator demands billing_* when same_billing_address is 0 and
    // subreseller_id when has_subreseller_id is 1, as DNA's validation does.
    assert_eq!(create(&app, &body, None).await.status().as_u16(), 201);
}

#[tokio::test]
async fn invalid_bodies_are_422s_naming_each_field_and_never_reach_dna() {
    let app = spawn_app().await;
    let with = |field: &str, value: Value| {
        let mut body = new_customer("C-3");
        body[field] = value;
        (body, field.to_owned())
    };
    for (body, field) in [
        (json!({}), "start_billing_date".to_owned()),
        with("start_billing_date", json!("2026-02-30")),
        with("customer_id", json!("C 1")),
        with("email", json!("x")),
        with("email", json!("é@\u{301}.se")),
        with("billing_address", json!("D")),
        with("subreseller_id", json!(42)),
        with("same_billing_address", json!(true)),
        with("first_name", json!("tº²R\u{7}")),
    ] {
        let problem = assert_problem(create(&app, &body, None).await, 422).await;
        let expected = if field == "billing_address" {
            "billing_zipcode"
        } else {
            field.as_str()
        };
        assert_eq!(problem["errors"][0]["field"], expected, "{problem}");
    }
    let malformed = app
        .authed(reqwest::Method::POST, "/v1/customers")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(malformed, 400).await;
    assert!(
        app.sandbox.control.all_calls().is_empty(),
        "{:?}",
        app.sandbox.control.all_calls()
    );
}

#[tokio::test]
async fn a_duplicate_customer_id_is_a_409_naming_the_field() {
    let app = spawn_app().await;
    assert_eq!(
        create(&app, &new_customer("DUP-1"), None)
            .await
            .status()
            .as_u16(),
        201
    );
    let problem = assert_problem(create(&app, &new_customer("DUP-1"), None).await, 409).await;
    assert_eq!(problem["type"], "urn:gateway:problem:duplicate");
    assert_eq!(problem["errors"][0]["field"], "customer_id");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("already been taken")
    );
}

#[tokio::test]
async fn null_optional_fields_read_as_absent() {
    let app = spawn_app().await;
    let mut body = new_customer("NULLS-1");
    for field in ["billing_address", "billing_zipcode", "subreseller_id"] {
        body[field] = Value::Null;
    }
    // Absent billing: the simulator refuses same_billing_address = 0
    // without billing_*, and has_subreseller_id = 1 without an id, as DNA's
    // validation does; a 201 says the flags were derived from "absent".
    let created = create(&app, &body, Some("nulls")).await;
    assert_eq!(created.status().as_u16(), 201);
    // The same body without the null fields is the same request for its key.
    let replayed = create(&app, &new_customer("NULLS-1"), Some("nulls")).await;
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    // A pair half sent is still refused, naming the half that is missing.
    let mut half = new_customer("NULLS-2");
    half["billing_address"] = Value::Null;
    half["billing_zipcode"] = json!("33308");
    let problem = assert_problem(create(&app, &half, None).await, 422).await;
    assert_eq!(
        problem["errors"][0]["field"], "billing_address",
        "{problem}"
    );
    assert_eq!(app.sandbox.control.calls(CREATE), 1);
}

#[tokio::test]
async fn an_idempotent_retry_creates_one_customer_and_replays_the_answer() {
    let app = spawn_app().await;
    let before = app.sandbox.dna_customer_count();
    let body = new_customer("IDEM-1");
    let first = create(&app, &body, Some("key-1")).await;
    assert_eq!(first.status().as_u16(), 201);
    let location = first.headers()["location"].clone();
    let first_body = first.text().await.unwrap();
    for _ in 0..3 {
        let again = create(&app, &body, Some("key-1")).await;
        assert_eq!(again.status().as_u16(), 201);
        assert_eq!(again.headers()["location"], location);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(again.text().await.unwrap(), first_body);
    }
    assert_eq!(app.sandbox.dna_customer_count(), before + 1);
    assert_eq!(app.sandbox.control.calls(CREATE), 1);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_a_422() {
    let app = spawn_app().await;
    assert_eq!(
        create(&app, &new_customer("IDEM-2"), Some("key-2"))
            .await
            .status()
            .as_u16(),
        201
    );
    let problem = assert_problem(
        create(&app, &new_customer("IDEM-3"), Some("key-2")).await,
        422,
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(app.sandbox.control.calls(CREATE), 1);
}

#[tokio::test]
async fn a_request_while_the_first_with_its_key_is_in_flight_is_a_409() {
    let app = spawn_app().await;
    app.sandbox.control.inject(FaultRule::new(
        "/dna/api/residential/client",
        Fault::Delay { ms: 1500 },
    ));
    let body = new_customer("IDEM-4");
    let first = create(&app, &body, Some("key-4"));
    let second = async {
        // Once the first has reached DNA, it is surely in flight.
        crate::helpers::wait_until("the first create reaches DNA", async || {
            app.sandbox.control.calls(CREATE) == 1
        })
        .await;
        create(&app, &body, Some("key-4")).await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status().as_u16(), 201);
    assert_eq!(second.headers()["retry-after"], "1");
    assert_problem(second, 409).await;
    assert_eq!(app.sandbox.control.calls(CREATE), 1);
}

#[tokio::test]
async fn a_bad_idempotency_key_is_a_400() {
    let app = spawn_app().await;
    let long = "k".repeat(256);
    let problem = assert_problem(create(&app, &new_customer("C-9"), Some(&long)).await, 400).await;
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(app.sandbox.control.calls(CREATE), 0);
}

#[tokio::test]
async fn a_failed_create_is_never_retried_and_its_key_replays_the_failure() {
    let app = spawn_app().await;
    app.sandbox.control.inject(FaultRule::new(
        "/dna/api/residential/client",
        Fault::Status {
            status: 500,
            body: None,
            retry_after: None,
        },
    ));
    let body = new_customer("FAIL-1");
    assert_problem(create(&app, &body, Some("key-f")).await, 502).await;
    assert_eq!(app.sandbox.control.calls(CREATE), 1, "never sent twice");
    app.sandbox.control.clear_faults();
    // DNA may have created it before failing: the key never sends it again.
    let replay = app
        .authed(reqwest::Method::POST, "/v1/customers")
        .header("Idempotency-Key", "key-f")
        .header("x-request-id", "the-retry")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replayed = assert_problem(replay, 502).await;
    assert_eq!(
        replayed["upstream"], "dna",
        "the first answer, as it was: {replayed}"
    );
    assert_eq!(
        replayed["request_id"], "the-retry",
        "with the id of the request that asked again"
    );
    assert_eq!(app.sandbox.control.calls(CREATE), 1);
}

#[tokio::test]
async fn a_hanging_create_is_a_504_and_not_retried() {
    let app = spawn_app_with(|s| s.upstream.timeout_ms = 500).await;
    app.sandbox
        .control
        .inject(FaultRule::new("/dna/api/residential/client", Fault::Hang));
    assert_problem(create(&app, &new_customer("HANG-1"), None).await, 504).await;
    assert_eq!(app.sandbox.control.calls(CREATE), 1);
}

#[tokio::test]
async fn activate_and_suspend_change_the_status_and_say_when() {
    let app = spawn_app().await;
    let response = activate(&app, 6518).await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["id"], 6518);
    assert_eq!(body["status"], "active");
    let changed_at = body["changed_at"].as_str().unwrap();
    assert!(changed_at.ends_with("+00:00"), "{changed_at}");
    chrono::DateTime::parse_from_rfc3339(changed_at).unwrap();
    assert_eq!(app.sandbox.dna_customer_status(6518), Some("active"));

    let suspended: Value = app
        .authed(reqwest::Method::POST, "/v1/customers/6518/suspend")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(suspended["status"], "suspended");
    assert_eq!(app.sandbox.dna_customer_status(6518), Some("suspended"));
}

#[tokio::test]
async fn an_unknown_customer_is_a_404_and_bad_ids_never_reach_dna() {
    let app = spawn_app().await;
    let problem = assert_problem(activate(&app, 999_999).await, 404).await;
    assert_eq!(problem["upstream"], "dna");
    app.sandbox.control.reset_calls();
    for id in ["abc", "-1", "0", "1e9999", "12345678901234567890", "..%2F"] {
        let response = app
            .authed(
                reqwest::Method::POST,
                &format!("/v1/customers/{id}/suspend"),
            )
            .send()
            .await
            .unwrap();
        assert_problem(response, 400).await;
    }
    assert!(app.sandbox.control.all_calls().is_empty());
}

#[tokio::test]
async fn customer_routes_need_the_write_scope() {
    use gateway::{
        auth::{Scope, sha256_hex},
        configuration::ApiKeySettings,
    };
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
    for path in [
        "/v1/customers",
        "/v1/customers/6517/activate",
        "/v1/customers/6517/suspend",
    ] {
        let response = app
            .client
            .post(app.url(path))
            .bearer_auth("reader-key")
            .json(&new_customer("X"))
            .send()
            .await
            .unwrap();
        assert_problem(response, 403).await;
    }
    assert!(app.sandbox.control.all_calls().is_empty());
}

#[tokio::test]
async fn a_form_with_four_bad_fields_gets_one_422_naming_all_four_by_pointer() {
    let app = spawn_app().await;
    let mut body = new_customer("C-4");
    body["email"] = json!("steve at example");
    body["first_name"] = json!("   ");
    body["zipcode"] = json!("!!");
    body["start_billing_date"] = json!("2026-02-30");
    body["billing_address"] = Value::Null; // null reads as absent: not a fault
    let problem = assert_problem(create(&app, &body, Some("four-bad")).await, 422).await;
    let errors = problem["errors"].as_array().unwrap();
    assert_eq!(
        crate::helpers::pointers(&problem),
        [
            "#/email",
            "#/first_name",
            "#/start_billing_date",
            "#/zipcode"
        ],
        "{problem}"
    );
    for error in errors {
        assert!(error["detail"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(
            error["detail"], error["message"],
            "message kept for old clients"
        );
        let field = error["field"].as_str().unwrap();
        assert_eq!(error["pointer"], format!("#/{field}"));
        assert!(error.get("parameter").is_none());
    }
    let detail = problem["detail"].as_str().unwrap();
    for field in ["email", "first_name", "zipcode", "start_billing_date"] {
        assert!(detail.contains(&format!("`{field}`")), "{detail}");
    }
    assert!(
        app.sandbox.control.all_calls().is_empty(),
        "nothing reached DNA"
    );
    // Fixed, the same form goes through (the key was not spent on the 422).
    let fixed = new_customer("C-4");
    assert_eq!(
        create(&app, &fixed, Some("four-bad"))
            .await
            .status()
            .as_u16(),
        201
    );
}

#[tokio::test]
async fn missing_and_unknown_fields_are_named_together() {
    let app = spawn_app().await;
    let body = json!({"email": "nope", "nickname": "S", "same_billing_address": 1});
    let problem = assert_problem(create(&app, &body, None).await, 422).await;
    let named: std::collections::BTreeMap<&str, &str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["pointer"].as_str().unwrap(),
                e["detail"].as_str().unwrap(),
            )
        })
        .collect();
    for required in [
        "start_billing_date",
        "customer_id",
        "first_name",
        "last_name",
        "address",
        "zipcode",
    ] {
        assert_eq!(named[format!("#/{required}").as_str()], "is required");
    }
    assert!(named.contains_key("#/email"));
    assert_eq!(named["#/nickname"], "is not a field of a new customer");
    assert!(named["#/same_billing_address"].starts_with("is derived"));
    assert_eq!(named.len(), 9, "{problem}");
}
