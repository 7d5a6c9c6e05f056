use crate::helpers::spawn_app;

#[tokio::test]
async fn a_sane_request_id_is_echoed() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn a_missing_or_unsafe_request_id_is_replaced_by_a_fresh_one() {
    let app = spawn_app().await;
    let mut seen = std::collections::HashSet::new();
    for header in [None, Some("has spaces in it"), Some(&*"x".repeat(200))] {
        let mut request = app.client.get(app.url("/healthz"));
        if let Some(value) = header {
            request = request.header("x-request-id", value);
        }
        let response = request.send().await.unwrap();
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(uuid_like(&id), "{id}");
        assert!(seen.insert(id), "ids are unique");
    }
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

#[tokio::test]
async fn the_request_id_is_forwarded_to_slitz() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/v1/account"))
        .bearer_auth(crate::helpers::KEY)
        .header("x-request-id", "fwd-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-request-id"], "fwd-42");
    assert_eq!(
        app.sandbox.control.last_request_id().as_deref(),
        Some("fwd-42")
    );
}

const CALLER_TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::test]
async fn a_callers_traceparent_is_continued_to_the_upstream_under_the_gateways_span() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/v1/account"))
        .bearer_auth(crate::helpers::KEY)
        .header("traceparent", CALLER_TRACE)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let sent = app.sandbox.control.last_traceparent().unwrap();
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!(parts.len(), 4, "{sent}");
    assert_eq!(parts[0], "00");
    assert_eq!(
        parts[1], "4bf92f3577b34da6a3ce929d0e0e4736",
        "the caller's trace"
    );
    assert_eq!(parts[2].len(), 16);
    assert_ne!(
        parts[2], "00f067aa0ba902b7",
        "the gateway's own span is the parent"
    );
    assert_eq!(parts[3], "01", "the caller's sampling decision");
}

#[tokio::test]
async fn without_a_valid_traceparent_each_request_starts_a_trace_of_its_own() {
    let app = spawn_app().await;
    let mut traces = std::collections::HashSet::new();
    for (i, header) in [
        "",
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
    ]
    .into_iter()
    .enumerate()
    {
        let mut request = app
            .client
            .get(app.url(&format!("/v1/billing/invoices/31000{}", i + 1)))
            .bearer_auth(crate::helpers::KEY);
        if !header.is_empty() {
            request = request.header("traceparent", header);
        }
        assert_eq!(request.send().await.unwrap().status().as_u16(), 200);
        let sent = app.sandbox.control.last_traceparent().unwrap();
        let parts: Vec<&str> = sent.split('-').collect();
        assert_eq!(parts.len(), 4, "{sent}");
        assert_eq!(
            (parts[0], parts[1].len(), parts[2].len()),
            ("00", 32, 16),
            "{sent}"
        );
        assert_ne!(parts[1], "00000000000000000000000000000000");
        traces.insert(parts[1].to_owned());
    }
    assert_eq!(traces.len(), 3, "a new trace per request");
}

/// Runs the real binary in sandbox mode with every log level on, drives a few
/// requests through it, and checks nothing secret reached its output.
#[tokio::test]
async fn no_secret_reaches_the_logs_even_at_trace_level() {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};

    use gateway::sandbox::data;

    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("GATEWAY_CONFIG")
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut log = String::new();
    let port = loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "gateway exited early: {log}"
        );
        log.push_str(&line);
        if line.contains("gateway listening") {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            break v["fields"]["port"].as_u64().unwrap();
        }
    };
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let ok = client
        .get(format!("{base}/v1/account"))
        .bearer_auth(super::helpers::KEY)
        .header("traceparent", CALLER_TRACE)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let denied = client
        .get(format!("{base}/v1/account"))
        .bearer_auth("top-secret-api-key-xyz")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status().as_u16(), 401);
    // SIGTERM, not SIGKILL: the log writers write out every queued line
    // before the process exits, so all of them are checked.
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    stdout.read_to_string(&mut log).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let _ = child.wait();
    let output = format!("{log}\n{stderr}");

    assert!(
        output.contains(r#""log":"access""#),
        "logs were captured: {output}"
    );
    // Every line of the traced request carries the caller's trace id.
    let traced: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("/v1/account") && l.contains("\"request_id\""))
        .collect();
    assert!(!traced.is_empty(), "{output}");
    assert!(
        traced
            .iter()
            .any(|l| l.contains("\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\"")),
        "{traced:?}"
    );
    let basic = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            data::SLITZ_EMAIL,
            data::SLITZ_PASSWORD
        ))
    };
    for secret in [
        data::SLITZ_PASSWORD,
        data::DNA_PASSWORD,
        data::DNA_CLIENT_SECRET,
        "top-secret-api-key-xyz",
        basic.as_str(),
    ] {
        assert!(!output.contains(secret), "{secret} was logged");
    }
}
