//! The DNA token lifecycle, against the simulator with 2-second tokens.

use std::time::Duration;

use secrecy::SecretString;

use crate::{
    customers::{CREATE, TOKEN, activate, create, new_customer},
    helpers::{TestApp, assert_problem, spawn_app, spawn_app_with},
};

const LIFETIME: Duration = Duration::from_secs(2);
/// Long enough for a 2-second token to have expired.
const PAST_EXPIRY: Duration = Duration::from_millis(2300);

async fn app_with_short_tokens() -> TestApp {
    let app = spawn_app().await;
    app.sandbox.control.set_token_lifetime(LIFETIME);
    app
}

#[tokio::test]
async fn the_first_call_fetches_a_token_and_the_next_reuse_it() {
    let app = app_with_short_tokens().await;
    for _ in 0..3 {
        assert_eq!(activate(&app, 6517).await.status().as_u16(), 200);
    }
    assert_eq!(app.sandbox.control.calls(TOKEN), 1);
    assert_eq!(app.sandbox.dna_grants("password"), 1);
}

#[tokio::test]
async fn a_burst_of_50_writes_after_expiry_makes_exactly_one_token_request() {
    let app = app_with_short_tokens().await;
    assert_eq!(activate(&app, 6517).await.status().as_u16(), 200);
    tokio::time::sleep(PAST_EXPIRY).await;
    app.sandbox.control.reset_calls();
    let burst = (0..50).map(|_| activate(&app, 6517));
    for response in futures_util::future::join_all(burst).await {
        assert_eq!(response.status().as_u16(), 200);
    }
    assert_eq!(app.sandbox.control.calls(TOKEN), 1);
    assert_eq!(
        app.sandbox.dna_grants("refresh_token"),
        1,
        "refreshed, not logged in again"
    );
    assert_eq!(
        app.sandbox
            .control
            .calls("POST /dna/api/residential/client/{id}/{action}"),
        50
    );
}

#[tokio::test]
async fn three_expiry_cycles_in_a_row_succeed_with_rotating_refresh_tokens() {
    let app = app_with_short_tokens().await;
    assert_eq!(activate(&app, 6517).await.status().as_u16(), 200);
    for cycle in 1..=3 {
        tokio::time::sleep(PAST_EXPIRY).await;
        assert_eq!(
            activate(&app, 6517).await.status().as_u16(),
            200,
            "cycle {cycle}"
        );
    }
    assert_eq!(app.sandbox.dna_grants("password"), 1);
    assert_eq!(app.sandbox.dna_grants("refresh_token"), 3);
}

#[tokio::test]
async fn a_token_revoked_upstream_is_replaced_and_the_call_succeeds() {
    let app = spawn_app().await;
    assert_eq!(activate(&app, 6517).await.status().as_u16(), 200);
    app.sandbox.revoke_dna_tokens();
    assert_eq!(activate(&app, 6517).await.status().as_u16(), 200);
    // The revoked refresh token is refused, so the password grant takes over.
    assert_eq!(app.sandbox.dna_grants("password"), 2);
}

#[tokio::test]
async fn a_create_refused_with_401_is_sent_again_once_and_creates_one_customer() {
    let app = spawn_app().await;
    assert_eq!(activate(&app, 6517).await.status().as_u16(), 200);
    app.sandbox.revoke_dna_tokens();
    let before = app.sandbox.dna_customer_count();
    assert_eq!(
        create(&app, &new_customer("REAUTH-1"), None)
            .await
            .status()
            .as_u16(),
        201
    );
    assert_eq!(
        app.sandbox.control.calls(CREATE),
        2,
        "the 401, then the one that worked"
    );
    assert_eq!(app.sandbox.dna_customer_count(), before + 1);
}

#[tokio::test]
async fn a_plain_object_token_answer_works_too() {
    let app = spawn_app().await;
    let mut knobs = app.sandbox.control.knobs();
    knobs.dna_plain_token = true;
    app.sandbox.control.set_knobs(knobs);
    assert_eq!(activate(&app, 6517).await.status().as_u16(), 200);
}

#[tokio::test]
async fn rejected_credentials_are_a_502_problem_and_make_readyz_not_ready() {
    let app = spawn_app_with(|s| s.dna.password = SecretString::from("wrong-password")).await;
    let problem = assert_problem(activate(&app, 6517).await, 502).await;
    assert_eq!(problem["upstream"], "dna");
    assert!(problem["detail"].as_str().unwrap().contains("credentials"));
    assert!(!problem.to_string().contains("wrong-password"));
    assert_eq!(
        app.sandbox
            .control
            .calls("POST /dna/api/residential/client/{id}/{action}"),
        0
    );

    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    let body = assert_problem(ready, 503).await;
    assert_eq!(body["checks"]["dna_credentials"]["status"], "down");
}

#[tokio::test]
async fn an_unreachable_token_endpoint_is_a_503_and_the_key_can_be_retried() {
    let app = spawn_app_with(|s| s.dna.base_url = crate::helpers::refusing_url()).await;
    let body = new_customer("DOWN-1");
    assert_problem(create(&app, &body, Some("key-down")).await, 503).await;
    // Nothing reached DNA, so the key was released: a retry is processed, not replayed.
    let retry = create(&app, &body, Some("key-down")).await;
    assert!(retry.headers().get("idempotent-replayed").is_none());
    assert_problem(retry, 503).await;
}
