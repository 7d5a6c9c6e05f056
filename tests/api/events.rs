//! The change stream, `GET /v1/events`, over real HTTP: events from writes
//! and from the watcher, filters, `Last-Event-ID`, heartbeats, limits, and
//! no compression holding an event back.

use std::time::Duration;

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::{
    customers::{activate, create, new_customer},
    helpers::{TestApp, assert_problem, spawn_app_with},
};

/// Reads a `text/event-stream` answer frame by frame.
pub struct Stream {
    pub response: Response,
    buffer: String,
}

/// One frame: its `id`, `event` and `data` (JSON), or a comment.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Option<Value>,
    pub comment: Option<String>,
    pub retry: Option<u64>,
}

impl Stream {
    async fn open(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Self {
        Self::open_at(&app.url(path), headers).await
    }

    /// A stream at any address (behind nginx, say), with the test key.
    pub async fn open_at(url: &str, headers: &[(&str, &str)]) -> Self {
        let mut request = reqwest::Client::new()
            .get(url)
            .bearer_auth(crate::helpers::KEY);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{url}");
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next frame, waiting at most a generous bound (a test that hangs
    /// fails instead).
    pub async fn next(&mut self) -> Frame {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                return parse(&raw);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.response.chunk())
                .await
                .expect("a frame within 30 s")
                .expect("the stream reads")
                .expect("the stream is still open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next event (heartbeats and `retry:` skipped).
    pub async fn next_event(&mut self) -> Frame {
        loop {
            let frame = self.next().await;
            if frame.event.is_some() {
                return frame;
            }
        }
    }
}

fn parse(raw: &str) -> Frame {
    let mut frame = Frame::default();
    for line in raw.lines() {
        if let Some(comment) = line.strip_prefix(':') {
            frame.comment = Some(comment.trim().to_owned());
        } else if let Some((field, value)) = line.split_once(": ") {
            match field {
                "id" => frame.id = Some(value.to_owned()),
                "event" => frame.event = Some(value.to_owned()),
                "data" => frame.data = Some(serde_json::from_str(value).unwrap()),
                "retry" => frame.retry = value.parse().ok(),
                _ => {}
            }
        }
    }
    frame
}

async fn quick_app() -> TestApp {
    spawn_app_with(|s| {
        s.events.poll_seconds = 1;
        s.events.heartbeat_seconds = 1;
    })
    .await
}

#[tokio::test]
async fn writes_through_the_gateway_reach_a_subscriber_in_order() {
    let app = quick_app().await;
    let mut stream = Stream::open(&app, "/v1/events?types=customer.*", &[]).await;
    let first = stream.next().await;
    assert_eq!(
        first.retry,
        Some(3000),
        "the reconnection delay comes first"
    );
    let created = create(&app, &new_customer("EV-1"), None).await;
    assert_eq!(created.status().as_u16(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap();
    assert_eq!(activate(&app, id).await.status().as_u16(), 200);
    let event = stream.next_event().await;
    assert_eq!(event.event.as_deref(), Some("customer.created"));
    let data = event.data.unwrap();
    assert_eq!(data["type"], "customer.created");
    assert_eq!(data["id"], id);
    assert_eq!(data["changed"]["customer_id"], "EV-1");
    assert_eq!(data["changed"]["status"], "pending");
    assert!(data["seen_at"].as_str().unwrap().ends_with('Z'));
    let event = stream.next_event().await;
    assert_eq!(event.event.as_deref(), Some("customer.activated"));
    assert_eq!(event.data.unwrap()["changed"]["status"], "active");
}

#[tokio::test]
async fn a_change_made_in_slitz_reaches_every_subscriber_within_a_poll_with_one_poll_for_all() {
    let app = quick_app().await;
    // Cached before the change: the event must make the cache forget it.
    let before = app.get("/v1/billing/invoices?per_page=100").await;
    assert_eq!(before.headers()["x-cache"], "MISS");
    let again = app.get("/v1/billing/invoices?per_page=100").await;
    assert_eq!(again.headers()["x-cache"], "HIT");
    let read_by_routes = app.sandbox.control.calls("GET /slitz/api/invoice");
    let mut streams = Vec::new();
    for _ in 0..10 {
        streams.push(Stream::open(&app, "/v1/events?types=invoice.*", &[]).await);
    }
    // The watcher's first read is its baseline: wait for it.
    crate::helpers::wait_until("the watcher read the invoices once", async || {
        app.sandbox.control.calls("GET /slitz/api/invoice") > read_by_routes
    })
    .await;
    assert!(
        app.sandbox
            .change_slitz_record("invoices", "310002", "status", json!("Cancelled"))
    );
    for stream in &mut streams {
        let event = stream.next_event().await;
        assert_eq!(event.event.as_deref(), Some("invoice.updated"));
        let data = event.data.unwrap();
        assert_eq!(data["id"], 310002);
        assert_eq!(
            data["changed"],
            json!({"status": "cancelled"}),
            "only what changed, normalized"
        );
    }
    // A subscriber refetching on the event reads the change, not the
    // cached list.
    let refetched = app.get("/v1/billing/invoices?per_page=100").await;
    assert_eq!(refetched.headers()["x-cache"], "MISS");
    let page: Value = refetched.json().await.unwrap();
    let invoice = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == 310002)
        .unwrap()
        .clone();
    assert_eq!(invoice["status"], "cancelled");
    // Ten subscribers, one watcher: its reads are one per poll, not per
    // subscriber. Polls are 1 s apart, so the reads so far are few.
    let polls = app.sandbox.control.calls("GET /slitz/api/invoice") - read_by_routes - 1;
    let tickets = app.sandbox.control.calls("GET /slitz/api/tickets");
    assert!(
        polls <= tickets + 1 && tickets <= polls + 1,
        "{polls} {tickets}"
    );
    assert!(polls < 10, "one read per poll for all ten: {polls}");
}

#[tokio::test]
async fn last_event_id_replays_what_a_subscriber_missed() {
    let app = quick_app().await;
    let mut stream = Stream::open(&app, "/v1/events?types=customer.created", &[]).await;
    for customer in ["EV-R1", "EV-R2", "EV-R3"] {
        assert_eq!(
            create(&app, &new_customer(customer), None)
                .await
                .status()
                .as_u16(),
            201
        );
    }
    let first = stream.next_event().await;
    drop(stream);
    let last = first.id.unwrap();
    let mut resumed = Stream::open(
        &app,
        "/v1/events?types=customer.created",
        &[("Last-Event-ID", &last)],
    )
    .await;
    for expected in ["EV-R2", "EV-R3"] {
        let event = resumed.next_event().await;
        assert_eq!(event.data.unwrap()["changed"]["customer_id"], expected);
    }
    // An id that cannot be replayed gets a reset.
    let mut stale = Stream::open(&app, "/v1/events", &[("Last-Event-ID", "1-1")]).await;
    let reset = stale.next_event().await;
    assert_eq!(reset.event.as_deref(), Some("reset"));
    assert_eq!(reset.data.unwrap()["reason"], "unknown-id");
}

#[tokio::test]
async fn an_idle_stream_gets_heartbeats_uncompressed_whatever_accept_encoding_says() {
    let app = quick_app().await;
    let mut stream = Stream::open(
        &app,
        "/v1/events?types=account.updated",
        &[("Accept-Encoding", "gzip, br")],
    )
    .await;
    assert!(stream.response.headers().get("content-encoding").is_none());
    assert_eq!(stream.response.headers()["cache-control"], "no-cache");
    stream.next().await;
    assert_eq!(stream.next().await.comment.as_deref(), Some("heartbeat"));
    // An event is not held back by compression either.
    let patched = app
        .authed(Method::PATCH, "/v1/account")
        .json(&json!({"city": "Lund"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status().as_u16(), 200);
    let event = stream.next_event().await;
    assert_eq!(event.event.as_deref(), Some("account.updated"));
    assert_eq!(event.data.unwrap()["changed"]["city"], "Lund");
}

#[tokio::test]
async fn bad_filters_are_a_400_and_streams_per_key_are_limited() {
    let app = spawn_app_with(|s| {
        s.events.max_subscribers_per_key = 2;
        // A closed stream is noticed at its next write: a heartbeat at the latest.
        s.events.heartbeat_seconds = 1;
    })
    .await;
    let response = app.get("/v1/events?types=invoice.paid,ticket.*").await;
    let problem = assert_problem(response, 400).await;
    assert_eq!(problem["errors"][0]["parameter"], "types");
    assert!(
        problem["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("`invoice.paid`")
    );
    let _a = Stream::open(&app, "/v1/events", &[]).await;
    let _b = Stream::open(&app, "/v1/events", &[]).await;
    let third = app.get("/v1/events").await;
    let third_retry_after = third.headers().get("retry-after").cloned();
    let problem = assert_problem(third, 429).await;
    // The key's limit, like its rate: the type clients already handle.
    assert_eq!(problem["type"], "urn:gateway:problem:rate-limited");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("2 open event streams")
    );
    assert!(third_retry_after.is_some());
    drop(_a);
    // The slot is given back when a stream ends.
    crate::helpers::wait_until("a slot is free again", async || {
        app.get("/v1/events").await.status().as_u16() == 200
    })
    .await;
}

/// Two instances on one Redis and one sandbox, polling every second: the
/// first as a `TestApp`, the second's base URL.
async fn two_instances(redis: &crate::helpers::RedisServer) -> (TestApp, TestApp) {
    let settings = redis.settings();
    let a = spawn_app_with(|s| {
        s.redis = Some(settings.clone());
        s.events.poll_seconds = 1;
        s.events.heartbeat_seconds = 1;
    })
    .await;
    let mut b = crate::helpers::sandbox_settings(
        &a.sandbox,
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    );
    b.server.workers = 1;
    b.redis = Some(redis.settings());
    b.events.poll_seconds = 1;
    b.events.heartbeat_seconds = 1;
    let address = crate::helpers::spawn_gateway(b).await;
    // The second shares the first's sandbox; its own is never called.
    let b = TestApp {
        address,
        client: a.client.clone(),
        sandbox: gateway::sandbox::Sandbox::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .unwrap(),
        data: a.data.clone(),
    };
    (a, b)
}

#[tokio::test]
async fn with_redis_a_write_on_one_instance_reaches_a_subscriber_on_the_other_and_replays_there() {
    let redis = crate::helpers::RedisServer::start().await;
    let (a, b) = two_instances(&redis).await;
    let mut on_b = Stream::open(&b, "/v1/events?types=customer.*", &[]).await;
    let created = create(&a, &new_customer("EV-X1"), None).await;
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap();
    assert_eq!(activate(&a, id).await.status().as_u16(), 200);
    let first = on_b.next_event().await;
    assert_eq!(first.event.as_deref(), Some("customer.created"));
    assert_eq!(first.data.unwrap()["id"], id);
    let second = on_b.next_event().await;
    assert_eq!(second.event.as_deref(), Some("customer.activated"));
    let suspended = a
        .authed(Method::POST, &format!("/v1/customers/{id}/suspend"))
        .send()
        .await
        .unwrap();
    assert_eq!(suspended.status().as_u16(), 200);
    let third = on_b.next_event().await;
    assert_eq!(third.event.as_deref(), Some("customer.suspended"));
    assert_eq!(third.data.unwrap()["changed"]["status"], "suspended");
    // The ids are the shared stream's: resuming on A after B's first event
    // replays the second there.
    let mut on_a = Stream::open(
        &a,
        "/v1/events?types=customer.*",
        &[("Last-Event-ID", first.id.as_deref().unwrap())],
    )
    .await;
    let replayed = on_a.next_event().await;
    assert_eq!(replayed.id, second.id);
    assert_eq!(replayed.event.as_deref(), Some("customer.activated"));
}

#[tokio::test]
async fn with_redis_twenty_subscribers_on_two_instances_all_see_a_change_made_in_slitz() {
    let redis = crate::helpers::RedisServer::start().await;
    let (a, b) = two_instances(&redis).await;
    let mut streams = Vec::new();
    for i in 0..20 {
        let app = if i % 2 == 0 { &a } else { &b };
        streams.push(Stream::open(app, "/v1/events?types=ticket.*", &[]).await);
    }
    crate::helpers::wait_until("the watcher read the tickets once", async || {
        a.sandbox.control.calls("GET /slitz/api/tickets") >= 1
    })
    .await;
    assert!(
        a.sandbox
            .change_slitz_record("tickets", "437928", "status", json!("Closed"))
    );
    for stream in &mut streams {
        let event = stream.next_event().await;
        assert_eq!(event.event.as_deref(), Some("ticket.updated"));
        assert_eq!(event.data.unwrap()["changed"]["status"], "closed");
    }
    // That one process alone polls is counted exactly in
    // nginx::two_processes_twenty_subscribers_one_slitz_poller (each
    // process has its own metrics; these two share this test's).
}
