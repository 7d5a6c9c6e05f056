//! A panic while serving a request is a 500 problem, logged once and counted;
//! the worker keeps serving. Its own test binary (one process), because it
//! installs a global log subscriber to read what was logged.

use std::{
    io::Write,
    net::{SocketAddr, TcpListener},
    sync::{Arc, Mutex},
};

use gateway::{sandbox::Sandbox, startup::Application};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[path = "support/panicking.rs"]
mod panicking;
use panicking::panicking_routes;

#[tokio::test]
async fn a_panic_is_a_500_problem_logged_once_and_the_worker_keeps_serving() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_writer(move || writer.clone())
        .init();

    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let sandbox = Sandbox::start(loopback).unwrap();
    let mut settings = gateway::sandbox::settings(&sandbox, loopback);
    let data = tempfile::tempdir().unwrap();
    settings.registry.url = format!("sqlite://{}/registry.sqlite3", data.path().display()).into();
    // One worker: if the panic killed it, nothing would answer after.
    settings.server.workers = 1;
    let listener = TcpListener::bind(loopback).unwrap();
    let app = Application::build_with_routes(settings, listener, panicking_routes).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    // One connection, kept alive across the requests.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .http1_only()
        .build()
        .unwrap();

    let response = client
        .get(format!("{base}/test/panic"))
        .header("x-request-id", "panic-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert_eq!(response.headers()["x-request-id"], "panic-1");
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:gateway:problem:internal");
    assert_eq!(problem["status"], 500);
    assert_eq!(problem["request_id"], "panic-1");
    assert!(
        !problem.to_string().contains("byte index"),
        "the panic message stays in the logs: {problem}"
    );

    // The same connection and the same worker go on serving...
    for _ in 0..3 {
        let account = client
            .get(format!("{base}/v1/account"))
            .bearer_auth(gateway::sandbox::SANDBOX_API_KEY)
            .send()
            .await
            .unwrap();
        let status = account.status().as_u16();
        let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
        assert_eq!(status, 200, "{} {logs}", account.text().await.unwrap());
    }
    // ...and so do new connections.
    let fresh = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(fresh.status().as_u16(), 200);

    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l == "gateway_panics_total 1"),
        "{metrics}"
    );

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let panics: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &serde_json::Value| l["fields"]["panic"].is_string())
        .collect();
    assert_eq!(panics.len(), 1, "logged once: {logs}");
    let line = &panics[0];
    assert_eq!(line["level"], "ERROR");
    assert!(
        line["fields"]["panic"]
            .as_str()
            .unwrap()
            .contains("is not a char boundary"),
        "{line}"
    );
    assert!(
        line["fields"]["location"]
            .as_str()
            .unwrap()
            .contains("tests/support/panicking.rs"),
        "{line}"
    );
    // This test's own subscriber shows the request's span (text-log mode).
    assert_eq!(line["span"]["request_id"], "panic-1", "{line}");
}
