//! The registry under faults, on real databases: two instances on one
//! PostgreSQL, PostgreSQL stopped under load and back, a gateway killed
//! between sending a write and recording its outcome, a read-only SQLite,
//! SQLite on a full disk.

use std::net::SocketAddr;

use gateway::sandbox::{Fault, FaultRule};
use serde_json::Value;

use super::{Db, created_id, get, get_json};
use crate::customers::{CREATE, create, new_customer};
use crate::helpers::{
    TestApp, assert_problem, get_text, samples, sandbox_settings, spawn_gateway, wait_until,
};
use crate::postgres::PostgresServer;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A second instance on `a`'s sandbox and `url`'s registry.
async fn second_instance(a: &TestApp, url: String) -> TestApp {
    let mut settings = sandbox_settings(&a.sandbox, loopback());
    settings.server.workers = 1;
    settings.registry.url = url.into();
    let address = spawn_gateway(settings).await;
    TestApp {
        address,
        client: a.client.clone(),
        sandbox: gateway::sandbox::Sandbox::start(loopback()).unwrap(),
        data: a.data.clone(),
    }
}

#[tokio::test]
async fn two_instances_on_one_postgres_list_each_other_s_writes_and_fifty_creates_make_fifty_rows()
{
    let db = Db::postgres().await;
    let Db::Postgres(server) = &db else {
        unreachable!()
    };
    let a = db.app().await;
    let b = second_instance(&a, server.url()).await;
    let id = created_id(&a, "TWO-1").await;
    let on_b = get_json(&b, &format!("/v1/customers/{id}")).await;
    assert_eq!(on_b["customer_id"], "TWO-1", "a create on A is read on B");

    let creates = (0..50).map(|n| {
        let app = if n % 2 == 0 { &a } else { &b };
        async move { create(app, &new_customer(&format!("MANY-{n}")), None).await }
    });
    for response in futures_util::future::join_all(creates).await {
        assert_eq!(response.status(), 201);
    }
    let page = get_json(&b, "/v1/customers?q=steve&limit=200").await;
    let many = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["customer_id"].as_str().unwrap().starts_with("MANY-"))
        .count();
    assert_eq!(many, 50);
    let audit = get_json(&a, "/v1/audit?operation=customer.create&limit=200").await;
    let entries = audit["items"].as_array().unwrap();
    assert_eq!(entries.len(), 51, "one entry per create");
    assert!(entries.iter().all(|e| e["outcome"] == "succeeded"));
}

#[tokio::test]
async fn postgres_stopped_under_load_refuses_writes_unsent_and_heals_by_itself() {
    let server = PostgresServer::start().await;
    let db = Db::Postgres(server);
    let app = db.app_with(|s| s.registry.timeout_ms = 1_000).await;
    created_id(&app, "UP-1").await;
    let Db::Postgres(server) = &db else {
        unreachable!()
    };
    server.stop();
    let sent_before = app.sandbox.control.calls(CREATE);
    let burst = (0..20).map(|n| {
        let app = &app;
        async move { create(app, &new_customer(&format!("DOWN-{n}")), None).await }
    });
    for response in futures_util::future::join_all(burst).await {
        assert!(response.headers().contains_key("retry-after"));
        let problem = assert_problem(response, 503).await;
        assert_eq!(
            problem["type"],
            "urn:gateway:problem:shared-state-unavailable"
        );
    }
    assert_eq!(
        app.sandbox.control.calls(CREATE),
        sent_before,
        "nothing sent to DNA while nothing could be recorded"
    );
    assert_problem(get(&app, "/v1/customers").await, 503).await;

    server.restart();
    wait_until("the registry answers again", async || {
        get(&app, "/v1/customers").await.status() == 200
    })
    .await;
    created_id(&app, "UP-2").await;
    let audit = get_json(&app, "/v1/audit").await;
    let customers: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        customers,
        ["UP-2", "UP-1"],
        "every accepted write, no refused one"
    );
}

/// The database goes away while DNA is making a create: the caller still
/// gets its 201 (DNA made it), the outcome is retried until the database
/// is back, counted meanwhile, and the `customer.created` event waits for
/// it, so whoever refetches on the event finds the customer.
#[tokio::test]
async fn an_outcome_the_database_cannot_take_is_retried_counted_and_announced_when_recorded() {
    let db = Db::postgres().await;
    let app = db.app_with(|s| s.registry.timeout_ms = 1_000).await;
    let Db::Postgres(server) = &db else {
        unreachable!()
    };
    let mut stream =
        crate::events::Stream::open_at(&app.url("/v1/events?types=customer.*"), &[]).await;
    app.sandbox.control.inject(FaultRule::new(
        "/dna/api/residential/client",
        Fault::Delay { ms: 5_000 },
    ));
    let creating = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/v1/customers");
        async move {
            client
                .post(url)
                .bearer_auth(crate::helpers::KEY)
                .json(&new_customer("LATE-1"))
                .send()
                .await
                .unwrap()
        }
    });
    wait_until("DNA received the create", async || {
        app.sandbox.control.calls(CREATE) == 1
    })
    .await;
    server.stop();
    assert!(
        !creating.is_finished(),
        "the database stopped while DNA still held the create (its answer is delayed 5 s)"
    );
    let answer = creating.await.unwrap();
    assert_eq!(answer.status(), 201, "DNA made it: the caller is told so");
    let scrape = get_text(&app.url("/metrics")).await;
    assert_eq!(
        samples(&scrape, "gateway_registry_outcomes_pending"),
        ["gateway_registry_outcomes_pending 1"]
    );
    assert!(
        samples(&scrape, "gateway_events_published_total").is_empty(),
        "nothing announced before the registry has it: {scrape}"
    );
    wait_until("the retries are counted", async || {
        let scrape = get_text(&app.url("/metrics")).await;
        samples(&scrape, "gateway_registry_outcome_retries_total")
            .first()
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= 2)
    })
    .await;

    server.restart();
    let event = stream.next_event().await;
    assert_eq!(event.event.as_deref(), Some("customer.created"));
    let listed = get_json(&app, "/v1/customers?customer_id=LATE-1").await;
    assert_eq!(listed["items"][0]["status"], "pending", "{listed}");
    let audit = get_json(&app, "/v1/audit").await;
    assert_eq!(audit["items"][0]["outcome"], "succeeded", "{audit}");
    let scrape = get_text(&app.url("/metrics")).await;
    assert_eq!(
        samples(&scrape, "gateway_registry_outcomes_pending"),
        ["gateway_registry_outcomes_pending 0"]
    );
    assert_eq!(app.sandbox.control.calls(CREATE), 1, "sent once");
}

/// A binary gateway's configuration on `sandbox`: the `ops` key (read,
/// write, audit) and, after it, `registry` (a `[registry]` section, or
/// nothing for the default file).
fn ops_config(sandbox: &gateway::sandbox::Sandbox, registry: &str) -> String {
    let mut text = crate::binary::config(sandbox, &[], "info", sandbox.dna_base_url().as_str());
    text.push_str(&format!(
        "\n[[auth.api_keys]]\nname = \"ops\"\nsha256 = \"{}\"\nscopes = [\"read\", \"write\", \"audit\"]\n\n{registry}",
        gateway::auth::sha256_hex("ops-key"),
    ));
    text
}

/// Creates customer `id` on the binary gateway at `base` with the `ops`
/// key: a future that owns what it needs, to await or to spawn.
fn create_at(
    base: &str,
    id: &str,
) -> impl Future<Output = reqwest::Result<reqwest::Response>> + Send + 'static {
    reqwest::Client::new()
        .post(format!("{base}/v1/customers"))
        .bearer_auth("ops-key")
        .json(&new_customer(id))
        .send()
}

/// The newest audit entry, as a gateway started anew on `text` in `dir`
/// lists it.
async fn newest_entry_after_restart(dir: &std::path::Path, text: &str) -> Value {
    let second = crate::binary::Gateway::start(dir, text);
    let audit: Value = (second.get("/v1/audit", "ops-key").send().await.unwrap())
        .json()
        .await
        .unwrap();
    audit["items"][0].clone()
}

/// A gateway stopped (SIGTERM) while an outcome waits for the database:
/// it tries once more, and the one thing only it knows, what DNA answered,
/// goes to its log with the entry's id (never the customer's data); the
/// entry stays `unknown` until resolved by hand.
#[tokio::test]
async fn a_gateway_stopped_with_an_outcome_unrecorded_names_it_in_its_log() {
    let db = Db::postgres().await;
    let Db::Postgres(server) = &db else {
        unreachable!()
    };
    let sandbox = gateway::sandbox::Sandbox::start(loopback()).unwrap();
    sandbox.control.inject(FaultRule::new(
        "/dna/api/residential/client",
        Fault::Delay { ms: 3_000 },
    ));
    let dir = tempfile::tempdir().unwrap();
    let registry = format!(
        "[registry]\nurl = \"{}\"\ntimeout_ms = 1000\n",
        server.url()
    );
    let text = ops_config(&sandbox, &registry);
    let mut gateway = crate::binary::Gateway::start(dir.path(), &text);
    let creating = tokio::spawn(create_at(&gateway.base, "STOPPED-1"));
    wait_until("DNA received the create", async || {
        sandbox.control.calls(CREATE) == 1
    })
    .await;
    server.stop();
    let answer = creating.await.unwrap().unwrap();
    assert_eq!(answer.status(), 201, "DNA made it: the caller is told so");
    let made: Value = answer.json().await.unwrap();
    wait_until("the outcome is being retried", async || {
        gateway.lines_with("recording an outcome failed; retrying in the background") == 1
    })
    .await;

    assert!(gateway.terminate().success(), "{}", gateway.log());
    wait_until("the gateway's last line is read", async || {
        gateway.lines_with("gateway stopped") == 1
    })
    .await;
    let log = gateway.log();
    let line: Value = (log.lines())
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| {
            line["fields"]["message"]
                == "shutting down with this outcome unrecorded; the entry stays unknown"
        })
        .unwrap_or_else(|| panic!("no line names the outcome: {log}"));
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["fields"]["outcome"], "succeeded");
    assert_eq!(line["fields"]["dna_id"], made["id"], "{line}");
    assert!(line["fields"]["audit_id"].is_i64(), "{line}");
    assert!(
        !log.contains("STOPPED-1"),
        "the customer's data stays out of the log"
    );

    server.restart();
    let entry = newest_entry_after_restart(dir.path(), &text).await;
    assert_eq!(entry["id"], line["fields"]["audit_id"], "{entry}");
    assert_eq!(entry["outcome"], "unknown", "{entry}");
    assert_eq!(sandbox.control.calls(CREATE), 1, "sent once");
}

#[tokio::test]
async fn a_gateway_killed_between_sending_and_recording_leaves_an_unknown_entry() {
    let sandbox = gateway::sandbox::Sandbox::start(loopback()).unwrap();
    sandbox
        .control
        .inject(FaultRule::new("/dna/api/residential/client", Fault::Hang));
    let dir = tempfile::tempdir().unwrap();
    let registry = format!(
        "[registry]\nurl = \"sqlite://{}/registry.sqlite3\"\n",
        dir.path().display()
    );
    let text = ops_config(&sandbox, &registry);
    let first = crate::binary::Gateway::start(dir.path(), &text);
    let hanging = tokio::spawn(create_at(&first.base, "KILLED-1"));
    wait_until("DNA received the create", async || {
        sandbox.control.calls(CREATE) == 1
    })
    .await;
    drop(first); // SIGKILL
    assert!(hanging.await.unwrap().is_err(), "no answer came");

    let entry = newest_entry_after_restart(dir.path(), &text).await;
    assert_eq!(entry["customer_id"], "KILLED-1", "{entry}");
    assert_eq!(entry["outcome"], "unknown");
    assert!(entry["outcome_at"].is_null(), "no outcome was recorded");
}

#[tokio::test]
async fn a_read_only_sqlite_refuses_writes_cleanly() {
    let a = Db::Sqlite.app().await;
    created_id(&a, "RO-1").await;
    let file = a.data.path().join("registry.sqlite3");
    let b = second_instance(&a, format!("sqlite://{}?mode=ro", file.display())).await;
    let sent_before = a.sandbox.control.calls(CREATE);
    let problem = assert_problem(create(&b, &new_customer("RO-2"), None).await, 503).await;
    assert_eq!(
        problem["type"],
        "urn:gateway:problem:shared-state-unavailable"
    );
    assert_eq!(a.sandbox.control.calls(CREATE), sent_before, "nothing sent");
    let listed = get_json(&b, "/v1/customers?customer_id=RO-1").await;
    assert_eq!(
        listed["items"][0]["customer_id"], "RO-1",
        "reads go on: {listed}"
    );
}

/// SQLite whose files cannot grow (the gateway's process may not write a
/// file past a size, so a write fails as it would on a full disk): every
/// create either is answered 201 (sent to DNA) or refused with a 503
/// before DNA sees it, the refusal comes, and reads, the audit trail and
/// the process go on.
#[tokio::test]
async fn sqlite_on_a_full_disk_refuses_writes_unsent_and_reads_go_on() {
    let sandbox = gateway::sandbox::Sandbox::start(loopback()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = ops_config(&sandbox, "");
    let client = reqwest::Client::new();
    // A first run makes the file and its tables.
    let mut first = crate::binary::Gateway::start(dir.path(), &text);
    assert_eq!(
        create_at(&first.base, "FULL-0").await.unwrap().status(),
        201
    );
    assert!(first.terminate().success());
    // The largest of the registry's files (the WAL, unless checkpointed)
    // may grow by a few writes, then no more.
    let largest = (std::fs::read_dir(dir.path().join("data")).unwrap())
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .max()
        .unwrap();
    let full =
        crate::binary::Gateway::start_with_file_size_limit(dir.path(), &text, largest + 64 * 1024);
    let mut created: u64 = 0;
    let mut refused = false;
    for n in 1..=200 {
        let answer = create_at(&full.base, &format!("FULL-{n}")).await.unwrap();
        match answer.status().as_u16() {
            201 => created += 1,
            503 => {
                let problem = assert_problem(answer, 503).await;
                assert_eq!(
                    problem["type"],
                    "urn:gateway:problem:shared-state-unavailable"
                );
                refused = true;
                break;
            }
            other => panic!("create {n}: {other}"),
        }
    }
    assert!(refused, "the disk filled within 200 creates");
    assert_eq!(
        sandbox.control.calls(CREATE),
        created + 1,
        "DNA saw the first run's create and each 201, not the refused one"
    );
    for path in ["/v1/customers?customer_id=FULL-0", "/v1/audit?limit=5"] {
        let read = client
            .get(format!("{}{path}", full.base))
            .bearer_auth("ops-key")
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200, "{path}");
    }
    let health = client.get(format!("{}/healthz", full.base)).send().await;
    assert_eq!(health.unwrap().status(), 200, "the process is alive");
}
