//! Several instances, one state: real `redis-server`, two gateways against
//! one sandbox upstream, over real HTTP.

use gateway::{
    error::ApiError,
    idempotency::{Claim, IdempotencyStore, Stored},
    sandbox::{Fault, FaultRule},
    shared::SharedRedis,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    customers::{CREATE, new_customer},
    helpers::{
        KEY, RedisServer, TestApp, assert_problem, get_json, spawn_app_with, spawn_gateway,
        wait_until,
    },
};

/// Two instances sharing `redis`: the first as a `TestApp` (with the
/// sandbox), the second's base URL.
async fn two_instances(redis: &RedisServer) -> (TestApp, String) {
    let settings = redis.settings();
    let a = spawn_app_with(|s| s.redis = Some(settings.clone())).await;
    let mut b = crate::helpers::sandbox_settings(
        &a.sandbox,
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    );
    b.server.workers = 1;
    b.redis = Some(redis.settings());
    let b = spawn_gateway(b).await;
    (a, b)
}

pub async fn create_on(app: &TestApp, base: &str, body: &Value, key: &str) -> reqwest::Response {
    app.client
        .post(format!("{base}/v1/customers"))
        .bearer_auth(KEY)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_idempotent_create_retried_on_another_instance_makes_one_customer() {
    let redis = RedisServer::start().await;
    let (a, b) = two_instances(&redis).await;
    let body = new_customer("SHARED-1");
    let customers_before = a.sandbox.dna_customer_count();
    let first = create_on(&a, &a.address, &body, "shared-key-1").await;
    assert_eq!(first.status().as_u16(), 201);
    let first_body: Value = first.json().await.unwrap();

    let retry = create_on(&a, &b, &body, "shared-key-1").await;
    assert_eq!(retry.status().as_u16(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.json::<Value>().await.unwrap(), first_body);
    assert_eq!(a.sandbox.control.calls(CREATE), 1, "one customer at DNA");
    assert_eq!(a.sandbox.dna_customer_count(), customers_before + 1);

    // Another body with the key, on either instance, is refused.
    let other = create_on(&a, &b, &new_customer("SHARED-2"), "shared-key-1").await;
    let problem = assert_problem(other, 422).await;
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(a.sandbox.control.calls(CREATE), 1);
}

#[tokio::test]
async fn concurrent_retries_on_two_instances_make_one_create() {
    let redis = RedisServer::start().await;
    let (a, b) = two_instances(&redis).await;
    a.sandbox.control.inject(FaultRule::new(
        "/dna/api/residential/client",
        Fault::Delay { ms: 1_000 },
    ));
    let body = new_customer("RACE-1");
    let on_a = create_on(&a, &a.address, &body, "race-key");
    let on_b = async {
        crate::helpers::wait_until("the first create reaches DNA", async || {
            a.sandbox.control.calls(CREATE) == 1
        })
        .await;
        create_on(&a, &b, &body, "race-key").await
    };
    let (on_a, on_b) = tokio::join!(on_a, on_b);
    assert_eq!(on_a.status().as_u16(), 201);
    assert_eq!(on_b.headers()["retry-after"], "1");
    let problem = assert_problem(on_b, 409).await;
    assert_eq!(
        problem["type"],
        "urn:gateway:problem:idempotency-key-in-use"
    );
    // Once the first has answered, the other instance replays it.
    let replay = create_on(&a, &b, &body, "race-key").await;
    assert_eq!(replay.status().as_u16(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(a.sandbox.control.calls(CREATE), 1);
}

#[tokio::test]
async fn a_key_whose_instance_died_mid_write_is_never_sent_again() {
    let redis = RedisServer::start().await;
    let (a, b) = two_instances(&redis).await;
    let body = new_customer("DIED-1");
    // What an instance that died mid-create leaves behind: the record, no
    // answer, and no lease (it ran out on Redis's clock). The fingerprint
    // is of the parsed body, fields in the order the gateway writes them.
    let canonical = r#"{"start_billing_date":"2026-12-01","customer_id":"DIED-1","email":"steve@example.com","first_name":"Steve","last_name":"Harris","address":"126 Mendoza Avenue","zipcode":"33134"}"#;
    let record = json!({
        "fingerprint": hex::encode(Sha256::digest(canonical.as_bytes())),
        "holder": "an-instance-that-died",
        "stored": null
    });
    let (key, _) = gateway::shared::conventions::Keys::new("gateway-test:")
        .idempotency("sandbox\u{0}died-key");
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SET")
        .arg(&key)
        .arg(record.to_string())
        .query_async::<()>(&mut connection)
        .await
        .unwrap();

    for base in [&a.address, &b] {
        let answer = create_on(&a, base, &body, "died-key").await;
        assert_eq!(answer.headers()["idempotent-replayed"], "true");
        let problem = assert_problem(answer, 500).await;
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("outcome at the upstream is unknown")),
            "{problem}"
        );
    }
    assert_eq!(a.sandbox.control.calls(CREATE), 0, "never resent");
}

#[tokio::test]
async fn a_frozen_redis_fails_creates_with_a_key_closed_and_the_rest_serves_then_heals() {
    let redis = RedisServer::start().await;
    // A short bound, so the frozen server is given up on quickly.
    let settings = gateway::configuration::RedisSettings::new(&redis.url(), "gateway-test:", 300);
    let app = spawn_app_with(|s| s.redis = Some(settings)).await;
    let body = new_customer("FROZEN-1");
    assert_eq!(
        create_on(&app, &app.address, &body, "before")
            .await
            .status()
            .as_u16(),
        201
    );

    redis.freeze();
    let answer = create_on(&app, &app.address, &new_customer("FROZEN-2"), "during").await;
    assert_eq!(answer.headers()["retry-after"], "1");
    let problem = assert_problem(answer, 503).await;
    assert_eq!(
        problem["type"],
        "urn:gateway:problem:shared-state-unavailable"
    );
    assert_eq!(
        app.sandbox.control.calls(CREATE),
        1,
        "failed closed: not sent"
    );
    // Reads and creates without a key go on; readyz names Redis but stays ready.
    assert_eq!(app.get_account().await.status().as_u16(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["redis"]["status"], "down");

    redis.thaw();
    crate::helpers::wait_until("redis answers again", async || {
        create_on(&app, &app.address, &new_customer("FROZEN-3"), "after")
            .await
            .status()
            .as_u16()
            == 201
    })
    .await;
    let ready = get_json(&app.url("/readyz")).await;
    assert_eq!(ready["checks"]["redis"]["status"], "up");
}

/// Adds the key `limited-key` (read scope) at `rate` per second and `burst`.
fn limited_key(s: &mut gateway::configuration::Settings, rate: u32, burst: u32) {
    s.auth
        .api_keys
        .push(gateway::configuration::ApiKeySettings {
            name: "limited".into(),
            sha256: gateway::auth::sha256_hex("limited-key"),
            scopes: [gateway::auth::Scope::Read].into(),
            rate_per_second: rate,
            burst,
        });
}

/// Two instances sharing `redis`, both with the key `limited-key` (read
/// scope) at `rate` per second and `burst`: the first as a `TestApp`, the
/// second's base URL.
async fn two_instances_with_limit(redis: &RedisServer, rate: u32, burst: u32) -> (TestApp, String) {
    let limited = |s: &mut gateway::configuration::Settings| limited_key(s, rate, burst);
    let settings = redis.settings();
    let a = spawn_app_with(|s| {
        s.redis = Some(settings.clone());
        limited(s);
    })
    .await;
    let mut b = crate::helpers::sandbox_settings(
        &a.sandbox,
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    );
    b.redis = Some(redis.settings());
    limited(&mut b);
    let b = spawn_gateway(b).await;
    (a, b)
}

/// How many rate-limit scripts `redis` has run.
async fn rate_limit_calls(redis: &RedisServer) -> u64 {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[tokio::test]
async fn a_rate_limit_holds_for_all_instances_together() {
    let redis = RedisServer::start().await;
    let (a, b) = two_instances_with_limit(&redis, 1, 5).await;
    // 20 requests as fast as they go, alternating instances: a burst of 5
    // (and perhaps one more as a second passes) for both together, where
    // each instance on its own would allow 5.
    let mut admitted = 0;
    let mut limited_answers = 0;
    for i in 0..20 {
        let base = if i % 2 == 0 { &a.address } else { &b };
        let response = a
            .client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let response = limited_balance(&a, base).await;
        match response.status().as_u16() {
            200 => {
                admitted += 1;
                // One budget for both instances: what is left only shrinks
                // (within the burst this fast loop uses).
                assert_eq!(
                    response.headers()["ratelimit-policy"],
                    "\"per-key\";q=5;w=5"
                );
            }
            429 => {
                assert!(response.headers().contains_key("retry-after"));
                let state = response.headers()["ratelimit"].to_str().unwrap();
                assert!(state.starts_with("\"per-key\";r=0;t="), "{state}");
                limited_answers += 1;
            }
            other => panic!("{other}"),
        }
    }
    assert!((5..=7).contains(&admitted), "admitted {admitted} of 20");
    assert_eq!(admitted + limited_answers, 20);
}

/// `GET /v1/billing/balance` on the instance at `base`, with `limited-key`.
async fn limited_balance(app: &TestApp, base: &str) -> reqwest::Response {
    app.client
        .get(format!("{base}/v1/billing/balance"))
        .bearer_auth("limited-key")
        .send()
        .await
        .unwrap()
}

/// `count` requests with `limited-key`, alternating between `a` and `b`:
/// how many were admitted, and how long they took.
async fn alternate(a: &TestApp, b: &str, count: u32) -> (u32, f64) {
    let started = std::time::Instant::now();
    let mut admitted = 0;
    for i in 0..count {
        let base = if i % 2 == 0 { a.address.as_str() } else { b };
        let response = limited_balance(a, base).await;
        match response.status().as_u16() {
            200 => admitted += 1,
            429 => assert!(response.headers().contains_key("retry-after")),
            other => panic!("{other}"),
        }
    }
    (admitted, started.elapsed().as_secs_f64())
}

#[tokio::test]
async fn a_busy_key_costs_a_redis_call_per_lease_not_per_request() {
    let redis = RedisServer::start().await;
    // 10,000 a second, a burst of 2,000: leases of 20 (1% of the burst),
    // and a budget these requests never exhaust.
    let (a, b) = two_instances_with_limit(&redis, 10_000, 2_000).await;
    let (admitted, _) = alternate(&a, &b, 1_200).await;
    assert_eq!(admitted, 1_200);
    let calls = rate_limit_calls(&redis).await;
    assert!(
        (1..=300).contains(&calls),
        "{calls} Redis calls for 1,200 requests"
    );
}

#[tokio::test]
async fn leased_requests_are_counted_for_all_instances_when_taken() {
    let redis = RedisServer::start().await;
    // 200 a second, a burst of 200: leases of 2.
    let (a, b) = two_instances_with_limit(&redis, 200, 200).await;
    let (admitted, elapsed) = alternate(&a, &b, 600).await;
    // Together the instances admit no more than the burst and what the
    // rate refilled meanwhile; had a lease been admitted without being
    // counted, each instance would have had its own budget.
    let most = 200.0 + 200.0 * elapsed;
    assert!(
        f64::from(admitted) <= most,
        "admitted {admitted} in {elapsed:.2} s"
    );
    assert!(admitted >= 190, "admitted {admitted}");
}

/// `count` cache hits with the rate-limited key, `callers` at a time: how
/// long each took, and whether every one was a 200.
async fn hits(app: &TestApp, callers: usize, count: usize) -> (Vec<std::time::Duration>, bool) {
    let per_caller = count / callers;
    let runs = (0..callers).map(|_| async {
        let mut took = Vec::with_capacity(per_caller);
        let mut all_ok = true;
        for _ in 0..per_caller {
            let started = std::time::Instant::now();
            let answer = app
                .client
                .get(app.url("/v1/account"))
                .bearer_auth("limited-key")
                .send()
                .await
                .unwrap();
            all_ok &= answer.status().as_u16() == 200;
            took.push(started.elapsed());
        }
        (took, all_ok)
    });
    let mut took = Vec::with_capacity(count);
    let mut all_ok = true;
    for (t, ok) in futures_util::future::join_all(runs).await {
        took.extend(t);
        all_ok &= ok;
    }
    took.sort_unstable();
    (took, all_ok)
}

/// A busy rate-limited key takes its leases in the background: with Redis
/// frozen under load, no request waits on it. The Redis timeout is long
/// (2 s), so a request that waited even once would show it.
#[tokio::test]
async fn a_busy_key_never_holds_a_request_for_a_frozen_redis() {
    let redis = RedisServer::start().await;
    let timeout = std::time::Duration::from_secs(2);
    let settings = gateway::configuration::RedisSettings::new(
        &redis.url(),
        "gateway-test:",
        u64::try_from(timeout.as_millis()).unwrap(),
    );
    let app = spawn_app_with(|s| {
        s.redis = Some(settings);
        // Leases of 100 requests, taken in the background.
        limited_key(s, 10_000, 10_000);
    })
    .await;
    let (_, ok) = hits(&app, 1, 50).await;
    assert!(ok);
    redis.freeze();
    let (frozen, ok) = hits(&app, 8, 800).await;
    redis.thaw();
    assert!(ok, "every hit answered while Redis was frozen");
    let slowest = *frozen.last().unwrap();
    assert!(
        slowest < timeout,
        "the slowest hit took {slowest:?}: it waited on Redis"
    );
    // Admitted from the instance's own budget meanwhile, and counted.
    let scrape = crate::helpers::get_text(&app.url("/metrics")).await;
    assert!(
        crate::helpers::samples(&scrape, "gateway_rate_limit_fallbacks_total")
            .iter()
            .any(|line| !line.ends_with(" 0")),
        "{scrape}"
    );
}

#[tokio::test]
async fn a_stalled_redis_is_noticed_once_and_hits_keep_their_latency() {
    let redis = RedisServer::start().await;
    let timeout = std::time::Duration::from_millis(300);
    let settings = gateway::configuration::RedisSettings::new(
        &redis.url(),
        "gateway-test:",
        u64::try_from(timeout.as_millis()).unwrap(),
    );
    let app = spawn_app_with(|s| {
        s.redis = Some(settings);
        // Leases of five requests, asked for with the request (a key this
        // small does; busier ones renew in the background, tested above).
        limited_key(s, 500, 500);
    })
    .await;
    // A sample line, whole.
    let metric = async |line: &str| {
        crate::helpers::get_text(&app.url("/metrics"))
            .await
            .lines()
            .any(|sample| sample == line || sample.starts_with(&format!("{line} ")))
    };
    // Warm: the answer cached, Redis in use.
    let (_, ok) = hits(&app, 1, 10).await;
    assert!(ok);
    let callers = 8;
    let (unfrozen, ok) = hits(&app, callers, 400).await;
    assert!(ok);

    redis.freeze();
    let (frozen, ok) = hits(&app, callers, 400).await;
    assert!(ok, "nothing failed while Redis was frozen");
    // Only the calls in flight when Redis froze waited on it (one per
    // caller), and those that started while the first failures were being
    // counted; every later one went by without it. Without the skip, every
    // lease renewal of every caller waits out the timeout.
    let scrape = crate::helpers::get_text(&app.url("/metrics")).await;
    let waited: u64 = crate::helpers::samples(&scrape, "gateway_redis_errors_total")
        .iter()
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        (1..=(callers as u64 + u64::from(gateway::shared::FAILURES_TO_SKIP))).contains(&waited),
        "{waited} Redis calls waited on the frozen Redis:\n{scrape}"
    );
    let median = |took: &[std::time::Duration]| took[took.len() / 2];
    assert!(
        median(&frozen) <= median(&unfrozen) * 20,
        "median {:?} frozen against {:?}",
        median(&frozen),
        median(&unfrozen)
    );
    assert!(metric("gateway_redis_up 0").await);
    assert!(metric(r#"gateway_redis_skipped_total{operation="rate limit"}"#).await);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200, "redis is shown, not judged");
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["redis"]["status"], "down");
    assert!(
        ready["checks"]["redis"]["detail"]
            .as_str()
            .unwrap()
            .contains("probed"),
        "{ready}"
    );

    redis.thaw();
    crate::helpers::wait_until("the probe finds Redis again", async || {
        metric("gateway_redis_up 1").await
    })
    .await;
    let ready = get_json(&app.url("/readyz")).await;
    assert_eq!(ready["checks"]["redis"]["status"], "up", "{ready}");
}

fn shared_store(redis: &RedisServer, lease: std::time::Duration) -> IdempotencyStore {
    let shared = SharedRedis::new(&redis.settings()).unwrap();
    IdempotencyStore::shared(
        std::sync::Arc::new(shared),
        &gateway::configuration::IdempotencySettings::default(),
        lease,
    )
}

fn created(id: &str) -> Stored {
    Stored::Created {
        body: format!("{{\"id\":\"{id}\"}}"),
        location: format!("/v1/customers/{id}"),
    }
}

#[tokio::test]
async fn a_lease_runs_out_on_redis_clock_and_a_late_answer_still_lands() {
    let redis = RedisServer::start().await;
    let store = shared_store(&redis, std::time::Duration::from_millis(300));
    let Ok(Claim::Fresh(first)) = store.claim("web", "slow", b"body").await else {
        panic!("a fresh key is claimed")
    };
    assert!(matches!(
        store.claim("web", "slow", b"body").await,
        Err(ApiError::Conflict(_))
    ));
    // Past the lease, with no answer: the outcome is unknown, never resent.
    wait_until("the lease runs out", async || {
        matches!(
            store.claim("web", "slow", b"body").await,
            Ok(Claim::Replay(Stored::Failed(p))) if p.status == 500
        )
    })
    .await;
    // The slow request's answer, when it comes, is still recorded: it is
    // the same claim.
    first.finish(created("late")).await;
    assert!(matches!(
        store.claim("web", "slow", b"body").await,
        Ok(Claim::Replay(Stored::Created { location, .. })) if location == "/v1/customers/late"
    ));
}

/// Deletes every idempotency key, as if their TTL had passed.
async fn expire_idempotency_keys(redis: &RedisServer) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("gateway-test:{idempotency:*")
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2, "a record and its lease: {keys:?}");
    redis::cmd("DEL")
        .arg(&keys)
        .query_async::<()>(&mut connection)
        .await
        .unwrap();
}

#[tokio::test]
async fn only_the_exact_holder_answers_or_releases_a_key() {
    let redis = RedisServer::start().await;
    let store = shared_store(&redis, std::time::Duration::from_secs(30));
    let mut stale = Vec::new();
    // Twice the key expires (its TTL) and another request claims it.
    for _ in 0..2 {
        let Ok(Claim::Fresh(claim)) = store.claim("web", "k", b"body").await else {
            panic!("a fresh or expired key is claimed")
        };
        stale.push(claim);
        expire_idempotency_keys(&redis).await;
    }
    let Ok(Claim::Fresh(current)) = store.claim("web", "k", b"body").await else {
        panic!("an expired key is claimed again")
    };
    // Earlier holders can neither release the current claim nor answer it.
    let (released, answered) = (stale.remove(0), stale.remove(0));
    released.release().await;
    answered.finish(created("stale")).await;
    assert!(matches!(
        store.claim("web", "k", b"body").await,
        Err(ApiError::Conflict(_))
    ));
    current.finish(created("current")).await;
    assert!(matches!(
        store.claim("web", "k", b"body").await,
        Ok(Claim::Replay(Stored::Created { location, .. })) if location == "/v1/customers/current"
    ));
}
