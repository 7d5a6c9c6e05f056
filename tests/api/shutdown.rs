//! Graceful shutdown: not ready at once, no new connections, requests in
//! flight finished, exit 0.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::helpers::{KEY, assert_problem, get_json, wait_until};

#[tokio::test]
async fn a_draining_gateway_is_not_ready() {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let sandbox = gateway::sandbox::Sandbox::start(loopback).unwrap();
    let app =
        gateway::startup::Application::build(crate::helpers::sandbox_settings(&sandbox, loopback))
            .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_handle();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);

    shutdown.drain();
    let draining = client.get(format!("{base}/readyz")).send().await.unwrap();
    let problem = assert_problem(draining, 503).await;
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("shutting down")),
        "{problem}"
    );
    // Everything else still answers until the server stops.
    let account = client
        .get(format!("{base}/v1/account"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(account.status().as_u16(), 200);
}

/// The real binary, in sandbox mode: SIGTERM while a slow request is in
/// flight. The request finishes, new connections are refused, exit code 0.
#[tokio::test]
async fn sigterm_finishes_requests_in_flight_then_exits_0() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("GATEWAY_CONFIG")
        .env("RUST_LOG", "info")
        .env("GATEWAY__SERVER__SHUTDOWN_GRACE_SECONDS", "20")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut port, mut simulators) = (None, None);
    while port.is_none() || simulators.is_none() {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "gateway exited early"
        );
        let Ok(event) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if let Some(p) = event["fields"]["port"].as_u64() {
            port = Some(p);
        }
        if let Some(slitz) = event["fields"]["slitz"].as_str() {
            simulators = Some(slitz.trim_end_matches("/slitz/api").to_owned());
        }
    }
    // Keep reading the log, so the gateway never blocks on a full pipe.
    let rest = std::thread::spawn(move || stdout.lines().map_while(Result::ok).collect::<Vec<_>>());
    let base = format!("http://127.0.0.1:{}", port.unwrap());
    let simulators = simulators.unwrap();
    let client = reqwest::Client::new();

    // Slitz answers the account slowly.
    let fault =
        serde_json::json!({"path": "/slitz/api/details", "fault": {"kind": "delay", "ms": 1500}});
    let injected = client
        .post(format!("{simulators}/__sandbox/faults"))
        .json(&fault)
        .send()
        .await
        .unwrap();
    assert!(injected.status().is_success());
    let slow = tokio::spawn(
        client
            .get(format!("{base}/v1/account"))
            .bearer_auth(KEY)
            .send(),
    );
    wait_until("the slow request reaches slitz", async || {
        let calls = get_json(&format!("{simulators}/__sandbox/calls")).await;
        calls["GET /slitz/api/details"].as_u64() == Some(1)
    })
    .await;

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );

    // New connections are refused soon after the signal...
    wait_until("the listener is closed", async || {
        reqwest::Client::new()
            .get(format!("{base}/healthz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .is_err_and(|e| e.is_connect())
    })
    .await;
    // ...while the request in flight is answered in full.
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.status().as_u16(), 200);
    let account: Value = slow.json().await.unwrap();
    assert_eq!(account["id"], 20408);

    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
    // Nothing the log writers had queued is lost at exit: the slow
    // request's access line and the gateway's last word (two streams, each
    // written out before the process ends).
    let log = rest.join().unwrap();
    let line = |text: &str| log.iter().position(|l| l.contains(text));
    let finished = log
        .iter()
        .position(|l| l.contains(r#""log":"access""#) && l.contains("/v1/account"));
    assert!(
        finished.is_some() && line("gateway stopped").is_some(),
        "{log:#?}"
    );
}

/// SIGTERM with an event stream open: the stream ends at once (its client
/// reconnects elsewhere with `Last-Event-ID`) instead of holding the
/// process for the whole grace, and the process exits 0.
#[tokio::test]
async fn sigterm_ends_event_streams_promptly_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox =
        gateway::sandbox::Sandbox::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let text = crate::binary::config(
        &sandbox,
        &[("web", "web-key", "")],
        "info",
        sandbox.dna_base_url().as_str(),
    )
    .replace(
        "workers = 1\n",
        "workers = 1\nshutdown_grace_seconds = 60\n",
    );
    let mut gateway = crate::binary::Gateway::start(dir.path(), &text);
    let mut stream = reqwest::Client::new()
        .get(format!("{}/v1/events", gateway.base))
        .bearer_auth("web-key")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    let first = stream.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("retry: "));
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || gateway.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    // Ended by the gateway, not cut at the 60 s grace.
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.chunk()).await;
    assert!(
        matches!(ended, Ok(Ok(None)) | Ok(Err(_))),
        "the stream ended: {ended:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "exited in {:?}, not after the grace",
        started.elapsed()
    );
}
