//! What ops see: every metric family appears after a scenario that
//! exercises it, and the scrape passes `promtool check metrics` (Debian's
//! prometheus package; `bash tests/run.sh` installs it).

use std::{
    io::Write,
    net::{SocketAddr, TcpListener},
    process::{Command, Stdio},
};

use gateway::{
    auth::{Scope, sha256_hex},
    configuration::{ApiKeySettings, RedisSettings},
    sandbox::{Fault, FaultRule, ShapeChange},
    startup::Application,
};

use crate::{
    customers::{activate, new_customer},
    helpers::{
        KEY, RedisServer, get_json, get_text, samples, spawn_app_with, spawn_gateway, wait_until,
    },
};

/// Every family `/metrics` must show once the scenario ran.
const FAMILIES: &[&str] = &[
    "gateway_http_requests_total",
    "gateway_http_request_duration_seconds",
    "gateway_upstream_calls_total",
    "gateway_upstream_call_duration_seconds",
    "gateway_upstream_retries_total",
    "gateway_upstream_in_flight",
    "gateway_upstream_concurrency_limit",
    "gateway_breaker_state",
    "gateway_breaker_opened_total",
    "gateway_cache_lookups_total",
    "gateway_cache_entries",
    "gateway_cache_size_bytes",
    "gateway_cache_evictions_total",
    "gateway_cache_fallbacks_total",
    "gateway_cache_invalidations_total",
    "gateway_dna_token_requests_total",
    "gateway_dna_token_expires_in_seconds",
    "gateway_idempotency_keys_total",
    "gateway_rate_limited_total",
    "gateway_rate_limit_fallbacks_total",
    "gateway_redis_errors_total",
    "gateway_redis_up",
    "gateway_panics_total",
    "gateway_upstream_drift_total",
    "gateway_event_subscribers",
    "gateway_event_subscribers_dropped_total",
    "gateway_events_published_total",
    "gateway_event_polls_total",
    "gateway_event_watcher_leader",
    "gateway_events_lost_total",
    "gateway_registry_outcomes_pending",
    "gateway_registry_outcomes_refused_total",
    "gateway_build_info",
];

fn limited_key(settings: &mut gateway::configuration::Settings) {
    settings.auth.api_keys.push(ApiKeySettings {
        name: "limited".into(),
        sha256: sha256_hex("limited-key"),
        scopes: [Scope::Read].into(),
        rate_per_second: 1,
        burst: 1,
    });
}

#[tokio::test]
async fn every_family_appears_after_the_scenario_and_promtool_finds_nothing_to_fix() {
    // Small enough to evict; a breaker that opens on the first fault.
    let app = spawn_app_with(|s| {
        s.cache.max_bytes = 4_000;
        s.upstream.breaker_failures = 2;
        s.upstream.retries = 1;
        limited_key(s);
    })
    .await;
    let get = |path: &'static str| app.get(path);

    // Drift: one balance answer with a field the document does not show.
    app.sandbox.control.inject(FaultRule {
        times: Some(1),
        ..FaultRule::new(
            "/slitz/api/balance",
            Fault::Drift {
                field: "details.acc_pending".into(),
                change: ShapeChange::Add,
            },
        )
    });
    assert_eq!(get("/v1/billing/balance").await.status().as_u16(), 200);

    // Cache: a miss, a hit, then evictions by size.
    assert_eq!(get("/v1/billing/invoices").await.status().as_u16(), 200);
    assert_eq!(get("/v1/billing/invoices").await.status().as_u16(), 200);
    for id in [310001, 310002, 310003] {
        get(Box::leak(
            format!("/v1/billing/invoices/{id}").into_boxed_str(),
        ))
        .await;
    }
    // Token: the password grant, then a refused refresh after a revocation.
    assert_eq!(activate(&app, 6517).await.status().as_u16(), 200);
    app.sandbox.revoke_dna_tokens();
    assert_eq!(activate(&app, 6517).await.status().as_u16(), 200);
    // Idempotency: a create, its replay.
    for _ in 0..2 {
        let created = app
            .authed(reqwest::Method::POST, "/v1/customers")
            .header("Idempotency-Key", "metrics-1")
            .json(&new_customer("METRICS-1"))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status().as_u16(), 201);
    }
    // A 429.
    let limited = || {
        app.client
            .get(app.url("/v1/billing/balance"))
            .bearer_auth("limited-key")
            .send()
    };
    limited().await.unwrap();
    assert_eq!(limited().await.unwrap().status().as_u16(), 429);

    // A fault, retried once, then the breaker opens.
    app.sandbox.control.inject(FaultRule::new(
        "/slitz/api/tickets",
        Fault::Status {
            status: 500,
            body: None,
            retry_after: None,
        },
    ));
    assert_eq!(get("/v1/support/tickets").await.status().as_u16(), 502);
    assert_eq!(get("/v1/support/tickets").await.status().as_u16(), 503);
    app.sandbox.control.clear_faults();
    // A second instance whose Redis refuses every connection: Redis errors
    // and every fallback. It also mounts a route that panics.
    let mut settings =
        crate::helpers::sandbox_settings(&app.sandbox, SocketAddr::from(([127, 0, 0, 1], 0)));
    settings.redis = Some(RedisSettings::new(
        "redis://127.0.0.1:0/0",
        "gateway-test:",
        200,
    ));
    limited_key(&mut settings);
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let other =
        Application::build_with_routes(settings, listener, crate::panicking::panicking_routes)
            .unwrap();
    let other_base = format!("http://127.0.0.1:{}", other.port());
    tokio::spawn(other.run_until_stopped());
    let on_other = |path: &str, key: &str| {
        app.client
            .get(format!("{other_base}{path}"))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(
        on_other("/v1/account", KEY)
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    on_other("/v1/billing/balance", "limited-key")
        .await
        .unwrap();
    assert_eq!(
        on_other("/test/panic", KEY)
            .await
            .unwrap()
            .status()
            .as_u16(),
        500
    );

    // A third instance on a real Redis: a change confirmed by every instance.
    let redis = RedisServer::start().await;
    let mut settings =
        crate::helpers::sandbox_settings(&app.sandbox, SocketAddr::from(([127, 0, 0, 1], 0)));
    settings.redis = Some(redis.settings());
    let shared = spawn_gateway(settings).await;
    wait_until("the instance hears invalidations", async || {
        get_json(&format!("{shared}/readyz")).await["checks"]["cache_invalidations"]["status"]
            == "up"
    })
    .await;
    let changed = app
        .client
        .patch(format!("{shared}/v1/account"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"city": "Lund"}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status().as_u16(), 200);
    // A stream open: the watcher reads Slitz's lists (the PATCH above was
    // published as account.updated).
    let stream = app.get("/v1/events").await;
    assert_eq!(stream.status().as_u16(), 200);
    wait_until("the event watcher polled", async || {
        get_text(&app.url("/metrics"))
            .await
            .contains("gateway_event_polls_total{")
    })
    .await;

    let text = get_text(&app.url("/metrics")).await;
    for family in FAMILIES {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} is missing:\n{text}"
        );
        assert!(
            !samples(&text, family).is_empty(),
            "{family} has no sample:\n{text}"
        );
    }
    // Every other answer of the scenario, on every instance, is as documented.
    assert_eq!(
        samples(&text, "gateway_upstream_drift_total"),
        [
            r#"gateway_upstream_drift_total{upstream="slitz",operation="GET /balance",kind="unknown"} 1"#
        ]
    );
    // Labels are the bounded sets, never ids or keys.
    for line in samples(&text, "gateway_upstream_calls_total") {
        assert!(!line.contains("310001") && !line.contains("6517"), "{line}");
    }
    for sample in [
        r#"gateway_upstream_calls_total{upstream="slitz",operation="GET /tickets",outcome="5xx"} 2"#,
        r#"outcome="breaker_open""#,
        r#"gateway_breaker_state{upstream="slitz",operation="GET /tickets"} 2"#,
        r#"gateway_dna_token_requests_total{grant="refresh",outcome="error"} 1"#,
        r#"gateway_idempotency_keys_total{outcome="replayed"} 1"#,
        r#"gateway_rate_limited_total{key="limited"}"#,
        r#"gateway_cache_lookups_total{route="invoices",outcome="hit"} 1"#,
    ] {
        assert!(text.contains(sample), "{sample} is missing:\n{text}");
    }
    assert!(
        !text.contains("limited-key") && !text.contains(KEY),
        "no key in metrics"
    );

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (bash tests/run.sh installs the prometheus package)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(
        checked.status.success() && findings.trim().is_empty(),
        "promtool check metrics:\n{findings}"
    );
}

fn promtool(args: &[&str]) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir("deploy/prometheus")
        .output()
        .expect("promtool is installed (bash tests/run.sh installs the prometheus package)");
    assert!(
        output.status.success(),
        "promtool {}:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    promtool(&["check", "rules", "alerts.yml"]);
    promtool(&["test", "rules", "alerts.test.yml"]);
}

/// The `gateway_*` names an expression refers to, as families (a histogram's
/// `_bucket`, `_sum` and `_count` are its family).
fn families_in(expr: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("gateway_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        found.push(family.to_owned());
        rest = &tail[end..];
    }
    found
}

/// `(alert, expr)` of every rule in `alerts.yml` (promtool checks the
/// YAML itself): an `expr:` on one line, or a `|` block of deeper lines.
fn alert_expressions(rules: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut alert = String::new();
    let mut lines = rules.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(name) = trimmed.strip_prefix("- alert:") {
            alert = name.trim().to_owned();
        } else if let Some(expr) = trimmed.strip_prefix("expr:") {
            let indent = line.len() - trimmed.len();
            let mut expr = expr.trim().to_owned();
            if expr == "|" {
                expr.clear();
                while let Some(next) = lines
                    .next_if(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                {
                    expr.push_str(next.trim());
                    expr.push(' ');
                }
            }
            found.push((alert.clone(), expr));
        }
    }
    found
}

#[test]
fn the_dashboard_and_the_alerts_use_only_families_the_gateway_exports() {
    let rules = std::fs::read_to_string("deploy/prometheus/alerts.yml").unwrap();
    let mut expressions = alert_expressions(&rules);
    assert_eq!(expressions.len(), 10, "{expressions:?}");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("deploy/grafana/gateway.json").unwrap())
            .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10, "the panels on-call opens first");
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            expressions.push((
                panel["title"].as_str().unwrap().to_owned(),
                target["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    for (name, expr) in &expressions {
        let families = families_in(expr);
        assert!(!families.is_empty(), "{name}: {expr}");
        for family in families {
            assert!(
                FAMILIES.contains(&family.as_str()),
                "{name} uses {family}, which the gateway does not export"
            );
        }
    }
    // Everything on-call opens first is on the dashboard.
    let used: String = expressions.iter().map(|(_, e)| e.as_str()).collect();
    for family in [
        "gateway_http_requests_total",
        "gateway_upstream_call_duration_seconds",
        "gateway_upstream_calls_total",
        "gateway_cache_lookups_total",
        "gateway_breaker_state",
        "gateway_dna_token_expires_in_seconds",
    ] {
        assert!(used.contains(family), "{family} has no panel");
    }
}
