//! The DNA simulator behaves as Laravel Passport and the documented routes do.

use gateway::sandbox::data;
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app};

fn password_form() -> Vec<(&'static str, &'static str)> {
    vec![
        ("grant_type", "password"),
        ("client_id", data::DNA_CLIENT_ID),
        ("client_secret", data::DNA_CLIENT_SECRET),
        ("username", data::DNA_USERNAME),
        ("password", data::DNA_PASSWORD),
        ("scope", data::DNA_SCOPE),
    ]
}

async fn token_call(app: &TestApp, form: &[(&str, &str)]) -> (u16, Value) {
    let response = app
        .client
        .post(app.upstream("/dna/api/oauth/token"))
        .header("accept", "application/json")
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn tokens(app: &TestApp) -> (String, String) {
    let (status, body) = token_call(app, &password_form()).await;
    assert_eq!(status, 200, "{body}");
    (
        body[0]["access_token"].as_str().unwrap().to_owned(),
        body[0]["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn activate(app: &TestApp, token: &str, accept_json: bool) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.upstream("/dna/api/residential/client/6517/activate"))
        .bearer_auth(token);
    if accept_json {
        request = request.header("accept", "application/json");
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_password_grant_answers_a_one_element_array() {
    let app = spawn_app().await;
    let (status, body) = token_call(&app, &password_form()).await;
    assert_eq!(status, 200);
    let token = &body.as_array().expect("wrapped in an array")[0];
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 1200);
    assert!(token["access_token"].as_str().unwrap().len() > 20);
    assert!(token["refresh_token"].as_str().unwrap().len() > 20);
    assert_eq!(app.sandbox.control.calls("POST /dna/api/oauth/token"), 1);
}

#[tokio::test]
async fn the_token_endpoint_reads_the_form_body_not_the_query_string() {
    let app = spawn_app().await;
    let query: String = password_form()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let response = app
        .client
        .post(app.upstream(&format!("/dna/api/oauth/token?{query}")))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
    let get = app
        .client
        .get(app.upstream("/dna/api/oauth/token"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status().as_u16(), 405);
}

#[tokio::test]
async fn bad_client_and_bad_user_credentials_are_told_apart() {
    let app = spawn_app().await;
    let mut form = password_form();
    form[2] = ("client_secret", "wrong");
    let (status, body) = token_call(&app, &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(body["message"].is_string());

    let mut form = password_form();
    form[4] = ("password", "wrong");
    let (status, body) = token_call(&app, &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_credentials"))
    );

    let form: Vec<_> = password_form()
        .into_iter()
        .filter(|(k, _)| *k != "username")
        .collect();
    let (status, body) = token_call(&app, &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(body["hint"], "Check the `username` parameter");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_is_revoked() {
    let app = spawn_app().await;
    let (access, refresh) = tokens(&app).await;
    let form = |token: &str| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("client_id", data::DNA_CLIENT_ID.to_owned()),
            ("client_secret", data::DNA_CLIENT_SECRET.to_owned()),
            ("refresh_token", token.to_owned()),
        ]
    };
    let response = app
        .client
        .post(app.upstream("/dna/api/oauth/token"))
        .form(&form(&refresh))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let fresh: Value = response.json().await.unwrap();
    let new_access = fresh[0]["access_token"].as_str().unwrap();
    assert_ne!(new_access, access);
    assert_ne!(fresh[0]["refresh_token"].as_str().unwrap(), refresh);

    // The old access token died with the rotation; the new one works.
    assert_eq!(activate(&app, &access, true).await.status().as_u16(), 401);
    assert_eq!(
        activate(&app, new_access, true).await.status().as_u16(),
        200
    );

    let reused = app
        .client
        .post(app.upstream("/dna/api/oauth/token"))
        .form(&form(&refresh))
        .send()
        .await
        .unwrap();
    assert_eq!(reused.status().as_u16(), 401);
    let body: Value = reused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(body["hint"], "Token has been revoked");
}

#[tokio::test]
async fn an_expired_token_is_unauthenticated_for_json_clients_and_a_500_for_others() {
    let app = spawn_app().await;
    app.sandbox
        .control
        .set_token_lifetime(std::time::Duration::from_millis(1));
    let (access, _) = tokens(&app).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let json = activate(&app, &access, true).await;
    assert_eq!(json.status().as_u16(), 401);
    assert_eq!(
        json.json::<Value>().await.unwrap(),
        serde_json::json!({"message": "Unauthenticated."})
    );
    let html = activate(&app, &access, false).await;
    assert_eq!(html.status().as_u16(), 500);
    assert!(
        html.text()
            .await
            .unwrap()
            .contains("Route [login] not defined.")
    );
}

#[tokio::test]
async fn revoked_tokens_are_unauthenticated() {
    let app = spawn_app().await;
    let (access, _) = tokens(&app).await;
    app.sandbox.revoke_dna_tokens();
    assert_eq!(activate(&app, &access, true).await.status().as_u16(), 401);
}

#[tokio::test]
async fn create_client_validates_like_laravel() {
    let app = spawn_app().await;
    let (access, _) = tokens(&app).await;
    let response = app
        .client
        .post(app.upstream("/dna/api/residential/client"))
        .bearer_auth(&access)
        .header("accept", "application/json")
        .form(&[
            ("email", "not-an-email"),
            ("same_billing_address", "true"),
            ("start_billing_date", "18/05/2017"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "The given data was invalid.");
    let errors = &body["errors"];
    assert_eq!(
        errors["email"][0],
        "The email must be a valid email address."
    );
    assert_eq!(errors["first_name"][0], "The first name field is required.");
    assert_eq!(
        errors["same_billing_address"][0],
        "The same billing address field must be true or false."
    );
    assert_eq!(
        errors["start_billing_date"][0],
        "The start billing date does not match the format Y-m-d."
    );
}

#[tokio::test]
async fn create_client_answers_a_wrapped_client_and_activate_and_suspend_change_it() {
    let app = spawn_app().await;
    let (access, _) = tokens(&app).await;
    let form = [
        ("start_billing_date", "2026-12-01"),
        ("customer_id", "C-77"),
        ("email", "steve@example.com"),
        ("first_name", "Steve"),
        ("last_name", "Harris"),
        ("zipcode", "33134"),
        ("address", "126 Mendoza avenue"),
        ("same_billing_address", "0"),
        ("billing_address", "2121 Ponce de Leon"),
        ("billing_zipcode", "33308"),
        ("has_subreseller_id", "1"),
        ("subreseller_id", "123"),
    ];
    let created: Value = app
        .client
        .post(app.upstream("/dna/api/residential/client"))
        .bearer_auth(&access)
        .header("accept", "application/json")
        .query(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created[0]["result"], "OK", "{created}");
    let id = created[0]["client"]["id"].as_u64().expect("a numeric id");
    assert!(
        created[0]["client"]["ns_domain"]
            .as_str()
            .unwrap()
            .contains("harris")
    );
    assert_eq!(app.sandbox.dna_customer_status(id), Some("pending"));

    let again = app
        .client
        .post(app.upstream("/dna/api/residential/client"))
        .bearer_auth(&access)
        .header("accept", "application/json")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 422, "customer_id is unique");

    for (action, status) in [("activate", "active"), ("suspend", "suspended")] {
        let response = app
            .client
            .post(app.upstream(&format!("/dna/api/residential/client/{id}/{action}")))
            .bearer_auth(&access)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["result"], "OK");
        assert!(body["timestamp"].as_i64().unwrap() > 1_700_000_000);
        assert_eq!(app.sandbox.dna_customer_status(id), Some(status));
    }

    let missing = app
        .client
        .post(app.upstream("/dna/api/residential/client/999999/activate"))
        .bearer_auth(&access)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}
