//! The Slitz cache across instances: a real `redis-server` as the second
//! level behind each instance's own, several gateways against one sandbox,
//! watched through `X-Cache`, ETags and the simulator's call counters.

use gateway::{
    configuration::RedisSettings,
    sandbox::{Fault, FaultRule},
};
use serde_json::{Value, json};

use crate::{
    customers::new_customer,
    helpers::{
        KEY, RedisServer, TestApp, assert_problem, get_json, get_text, spawn_app_with,
        spawn_gateway, wait_until,
    },
    shared_state::create_on,
};

const INVOICES: &str = "GET /slitz/api/invoice";
const UPDATE: &str = "POST /slitz/api/details";

/// `n` instances sharing `redis`: the first as a `TestApp` (with the
/// sandbox), then every instance's base URL (the first's included), once
/// each hears invalidations.
async fn instances(
    redis: RedisSettings,
    n: usize,
    adjust: impl Fn(&mut gateway::configuration::Settings),
) -> (TestApp, Vec<String>) {
    let first = spawn_app_with(|s| {
        s.redis = Some(redis.clone());
        adjust(s);
    })
    .await;
    let mut bases = vec![first.address.clone()];
    for _ in 1..n {
        let mut settings = crate::helpers::sandbox_settings(
            &first.sandbox,
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        );
        settings.server.workers = 1;
        settings.redis = Some(redis.clone());
        adjust(&mut settings);
        bases.push(spawn_gateway(settings).await);
    }
    for base in &bases {
        hears_invalidations(base, true).await;
    }
    (first, bases)
}

/// Waits until `/readyz` of `base` says it does (or does not) hear
/// invalidations from the other instances.
async fn hears_invalidations(base: &str, hears: bool) {
    let want = if hears { "up" } else { "down" };
    wait_until(
        &format!("{base} cache_invalidations is {want}"),
        async || {
            get_json(&format!("{base}/readyz")).await["checks"]["cache_invalidations"]["status"]
                == want
        },
    )
    .await;
}

async fn get(app: &TestApp, base: &str, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{base}{path}"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
}

async fn patch(app: &TestApp, base: &str, body: Value) -> reqwest::Response {
    app.client
        .patch(format!("{base}/v1/account"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers()[name].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_patch_through_one_instance_is_seen_through_the_other_at_once() {
    let redis = RedisServer::start().await;
    let (app, bases) = instances(redis.settings(), 2, |_| {}).await;
    let (a, b) = (&bases[0], &bases[1]);
    // B holds the account and an invoice that embeds it in its own memory.
    for _ in 0..2 {
        assert_eq!(get(&app, b, "/v1/account").await.status().as_u16(), 200);
        get(&app, b, "/v1/billing/invoices/310002").await;
    }
    let warm = get(&app, b, "/v1/account").await;
    assert_eq!(header(&warm, "x-cache"), "HIT");

    // Every change through A is what B answers right after A answered.
    for (round, city) in ["Lund", "Malmö", "Kiruna", "Visby", "Umeå"]
        .into_iter()
        .enumerate()
    {
        let answer = patch(&app, a, json!({"city": city})).await;
        assert_eq!(answer.status().as_u16(), 200, "round {round}");
        let seen: Value = get(&app, b, "/v1/account").await.json().await.unwrap();
        assert_eq!(seen["city"], city, "round {round}");
        let invoice: Value = get(&app, b, "/v1/billing/invoices/310002")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(invoice["client"]["city"], city, "round {round}");
    }
    assert_eq!(app.sandbox.control.calls(UPDATE), 5);

    // Both instances answer the same bytes under the same ETag.
    let through_a = get(&app, a, "/v1/account").await;
    let through_b = get(&app, b, "/v1/account").await;
    assert_eq!(header(&through_a, "etag"), header(&through_b, "etag"));
    let metrics = get_text(&format!("{a}/metrics")).await;
    assert!(
        metrics.contains("gateway_cache_invalidations_total{outcome=\"confirmed\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains("outcome=\"unconfirmed\""), "{metrics}");
    assert!(!metrics.contains("outcome=\"failed\""), "{metrics}");
}

#[tokio::test]
async fn a_hundred_cold_reads_spread_over_three_instances_make_one_slitz_call() {
    let redis = RedisServer::start().await;
    let (app, bases) = instances(redis.settings(), 3, |_| {}).await;
    // Slow Slitz down so the hundred requests really overlap.
    app.sandbox
        .control
        .set_latency(std::time::Duration::from_millis(200));
    let requests = (0..100).map(|i| get(&app, &bases[i % 3], "/v1/billing/invoices"));
    let responses = futures_util::future::join_all(requests).await;
    let mut answers = std::collections::HashSet::new();
    for response in responses {
        assert_eq!(response.status().as_u16(), 200);
        let etag = header(&response, "etag");
        answers.insert((etag, response.text().await.unwrap()));
    }
    assert_eq!(answers.len(), 1, "everyone got the same answer and ETag");
    assert_eq!(app.sandbox.control.calls(INVOICES), 1);
}

#[tokio::test]
async fn a_new_instance_serves_warm_from_redis() {
    let redis = RedisServer::start().await;
    let (app, bases) = instances(redis.settings(), 1, |_| {}).await;
    let first = get(&app, &bases[0], "/v1/billing/invoices").await;
    assert_eq!(header(&first, "x-cache"), "MISS");
    let etag = header(&first, "etag");

    // A new instance (as the HPA starts one) answers from Redis at once.
    let mut settings = crate::helpers::sandbox_settings(
        &app.sandbox,
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    );
    settings.redis = Some(redis.settings());
    let fresh = spawn_gateway(settings).await;
    hears_invalidations(&fresh, true).await;
    let warm = get(&app, &fresh, "/v1/billing/invoices").await;
    assert_eq!(warm.status().as_u16(), 200);
    assert_eq!(header(&warm, "x-cache"), "HIT");
    assert_eq!(header(&warm, "etag"), etag);
    let max_age: u64 = header(&warm, "cache-control")
        .strip_prefix("private, max-age=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(max_age <= 60, "the time left, not a new TTL: {max_age}");
    assert_eq!(app.sandbox.control.calls(INVOICES), 1);
}

#[tokio::test]
async fn an_expired_answer_in_redis_is_served_stale_when_slitz_fails() {
    let redis = RedisServer::start().await;
    let (app, bases) = instances(redis.settings(), 2, |s| {
        s.cache.routes.insert(gateway::cache::Route::Invoices, 0);
        s.cache.stale_seconds = 600;
    })
    .await;
    let first = get(&app, &bases[0], "/v1/billing/invoices").await;
    assert_eq!(header(&first, "x-cache"), "MISS");
    let body = first.text().await.unwrap();
    app.sandbox.control.inject(FaultRule::new(
        "/slitz/api/invoice",
        Fault::Status {
            status: 500,
            body: None,
            retry_after: None,
        },
    ));
    // B never had it: its stale copy comes from Redis.
    let stale = get(&app, &bases[1], "/v1/billing/invoices").await;
    assert_eq!(stale.status().as_u16(), 200);
    assert_eq!(header(&stale, "x-cache"), "STALE");
    assert_eq!(header(&stale, "cache-control"), "private, max-age=0");
    assert_eq!(stale.text().await.unwrap(), body);
}

#[tokio::test]
async fn killing_redis_mid_run_falls_back_without_a_500_and_restarting_it_heals() {
    let mut redis = RedisServer::start().await;
    let settings = RedisSettings::new(&redis.url(), "gateway-test:", 300);
    let (app, bases) = instances(settings, 2, |_| {}).await;
    let (a, b) = (bases[0].clone(), bases[1].clone());

    // Steady reads over both instances for the whole test.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (client, bases, stop) = (app.client.clone(), bases.clone(), stop.clone());
        tokio::spawn(async move {
            let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
            let paths = ["/v1/account", "/v1/billing/invoices", "/v1/billing/balance"];
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let url = format!("{}{}", bases[i % 2], paths[i % 3]);
                let status = client
                    .get(url)
                    .bearer_auth(KEY)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                *statuses.entry(status).or_default() += 1;
                i += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            statuses
        })
    };
    wait_until("some reads went through", async || {
        app.sandbox.control.calls("GET /slitz/api/details") > 0
    })
    .await;

    redis.kill();
    hears_invalidations(&a, false).await;
    hears_invalidations(&b, false).await;
    // A change no other instance could hear about is not made.
    let refused = patch(&app, &a, json!({"city": "Lund"})).await;
    assert_eq!(header(&refused, "retry-after"), "1");
    let problem = assert_problem(refused, 503).await;
    assert_eq!(
        problem["type"],
        "urn:gateway:problem:shared-state-unavailable"
    );
    assert_eq!(app.sandbox.control.calls(UPDATE), 0, "nothing was sent");
    // A create with a key fails closed; reads keep being answered.
    let create = create_on(&app, &b, &new_customer("KILLED-1"), "while-redis-is-dead").await;
    assert_problem(create, 503).await;
    let reads_before = app.sandbox.control.calls("GET /slitz/api/details");
    wait_until("reads go on without Redis", async || {
        app.sandbox.control.calls("GET /slitz/api/details") > reads_before
    })
    .await;
    let metrics = get_text(&format!("{a}/metrics")).await;
    assert!(
        metrics.contains("gateway_cache_fallbacks_total{reason=\"unavailable\"}"),
        "{metrics}"
    );

    redis.restart().await;
    hears_invalidations(&a, true).await;
    hears_invalidations(&b, true).await;
    let answer = patch(&app, &a, json!({"city": "Lund"})).await;
    assert_eq!(answer.status().as_u16(), 200);
    let seen: Value = get(&app, &b, "/v1/account").await.json().await.unwrap();
    assert_eq!(seen["city"], "Lund");
    let create = create_on(&app, &b, &new_customer("KILLED-2"), "after-redis-is-back").await;
    assert_eq!(create.status().as_u16(), 201);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let statuses = load.await.unwrap();
    println!("reads during the run, by status: {statuses:?}");
    assert!(
        statuses.keys().all(|status| *status == 200),
        "every read answered 200: {statuses:?}"
    );
    assert!(statuses.values().sum::<u32>() > 10, "{statuses:?}");
}

/// A PATCH to Lund whose invalidation failed after Slitz took it: it is
/// reported as made, with the new value, this instance does not serve its
/// old copy, and the failure is counted.
async fn made_though_not_told(app: &TestApp, base: &str, answer: reqwest::Response) {
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.json::<Value>().await.unwrap()["city"], "Lund");
    let after: Value = get(app, base, "/v1/account").await.json().await.unwrap();
    assert_eq!(after["city"], "Lund");
    let metrics = get_text(&format!("{base}/metrics")).await;
    assert!(
        metrics.contains("gateway_cache_invalidations_total{outcome=\"failed\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn redis_dying_during_a_patch_does_not_hide_the_change_that_was_made() {
    let redis = RedisServer::start().await;
    let settings = RedisSettings::new(&redis.url(), "gateway-test:", 300);
    let (app, bases) = instances(settings, 1, |_| {}).await;
    let a = bases[0].clone();
    let before: Value = get(&app, &a, "/v1/account").await.json().await.unwrap();
    assert_eq!(before["city"], "Uppsala");
    // Slitz takes its time over the write; Redis freezes meanwhile, after
    // the PATCH checked it, before the invalidation goes out.
    app.sandbox.control.inject(FaultRule {
        method: Some("POST".into()),
        ..FaultRule::new("/slitz/api/details", Fault::Delay { ms: 1_000 })
    });
    let patching = {
        let (app_client, a) = (app.client.clone(), a.clone());
        tokio::spawn(async move {
            app_client
                .patch(format!("{a}/v1/account"))
                .bearer_auth(KEY)
                .json(&json!({"city": "Lund"}))
                .send()
                .await
                .unwrap()
        })
    };
    wait_until("the change reached Slitz", async || {
        app.sandbox.control.calls(UPDATE) == 1
    })
    .await;
    redis.freeze();
    let answer = patching.await.unwrap();
    made_though_not_told(&app, &a, answer).await;
    redis.thaw();
}

#[tokio::test]
async fn a_write_whose_invalidation_redis_refuses_still_forgets_this_instances_copy() {
    let redis = RedisServer::start().await;
    let (app, bases) = instances(redis.settings(), 1, |_| {}).await;
    let a = bases[0].clone();
    let before = get(&app, &a, "/v1/account").await;
    assert_eq!(header(&before, "x-cache"), "MISS");
    assert_eq!(
        header(&get(&app, &a, "/v1/account").await, "x-cache"),
        "HIT"
    );
    // Redis answers, but refuses the invalidation: the generations' key
    // has been overwritten with a value of the wrong type.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SET")
        .arg(gateway::shared::conventions::Keys::new("gateway-test:").cache_generations())
        .arg("not a hash")
        .query_async::<()>(&mut connection)
        .await
        .unwrap();
    let answer = patch(&app, &a, json!({"city": "Lund"})).await;
    made_though_not_told(&app, &a, answer).await;
}
