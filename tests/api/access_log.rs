//! The access log: its own stream, one JSON line per request in the
//! documented format, nothing lost under concurrent load or at shutdown.

use std::collections::BTreeMap;

use futures_util::{StreamExt, stream};
use gateway::sandbox::Sandbox;
use serde_json::Value;

use crate::{
    binary::{Gateway, config},
    helpers::{get_text, wait_until},
};

/// Documented in docs/operations.md; every access line has these.
const FIELDS: [&str; 10] = [
    "timestamp",
    "log",
    "request_id",
    "trace_id",
    "span_id",
    "method",
    "path",
    "route",
    "status",
    "latency_ms",
];

#[tokio::test]
async fn every_request_gets_one_complete_line_and_none_is_lost_at_shutdown() {
    let sandbox = Sandbox::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let dna = sandbox.dna_base_url().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut gateway = Gateway::start(
        dir.path(),
        &config(&sandbox, &[("frontend", "access-key", "")], "info", &dna),
    );
    let client = reqwest::Client::new();
    let requests = 400;
    let statuses: Vec<u16> = stream::iter(0..requests)
        .map(|i| {
            let (client, base) = (client.clone(), gateway.base.clone());
            async move {
                // Some hits, some with an id in the path, some refused.
                let path = match i % 4 {
                    0 => "/v1/billing/balance".to_owned(),
                    1 => "/v1/billing/invoices/310002".to_owned(),
                    2 => "/v1/account".to_owned(),
                    _ => "/v1/nowhere".to_owned(),
                };
                client
                    .get(format!("{base}{path}"))
                    .bearer_auth("access-key")
                    .header("x-request-id", format!("access-{i}"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(statuses.iter().filter(|s| **s == 404).count(), 100);
    let scrape = get_text(&format!("{}/metrics", gateway.base)).await;
    assert!(
        scrape.contains("gateway_access_log_dropped_total 0"),
        "{scrape}"
    );

    // SIGTERM: the last lines queued are written before the process ends.
    assert!(gateway.terminate().success());
    wait_until("the gateway's last line is read", async || {
        gateway.lines_with("gateway stopped") == 1
            && gateway.lines_with(r#""log":"access""#) >= requests
    })
    .await;
    let mut seen = BTreeMap::new();
    for line in gateway.log().lines() {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            panic!("not one JSON object per line: {line}")
        };
        if event["log"] != "access" {
            continue;
        }
        for field in FIELDS {
            assert!(event.get(field).is_some(), "{field} missing: {line}");
        }
        assert_eq!(event["client_ip"], "127.0.0.1", "{line}");
        let id = event["request_id"].as_str().unwrap().to_owned();
        if let Some(i) = id.strip_prefix("access-") {
            let i: usize = i.parse().unwrap();
            let route = match i % 4 {
                0 => "/v1/billing/balance",
                1 => "/v1/billing/invoices/{id}",
                2 => "/v1/account",
                _ => "unmatched",
            };
            assert_eq!(event["route"], route, "{line}");
            // The key's name, once a route has admitted it.
            let caller = if route == "unmatched" {
                Value::Null
            } else {
                "frontend".into()
            };
            assert_eq!(event["caller"], caller, "{line}");
            assert_eq!(event["status"], statuses_for(i), "{line}");
        }
        *seen.entry(id).or_insert(0) += 1;
    }
    for i in 0..requests {
        assert_eq!(seen.get(&format!("access-{i}")), Some(&1), "access-{i}");
    }
}

fn statuses_for(i: usize) -> u16 {
    if i % 4 == 3 { 404 } else { 200 }
}

#[tokio::test]
async fn access_false_in_the_file_means_no_access_lines() {
    let sandbox = Sandbox::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let dna = sandbox.dna_base_url().to_string();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}access = false\n",
        config(&sandbox, &[("frontend", "access-key", "")], "info", &dna)
    );
    let mut gateway = Gateway::start(dir.path(), &text);
    let answer = gateway
        .get("/v1/account", "access-key")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    assert!(gateway.terminate().success());
    wait_until("the gateway's last line is read", async || {
        gateway.lines_with("gateway stopped") == 1
    })
    .await;
    assert_eq!(
        gateway.lines_with(r#""log":"access""#),
        0,
        "{}",
        gateway.log()
    );
}
