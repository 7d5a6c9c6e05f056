//! Admission fails closed by construction: a route is reached only through
//! its declaration, which wraps it in admission, so a keyed route whose
//! handler takes nothing at all (no key, no principal) still refuses a
//! request without a valid key, and one lacking its scope.

use std::net::{SocketAddr, TcpListener};

use actix_web::HttpResponse;
use gateway::{
    auth::{Scope, sha256_hex},
    configuration::ApiKeySettings,
    sandbox::Sandbox,
    startup::Application,
};

use crate::helpers::{KEY, assert_problem, get_text, samples};

gateway::endpoint! {
    /// A keyed route whose handler forgot every extractor
    ///
    /// What a careless handler would look like: admission must refuse for it.
    #[route(get "/test/forgetful", scopes = [Write])]
    #[openapi(tag = "test",)]
    #[responses((status = 200, description = "Served."))]
    pub(crate) async fn forgetful() -> HttpResponse {
        HttpResponse::Ok().body("served")
    }
}

#[tokio::test]
async fn a_keyed_route_whose_handler_takes_nothing_still_refuses_without_a_key() {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let sandbox = Sandbox::start(loopback).unwrap();
    let mut settings = crate::helpers::sandbox_settings(&sandbox, loopback);
    settings.auth.api_keys.push(ApiKeySettings {
        name: "reader".into(),
        sha256: sha256_hex("reader-key"),
        scopes: [Scope::Read].into(),
        rate_per_second: 0,
        burst: 0,
    });
    let app =
        Application::build_with_routes(settings, TcpListener::bind(loopback).unwrap(), |cfg| {
            (forgetful::ENDPOINT.register)(cfg)
        })
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let url = format!("{base}/test/forgetful");

    let none = client.get(&url).send().await.unwrap();
    let problem = assert_problem(none, 401).await;
    assert_eq!(problem["type"], "urn:gateway:problem:unauthenticated");
    let wrong = client
        .get(&url)
        .bearer_auth("no-such-key")
        .send()
        .await
        .unwrap();
    assert_problem(wrong, 401).await;
    let reader = client
        .get(&url)
        .bearer_auth("reader-key")
        .send()
        .await
        .unwrap();
    let problem = assert_problem(reader, 403).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("write"),
        "{problem}"
    );

    let writer = client.get(&url).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(writer.status().as_u16(), 200);
    assert_eq!(writer.text().await.unwrap(), "served");

    // Another method on the same path is a 405, never the handler.
    let post = client.post(&url).bearer_auth(KEY).send().await.unwrap();
    assert_problem(post, 405).await;

    // The route admission found is the metrics' label: resolved once, by the router.
    let scrape = get_text(&format!("{base}/metrics")).await;
    let counted = samples(&scrape, "gateway_http_requests_total")
        .into_iter()
        .filter(|line| line.contains(r#"route="/test/forgetful""#))
        .count();
    assert!(counted >= 3, "{scrape}");
}
