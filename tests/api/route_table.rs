//! The route table is the single source of each route's facts: the served
//! document agrees with it, and the running gateway enforces its scopes.

use std::sync::LazyLock;

use gateway::{
    auth::{Scope, sha256_hex},
    configuration::ApiKeySettings,
    route_table::RouteSpec,
    upstream::operation::{DnaOperation, Operation, SlitzOperation},
};
use strum::VariantArray;

/// Every declared route, as the server registers them.
static ROUTES: LazyLock<Vec<&'static RouteSpec>> =
    LazyLock::new(|| gateway::routes::routes().collect());

fn route(name: &str) -> &'static RouteSpec {
    gateway::routes::routes()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no route {name}"))
}

use crate::helpers::{KEY, TestApp, assert_problem, get_json, get_text, samples, spawn_app_with};

/// A concrete path for a route's template.
fn concrete(route: &RouteSpec) -> String {
    let path = route.path.replace("{id}", "1").replace("{number}", "1");
    // Availability needs its query to reach the handler's checks; the scope
    // is checked before any of them.
    if route.name == "get_availability" {
        format!("{path}?name=example.se")
    } else {
        path
    }
}

fn call(app: &TestApp, route: &RouteSpec, key: Option<&str>) -> reqwest::RequestBuilder {
    let method = reqwest::Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
    let mut request = app.client.request(method, app.url(&concrete(route)));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if route.method != actix_web::http::Method::GET {
        request = request.json(&serde_json::json!({"first_name": "Ada"}));
    }
    request
}

#[tokio::test]
async fn the_served_document_says_what_the_table_says() {
    let app = spawn_app_with(|_| {}).await;
    let doc = get_json(&app.url("/openapi.json")).await;
    let mut documented = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            documented += 1;
            let name = operation["operationId"].as_str().unwrap();
            let route = ROUTES
                .iter()
                .find(|r| r.name == name)
                .unwrap_or_else(|| panic!("{method} {path} ({name}) is not in the route table"));
            assert_eq!(route.path, path, "{name}");
            assert_eq!(route.method.as_str(), method.to_uppercase(), "{name}");

            // Each alternative: its schemes (sorted) with their scopes.
            let security: Vec<Vec<(&str, Vec<&str>)>> = operation["security"]
                .as_array()
                .map(|alternatives| {
                    alternatives
                        .iter()
                        .map(|a| {
                            let mut schemes: Vec<(&str, Vec<&str>)> = a
                                .as_object()
                                .unwrap()
                                .iter()
                                .map(|(scheme, scopes)| {
                                    let scopes = scopes
                                        .as_array()
                                        .unwrap()
                                        .iter()
                                        .map(|s| s.as_str().unwrap())
                                        .collect();
                                    (scheme.as_str(), scopes)
                                })
                                .collect();
                            schemes.sort();
                            schemes
                        })
                        .collect()
                })
                .unwrap_or_default();
            // An API key, or a person's session (with X-CSRF on an unsafe
            // method), each with the route's scopes (and the widening one).
            let mut expected: Vec<Vec<(&str, Vec<&str>)>> = Vec::new();
            if route.keyed() {
                let scopes: Vec<&str> = route.scopes.iter().map(|s| s.as_str()).collect();
                let mut alternatives = vec![scopes.clone()];
                if let Some(wider) = route.widened_by {
                    alternatives.push(scopes.into_iter().chain([wider.as_str()]).collect());
                }
                let safe = matches!(route.method.as_str(), "GET" | "HEAD");
                for scheme in ["api_key", "session"] {
                    for scopes in &alternatives {
                        let mut requirement = vec![(scheme, scopes.clone())];
                        if scheme == "session" && !safe {
                            requirement.insert(0, ("csrf", vec![]));
                        }
                        expected.push(requirement);
                    }
                }
            }
            assert_eq!(security, expected, "{name}: security");

            let responses = &operation["responses"];
            let cached = route.cached.is_some();
            let tagged = cached || route.validated;
            assert_eq!(responses.get("304").is_some(), tagged, "{name}: 304");
            for (header, expected) in [
                ("ETag", tagged),
                ("X-Cache", cached),
                ("Cache-Control", tagged),
            ] {
                assert_eq!(
                    responses["200"]["headers"].get(header).is_some(),
                    expected,
                    "{name}: {header}"
                );
            }
            if route.keyed() {
                for status in ["401", "403", "429"] {
                    assert!(responses.get(status).is_some(), "{name} documents {status}");
                }
            }
        }
    }
    assert_eq!(documented, ROUTES.len(), "every table route is documented");
}

/// Every call a client can make is reached through some route (a route
/// can only name operations its client has: they are its enum's variants).
#[test]
fn every_upstream_operation_is_reached_by_a_route() {
    let operations = (SlitzOperation::VARIANTS
        .iter()
        .map(|&o| Operation::Slitz(o)))
    .chain(DnaOperation::VARIANTS.iter().map(|&o| Operation::Dna(o)));
    for operation in operations {
        assert!(
            ROUTES.iter().any(|r| r.upstream.contains(&operation)),
            "no route reaches {} {}",
            operation.upstream(),
            operation.as_str()
        );
    }
}

#[tokio::test]
async fn every_keyed_route_refuses_a_key_without_its_scope_before_any_upstream_call() {
    // One key per scope: each route is tried with every key lacking one of
    // its scopes, and without a key at all.
    let scopes = [Scope::Read, Scope::Write, Scope::Secrets];
    let app = spawn_app_with(|s| {
        for scope in scopes {
            s.auth.api_keys.push(ApiKeySettings {
                name: format!("only-{}", scope.as_str()),
                sha256: sha256_hex(&format!("only-{}-key", scope.as_str())),
                scopes: [scope].into(),
                rate_per_second: 0,
                burst: 0,
            });
        }
    })
    .await;
    let mut refused = 0;
    for route in ROUTES.iter().filter(|r| r.keyed()) {
        let answer = call(&app, route, None).send().await.unwrap();
        assert_problem(answer, 401).await;
        for scope in scopes.iter().filter(|s| !route.scopes.contains(s)) {
            let key = format!("only-{}-key", scope.as_str());
            let answer = call(&app, route, Some(&key)).send().await.unwrap();
            let problem = assert_problem(answer, 403).await;
            let missing = route.scopes.first().unwrap().as_str();
            assert!(
                problem["detail"].as_str().unwrap().contains(missing),
                "{}: {problem}",
                route.name
            );
            refused += 1;
        }
    }
    assert!(refused >= ROUTES.len(), "every keyed route was tried");
    assert!(
        app.sandbox.control.all_calls().is_empty(),
        "nothing reached an upstream: {:?}",
        app.sandbox.control.all_calls()
    );
    // The operational routes take no key. The login routes take none either,
    // and say plainly that nobody logs in where no [identity.oidc] client is.
    for route in ROUTES.iter().filter(|r| !r.keyed()) {
        let answer = call(&app, route, None).send().await.unwrap();
        if route.path.starts_with("/auth/") {
            let problem = assert_problem(answer, 404).await;
            assert!(
                problem["detail"]
                    .as_str()
                    .unwrap()
                    .contains("[identity.oidc]"),
                "{}: {problem}",
                route.name
            );
            continue;
        }
        assert!(
            answer.status().is_success(),
            "{}: {}",
            route.name,
            answer.status()
        );
    }
    // And the full key is let through everywhere it has the scopes.
    let answer = call(&app, route("get_account"), Some(KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
}

/// A path with a record the sandbox has, for each cached read.
pub fn with_a_record(route: &RouteSpec) -> String {
    let id = match route.name {
        "get_invoice" => "310002",
        "get_ticket" => "437928",
        "get_domain" => "548",
        "get_service" => "33301",
        // The registry knows it once a write went through (see the test).
        "get_customer" => "6518",
        _ => "",
    };
    let path = route.path.replace("{id}", id).replace("{number}", id);
    if route.name == "get_availability" {
        format!("{path}?name=surely-free-4711.se")
    } else {
        path
    }
}

#[tokio::test]
async fn every_cached_read_is_cached_under_the_table_s_route() {
    let app = spawn_app_with(|_| {}).await;
    let cached: Vec<&RouteSpec> = ROUTES
        .iter()
        .copied()
        .filter(|r| r.cached.is_some())
        .collect();
    assert_eq!(cached.len(), 11);
    for route in &cached {
        let path = with_a_record(route);
        for expected in ["MISS", "HIT"] {
            let answer = app.get(&path).await;
            assert_eq!(answer.status().as_u16(), 200, "{path}");
            assert_eq!(answer.headers()["x-cache"], expected, "{path}");
        }
    }
    // Each hit was counted under the cache route the table names, and
    // under no other.
    let scrape = get_text(&app.url("/metrics")).await;
    let counted: std::collections::BTreeSet<String> =
        samples(&scrape, "gateway_cache_lookups_total")
            .into_iter()
            .filter(|line| line.contains(r#"outcome="hit""#))
            .map(|line| {
                assert!(line.ends_with(" 1"), "one hit each: {line}");
                line.split('"').nth(1).unwrap().to_owned()
            })
            .collect();
    let named: std::collections::BTreeSet<String> = cached
        .iter()
        .map(|route| route.cached.unwrap().name().to_owned())
        .collect();
    assert_eq!(counted, named, "{scrape}");
}
