//! The customer registry and audit trail, through the gateway: every DNA
//! write leaves an intent and an outcome, customers are found by list and
//! detail, the audit trail is append-only in the database itself, and a
//! registry that cannot record refuses writes before DNA sees them.

use gateway::sandbox::{Fault, FaultRule};
use serde_json::Value;

use gateway::configuration::Settings;

use crate::customers::{CREATE, create, new_customer};
use crate::helpers::{TestApp, assert_problem, spawn_app_with};
use crate::postgres::PostgresServer;

mod faults;

/// The database a scenario runs on: every scenario runs on both.
pub enum Db {
    Sqlite,
    Postgres(PostgresServer),
}

impl Db {
    pub async fn postgres() -> Self {
        Self::Postgres(PostgresServer::start().await)
    }

    pub async fn app(&self) -> TestApp {
        self.app_with(|_| {}).await
    }

    pub async fn app_with(&self, adjust: impl FnOnce(&mut Settings)) -> TestApp {
        spawn_app_with(|s| {
            if let Self::Postgres(server) = self {
                s.registry.url = server.url().into();
            }
            adjust(s);
        })
        .await
    }
}

/// Each scenario as two tests: `on_sqlite::…` and `on_postgres::…`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Db::Sqlite).await
            })*
        }
        mod on_postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Db::postgres().await).await
            })*
        }
    };
}

on_both!(
    a_created_then_suspended_customer_is_found_with_who_did_what,
    the_request_id_of_a_write_is_its_audit_entry_s,
    a_refused_write_is_audited_as_refused_and_changes_no_customer,
    a_lost_answer_is_unknown_never_guessed,
    pages_follow_the_cursor_and_stay_stable_while_customers_are_added,
    filters_and_search_narrow_the_list,
    registry_reads_answer_304_for_a_current_etag_and_cut_with_fields,
    the_audit_trail_needs_the_audit_scope,
    the_database_itself_refuses_to_change_or_delete_an_audit_entry,
    an_event_arrives_once_the_registry_has_the_change,
    the_text_search_pages_through_many_matches_and_finds_a_rare_one,
    a_search_past_the_newest_customers_asks_the_index,
    a_dna_id_given_again_goes_to_the_newer_customer,
);

pub async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.authed(reqwest::Method::GET, path).send().await.unwrap()
}

pub async fn get_json(app: &TestApp, path: &str) -> Value {
    let response = get(app, path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

pub async fn created_id(app: &TestApp, customer_id: &str) -> i64 {
    let response = create(app, &new_customer(customer_id), None).await;
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
}

pub async fn post(app: &TestApp, path: &str) -> reqwest::Response {
    app.authed(reqwest::Method::POST, path)
        .send()
        .await
        .unwrap()
}

async fn a_created_then_suspended_customer_is_found_with_who_did_what(db: Db) {
    let app = db.app().await;
    let id = created_id(&app, "REG-1").await;
    let suspended = post(&app, &format!("/v1/customers/{id}/suspend")).await;
    assert_eq!(suspended.status(), 200);

    let page = get_json(&app, "/v1/customers").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    let customer = &items[0];
    assert_eq!(customer["id"], id);
    assert_eq!(customer["customer_id"], "REG-1");
    assert_eq!(customer["status"], "suspended");
    assert_eq!(customer["email"], "steve@example.com");
    assert_eq!(customer["created_by"], "sandbox");
    assert_eq!(customer["updated_by"], "sandbox");
    assert_eq!(customer["last_operation"]["operation"], "customer.suspend");
    assert_eq!(customer["last_operation"]["outcome"], "succeeded");
    assert!(page["next_cursor"].is_null());

    let detail = get_json(&app, &format!("/v1/customers/{id}")).await;
    assert_eq!(detail["status"], "suspended");
    let history = detail["history"].as_array().unwrap();
    let operations: Vec<&str> = history
        .iter()
        .map(|e| e["operation"].as_str().unwrap())
        .collect();
    assert_eq!(operations, ["customer.suspend", "customer.create"]);
    for entry in history {
        assert_eq!(entry["outcome"], "succeeded", "{entry}");
        assert_eq!(entry["principal"], "sandbox");
        assert!(entry["outcome_at"].is_string());
        assert!(!entry["request_id"].as_str().unwrap().is_empty());
    }
    assert_eq!(history[1]["request"]["customer_id"], "REG-1");
    assert_eq!(history[1]["answer"]["id"], id);

    let audit = get_json(&app, "/v1/audit?operation=customer.suspend").await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit["items"][0]["dna_id"], id);

    let missing = get(&app, "/v1/customers/999999").await;
    assert_problem(missing, 404).await;
}

async fn the_request_id_of_a_write_is_its_audit_entry_s(db: Db) {
    let app = db.app().await;
    let response = app
        .authed(reqwest::Method::POST, "/v1/customers")
        .header("x-request-id", "create-reg-2")
        .header("Idempotency-Key", "key-reg-2")
        .json(&new_customer("REG-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let audit = get_json(&app, "/v1/audit").await;
    let entry = &audit["items"][0];
    assert_eq!(entry["request_id"], "create-reg-2");
    assert_eq!(entry["idempotency_key"], "key-reg-2");
    assert_eq!(entry["customer_id"], "REG-2");
    // A replay of the key sends nothing and records nothing new.
    let replay = app
        .authed(reqwest::Method::POST, "/v1/customers")
        .header("Idempotency-Key", "key-reg-2")
        .json(&new_customer("REG-2"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let audit = get_json(&app, "/v1/audit").await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
}

async fn a_refused_write_is_audited_as_refused_and_changes_no_customer(db: Db) {
    let app = db.app().await;
    created_id(&app, "REG-DUP").await;
    let duplicate = create(&app, &new_customer("REG-DUP"), None).await;
    assert_problem(duplicate, 409).await;
    let audit = get_json(&app, "/v1/audit?outcome=refused").await;
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{audit}");
    assert_eq!(items[0]["status"], 409);
    assert_eq!(items[0]["problem_type"], "urn:gateway:problem:duplicate");
    let customers = get_json(&app, "/v1/customers").await;
    assert_eq!(customers["items"].as_array().unwrap().len(), 1);
    assert_eq!(customers["items"][0]["status"], "pending");
}

async fn a_lost_answer_is_unknown_never_guessed(db: Db) {
    let app = db.app().await;
    app.sandbox.control.inject(FaultRule::new(
        "/dna/api/residential/client",
        Fault::Status {
            status: 500,
            body: None,
            retry_after: None,
        },
    ));
    assert_problem(create(&app, &new_customer("REG-LOST"), None).await, 502).await;
    assert_eq!(app.sandbox.control.calls(CREATE), 1);
    let page = get_json(&app, "/v1/customers?status=unknown").await;
    let customer = &page["items"][0];
    assert_eq!(customer["customer_id"], "REG-LOST", "{page}");
    assert!(
        customer["id"].is_null(),
        "DNA's id is not known: {customer}"
    );
    let audit = get_json(&app, "/v1/audit?customer=REG-LOST").await;
    assert_eq!(audit["items"][0]["outcome"], "unknown", "{audit}");
    let unknown = get_json(&app, "/v1/audit?outcome=unknown").await;
    assert_eq!(unknown["items"].as_array().unwrap().len(), 1, "{unknown}");
    let succeeded = get_json(&app, "/v1/audit?outcome=succeeded").await;
    assert!(
        succeeded["items"].as_array().unwrap().is_empty(),
        "{succeeded}"
    );
    assert_eq!(audit["items"][0]["status"], 502);
}

#[tokio::test]
async fn a_registry_that_cannot_record_refuses_the_write_before_dna_sees_it() {
    // A PostgreSQL that refuses every connection: nothing can be recorded.
    let app = spawn_app_with(|s| {
        s.registry.url = "postgres://gateway@127.0.0.1:1/registry".to_owned().into();
        s.registry.timeout_ms = 2_000;
    })
    .await;
    let response = create(&app, &new_customer("REG-DOWN"), Some("key-down")).await;
    assert!(response.headers().contains_key("retry-after"));
    let problem = assert_problem(response, 503).await;
    assert_eq!(
        problem["type"],
        "urn:gateway:problem:shared-state-unavailable"
    );
    let before = app.sandbox.dna_customer_status(6518);
    let activate = post(&app, "/v1/customers/6518/activate").await;
    assert_problem(activate, 503).await;
    assert_eq!(app.sandbox.control.calls(CREATE), 0, "nothing was sent");
    let change = "POST /dna/api/residential/client/{id}/{action}";
    assert_eq!(app.sandbox.control.calls(change), 0, "nothing was sent");
    assert_eq!(app.sandbox.dna_customer_status(6518), before);
    let list = get(&app, "/v1/customers").await;
    assert_problem(list, 503).await;
}

async fn pages_follow_the_cursor_and_stay_stable_while_customers_are_added(db: Db) {
    let app = db.app().await;
    for n in 1..=5 {
        created_id(&app, &format!("PAGE-{n}")).await;
    }
    let first = get_json(&app, "/v1/customers?limit=2").await;
    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["customer_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&first), ["PAGE-5", "PAGE-4"]);
    created_id(&app, "PAGE-6").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = get_json(&app, &format!("/v1/customers?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&second), ["PAGE-3", "PAGE-2"], "no repeat, no skip");
    let cursor = second["next_cursor"].as_str().unwrap();
    let third = get_json(&app, &format!("/v1/customers?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&third), ["PAGE-1"]);
    assert!(third["next_cursor"].is_null());

    let bad = get(&app, "/v1/customers?cursor=not-a-cursor").await;
    let problem = assert_problem(bad, 400).await;
    assert_eq!(problem["errors"][0]["field"], "cursor");
    let bad = get(&app, "/v1/customers?status=gone&limit=0").await;
    let problem = assert_problem(bad, 400).await;
    assert_eq!(problem["errors"].as_array().unwrap().len(), 2, "{problem}");
}

async fn filters_and_search_narrow_the_list(db: Db) {
    let app = db.app().await;
    let mut body = new_customer("FIND-1");
    body["first_name"] = "Ana".into();
    body["email"] = "ana.lopez@example.com".into();
    create(&app, &body, None).await;
    created_id(&app, "FIND-2").await;
    let found = get_json(&app, "/v1/customers?q=LOPEZ").await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["items"][0]["customer_id"], "FIND-1");
    let found = get_json(&app, "/v1/customers?email=Ana.Lopez@example.com").await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let found = get_json(&app, "/v1/customers?q=%25").await;
    assert_eq!(found["items"].as_array().unwrap().len(), 0, "% is literal");
    let found = get_json(&app, "/v1/customers?created_by=sandbox&customer_id=FIND-2").await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    // Words with no customer behind the filters (a short one has no
    // trigram): an empty page, not an error (Schemathesis found a 503).
    for q in ["0", "zzz", "0%20zzz"] {
        let path = format!("/v1/customers?q={q}&limit=1&customer_id=NOBODY&status=active");
        let found = get_json(&app, &path).await;
        assert_eq!(found["items"].as_array().unwrap().len(), 0, "{path}");
    }
}

/// A dashboard that refetches on each `customer.*` event finds the
/// change it announces: the event is published after the registry has it.
async fn an_event_arrives_once_the_registry_has_the_change(db: Db) {
    let app = db.app().await;
    let mut stream =
        crate::events::Stream::open_at(&app.url("/v1/events?types=customer.*"), &[]).await;
    let id = created_id(&app, "LIVE-1").await;
    let event = stream.next_event().await;
    assert_eq!(event.event.as_deref(), Some("customer.created"));
    let listed = get_json(&app, "/v1/customers?customer_id=LIVE-1").await;
    assert_eq!(listed["items"][0]["id"], id, "{listed}");
    assert_eq!(listed["items"][0]["status"], "pending");

    for (action, event_type, status) in [
        ("activate", "customer.activated", "active"),
        ("suspend", "customer.suspended", "suspended"),
    ] {
        assert_eq!(
            post(&app, &format!("/v1/customers/{id}/{action}"))
                .await
                .status(),
            200
        );
        let event = stream.next_event().await;
        assert_eq!(event.event.as_deref(), Some(event_type));
        let customer = get_json(&app, &format!("/v1/customers/{id}")).await;
        assert_eq!(customer["status"], status, "{customer}");
        assert_eq!(customer["last_operation"]["outcome"], "succeeded");
    }
}

/// DNA's ids given again (the sandbox restarted while the registry's data
/// stayed: here a second gateway with a new sandbox on the same registry):
/// the newer create is recorded and owns the id; the older customer is
/// still listed, without it. Once, this outcome was retried forever.
async fn a_dna_id_given_again_goes_to_the_newer_customer(db: Db) {
    let first = db.app().await;
    let url = match &db {
        Db::Sqlite => crate::helpers::sqlite_registry(first.data.path()),
        Db::Postgres(server) => server.url().into(),
    };
    let id = created_id(&first, "OLD-1").await;
    let second = spawn_app_with(|s| s.registry.url = url).await;
    assert_eq!(
        created_id(&second, "NEW-1").await,
        id,
        "the new sandbox gives the same id"
    );
    let customer = get_json(&first, &format!("/v1/customers/{id}")).await;
    assert_eq!(customer["customer_id"], "NEW-1", "{customer}");
    let old = get_json(&first, "/v1/customers?customer_id=OLD-1").await;
    assert!(old["items"][0]["id"].is_null(), "{old}");
    let audit = get_json(&second, "/v1/audit?customer=NEW-1").await;
    assert_eq!(audit["items"][0]["outcome"], "succeeded", "{audit}");
    let scrape = crate::helpers::get_text(&second.url("/metrics")).await;
    assert!(
        crate::helpers::samples(&scrape, "gateway_registry_outcome_retries_total").is_empty(),
        "recorded at once: {scrape}"
    );
}

/// More matches than a page (the newest are read and matched) and a word
/// one customer has (looked up in the trigram index), through cursors.
async fn the_text_search_pages_through_many_matches_and_finds_a_rare_one(db: Db) {
    let app = db.app().await;
    for n in 1..=5 {
        let mut body = new_customer(&format!("MANY-{n}"));
        body["last_name"] = format!("Smithson{n}").into();
        assert_eq!(create(&app, &body, None).await.status(), 201);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/customers?q=smithson&limit=2".to_owned();
    loop {
        let page = get_json(&app, &path).await;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["customer_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/customers?q=smithson&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["MANY-5", "MANY-4", "MANY-3", "MANY-2", "MANY-1"]);
    let rare = get_json(&app, "/v1/customers?q=SON3%20smith").await;
    let found: Vec<&str> = rare["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["MANY-3"], "{rare}");
    for q in ["%22", "%22%20OR%20x", "NEAR(a%20b)", "s*", "%F0%9F%98%80"] {
        let none = get_json(&app, &format!("/v1/customers?q={q}")).await;
        assert_eq!(none["items"].as_array().unwrap().len(), 0, "q={q}: {none}");
    }
}

async fn registry_reads_answer_304_for_a_current_etag_and_cut_with_fields(db: Db) {
    let app = db.app().await;
    created_id(&app, "TAG-1").await;
    let first = get(&app, "/v1/customers").await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(first.headers()["cache-control"], "private, no-cache");
    let again = app
        .authed(reqwest::Method::GET, "/v1/customers")
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    created_id(&app, "TAG-2").await;
    let changed = app
        .authed(reqwest::Method::GET, "/v1/customers")
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200, "a new customer changes the tag");
    let cut = get_json(&app, "/v1/customers?fields=customer_id,status").await;
    assert_eq!(cut["items"][0].as_object().unwrap().len(), 2, "{cut}");
}

async fn the_audit_trail_needs_the_audit_scope(db: Db) {
    let app = db
        .app_with(|s| {
            s.auth
                .api_keys
                .push(gateway::configuration::ApiKeySettings {
                    name: "reader".into(),
                    sha256: gateway::auth::sha256_hex("reader-key"),
                    scopes: [gateway::configuration::Scope::Read].into(),
                    rate_per_second: 0,
                    burst: 0,
                });
        })
        .await;
    let refused = app
        .client
        .get(app.url("/v1/audit"))
        .bearer_auth("reader-key")
        .send()
        .await
        .unwrap();
    assert_problem(refused, 403).await;
    let customers = app
        .client
        .get(app.url("/v1/customers"))
        .bearer_auth("reader-key")
        .send()
        .await
        .unwrap();
    assert_eq!(customers.status(), 200);
}

/// A connection of its own to `app`'s registry, as an operator's tool
/// would open one.
async fn registry_connection(db: &Db, app: &TestApp) -> sqlx::AnyConnection {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let url = match db {
        Db::Sqlite => format!(
            "sqlite://{}",
            app.data.path().join("registry.sqlite3").display()
        ),
        Db::Postgres(server) => server.url(),
    };
    sqlx::AnyConnection::connect(&url).await.unwrap()
}

/// The text search reads the newest 2,000 customers the filters pass,
/// then asks the trigram index: with 6,500 customers (written straight
/// into the registry) a name three of them have, two of them older than
/// that window, is found through the index, page by page, with filters,
/// short words, punctuation and letters outside ASCII; the same SQL
/// seeds both backends.
async fn a_search_past_the_newest_customers_asks_the_index(db: Db) {
    let app = db.app().await;
    assert_eq!(get(&app, "/v1/customers").await.status(), 200, "migrated");
    let mut connection = registry_connection(&db, &app).await;
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6500) \
         INSERT INTO customers (dna_id, customer_id, email, first_name, last_name, status, \
           search, created_at_ms, created_by, first_seen_ms, updated_at_ms, updated_by, \
           last_seq, last_operation, last_outcome) \
         SELECT 1000000 + i, 'SEED-' || i, 'user' || i || '@example.com', 'First' || i, \
           CASE WHEN i IN (10, 1000, 6000) THEN 'Zebrafish' WHEN i = 20 THEN 'Ångström' \
             ELSE 'Last' || i END, \
           CASE i % 3 WHEN 0 THEN 'active' WHEN 1 THEN 'pending' ELSE 'suspended' END, \
           'first' || i || ' ' || \
             CASE WHEN i IN (10, 1000, 6000) THEN 'zebrafish' WHEN i = 20 THEN 'ångström' \
             ELSE 'last' || i END || ' user' || i || '@example.com', \
           1700000000000 + i, 'seed', 1700000000000 + i, 1700000000000 + i, 'seed', i, \
           'customer.create', 'succeeded' \
         FROM n",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    let ids = |page: &Value| -> Vec<String> {
        let items = page["items"].as_array().unwrap();
        (items.iter())
            .map(|c| c["customer_id"].as_str().unwrap().to_owned())
            .collect()
    };
    // One at a time: the first page from the newest 2,000 and the index,
    // the second from the index below a cursor, the last from the 999
    // customers below the second (all read in the first step).
    let mut seen = Vec::new();
    let mut path = "/v1/customers?q=zebra&limit=1".to_owned();
    loop {
        let page = get_json(&app, &path).await;
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/customers?q=zebra&limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["SEED-6000", "SEED-1000", "SEED-10"]);
    for (query, want) in [
        ("q=zebra", &["SEED-6000", "SEED-1000", "SEED-10"][..]),
        // One match in the window: reading on below it fills a page of
        // two, and for three it reaches the last customer first, so the
        // index is asked.
        ("q=zebra&limit=2", &["SEED-6000", "SEED-1000"][..]),
        (
            "q=zebra&limit=3",
            &["SEED-6000", "SEED-1000", "SEED-10"][..],
        ),
        ("q=ZEBRA%20r1", &["SEED-1000", "SEED-10"][..]),
        ("q=zebra&status=pending", &["SEED-1000", "SEED-10"][..]),
        ("q=zebrafish%20first1000", &["SEED-1000"][..]),
        ("q=USER10%40", &["SEED-10"][..]),
        ("q=zebrafish%20user1000%40example", &["SEED-1000"][..]),
        // Only a piece outside ASCII: PostgreSQL's index is asked for the
        // word, FTS5's for the piece.
        ("q=%C3%85ng", &["SEED-20"][..]),
        ("q=%C3%A5ngstr%C3%B6m%20first2", &["SEED-20"][..]),
        ("q=zebra%20nobody", &[][..]),
        // Its rare pieces are a zebra's, the word is nobody's.
        ("q=zebrafirst", &[][..]),
    ] {
        let page = get_json(&app, &format!("/v1/customers?{query}")).await;
        assert_eq!(ids(&page), want, "{query}");
    }
}

async fn the_database_itself_refuses_to_change_or_delete_an_audit_entry(db: Db) {
    let app = db.app().await;
    created_id(&app, "KEEP-1").await;
    let mut connection = registry_connection(&db, &app).await;
    let mut statements = vec![
        "UPDATE audit_entries SET principal = 'someone-else'",
        "DELETE FROM audit_outcomes",
        "DELETE FROM audit_entries",
        "UPDATE audit_outcomes SET outcome = 'refused'",
        "UPDATE registry_settings SET audit_retention_days = 1",
    ];
    if matches!(db, Db::Postgres(_)) {
        statements.push("TRUNCATE audit_outcomes, audit_entries");
    }
    for statement in statements {
        if statement.starts_with("UPDATE registry_settings") {
            // Even a retention of one day keeps an entry made today.
            sqlx::query(statement)
                .execute(&mut connection)
                .await
                .unwrap();
            continue;
        }
        let refused = sqlx::query(statement).execute(&mut connection).await;
        let error = refused.expect_err(statement).to_string();
        assert!(
            error.contains("append-only") || error.contains("retention"),
            "{statement}: {error}"
        );
    }
    let audit = get_json(&app, "/v1/audit").await;
    assert_eq!(audit["items"][0]["principal"], "sandbox");
}

#[tokio::test]
async fn the_audit_trail_exports_as_json_lines_and_migrate_is_idempotent() {
    // The binary's default registry is data/registry.sqlite3 under its
    // working directory: the gateway under test writes exactly there.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    let app = spawn_app_with(|s| s.registry.url = crate::helpers::sqlite_registry(&file)).await;
    let id = created_id(&app, "EXPORT-1").await;
    post(&app, &format!("/v1/customers/{id}/activate")).await;
    let gateway = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
            .current_dir(dir.path())
            .env_remove("GATEWAY_CONFIG")
            .args(args)
            .output()
            .unwrap()
    };
    let migrated = gateway(&["migrate"]);
    assert!(migrated.status.success(), "{migrated:?}");
    let exported = gateway(&[
        "audit",
        "export",
        "--since",
        "2000-01-01T00:00:00Z",
        "--until",
        "2100-01-01T00:00:00Z",
    ]);
    assert!(exported.status.success(), "{exported:?}");
    let lines: Vec<Value> = String::from_utf8(exported.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let operations: Vec<&str> = lines
        .iter()
        .map(|l| l["operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        operations,
        ["customer.create", "customer.activate"],
        "oldest first"
    );
    assert_eq!(lines[0]["outcome"], "succeeded");
    let none = gateway(&[
        "audit",
        "export",
        "--since",
        "2000-01-01T00:00:00Z",
        "--until",
        "2000-01-02T00:00:00Z",
    ]);
    assert!(none.status.success() && none.stdout.is_empty());
}
