//! People logging in as deployments meet it: on two instances sharing
//! Redis, in sandbox mode, from a real browser, with claims only UserInfo
//! gives, with a rate per service, and named in the access line.

use super::*;

#[tokio::test]
async fn two_instances_on_redis_share_logins_sessions_logouts_and_one_renewal() {
    let redis = crate::helpers::RedisServer::start().await;
    let (listener_a, base_a) = loopback_listener();
    let (listener_b, _) = loopback_listener();
    // Renewals three seconds in; the provider knows instance A's URLs (as
    // it would know the proxy's).
    let provider = std::sync::Arc::new(Provider::for_login(&base_a, &[("ACCESS_TOKEN_TTL", "4")]));
    let a = LoginGateway::on(
        listener_a,
        &base_a,
        std::sync::Arc::clone(&provider),
        Some(redis.settings()),
    );
    let b = LoginGateway::on(
        listener_b,
        &base_a,
        std::sync::Arc::clone(&provider),
        Some(redis.settings()),
    );

    // A login begun on A finishes on B; the session works on both.
    let mut at_provider = Vec::new();
    let callback = a
        .through_provider_keeping("alice", "/app/customers?page=2", &mut at_provider)
        .await;
    let alice = b.finish_login(&callback).await;
    for gateway in [&a, &b] {
        let answer = gateway.get("/v1/account", &alice).await;
        assert_eq!(answer.status(), 200, "{}", gateway.base);
    }

    // Once due, parallel requests on both instances renew it once.
    let session: Value = a.get("/auth/session", &alice).await.json().await.unwrap();
    let refresh_at = chrono::DateTime::parse_from_rfc3339(session["refresh_at"].as_str().unwrap())
        .unwrap()
        .timestamp();
    let wait = refresh_at + 1 - chrono::Utc::now().timestamp();
    tokio::time::sleep(std::time::Duration::from_secs(
        u64::try_from(wait.max(0)).unwrap(),
    ))
    .await;
    let before = provider.renewals().await;
    let calls = (0..20).map(|i| {
        let gateway = if i % 2 == 0 { &a } else { &b };
        gateway
            .request(reqwest::Method::GET, "/v1/account", &alice)
            .send()
    });
    for answer in futures_util::future::join_all(calls).await {
        assert_eq!(answer.unwrap().status(), 200);
    }
    eventually("the renewal", || async {
        let now: Value = b.get("/auth/session", &alice).await.json().await.unwrap();
        now["refresh_at"] != session["refresh_at"]
    })
    .await;
    assert_eq!(
        provider.renewals().await - before,
        1,
        "one renewal for the cluster"
    );

    // Logging out on B ends it on A.
    let answer = b
        .request(reqwest::Method::POST, "/auth/logout", &alice)
        .header("x-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_problem(a.get("/v1/account", &alice).await, 401).await;

    // The provider's back-channel logout reaches A and ends the session on B.
    let mut at_provider = Vec::new();
    let bob = a.log_in_keeping("bob", &mut at_provider).await;
    a.log_out_at_provider(&at_provider).await;
    let problem = assert_problem(b.get("/v1/account", &bob).await, 401).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("identity provider logged this person out"),
        "{problem}"
    );
}

/// Logs `who` in at the sandbox's simulated provider through the gateway
/// at `base` (a client that does not follow redirects, as a browser's steps
/// are checked one by one): the session cookie (`name=value`) and the
/// authorization code the provider sent back.
async fn sandbox_log_in(client: &reqwest::Client, base: &str, who: &str) -> (String, String) {
    let answer = client
        .get(format!("{base}/auth/login?return_to=/docs/"))
        .send()
        .await
        .unwrap();
    let chosen = format!("{}&login={who}", location(&answer));
    let back = client.get(&chosen).send().await.unwrap();
    assert_eq!(back.status(), 302);
    let callback = location(&back);
    assert!(
        callback.starts_with(&format!("{base}/auth/callback?")),
        "{callback}"
    );
    let code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let answer = client.get(&callback).send().await.unwrap();
    assert_eq!(location(&answer), "/docs/");
    let cookie = answer.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (cookie, code)
}

#[tokio::test]
async fn the_sandbox_offers_a_login_with_its_simulated_people() {
    // Sandbox mode's own settings, on a port known before they are made.
    let (listener, base) = loopback_listener();
    let sandbox =
        gateway::sandbox::Sandbox::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let settings = crate::helpers::sandbox_settings(&sandbox, listener.local_addr().unwrap());
    let app = gateway::startup::Application::build_with_listener(settings, listener).unwrap();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let answer = client
        .get(format!("{base}/auth/login?return_to=/docs/"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 302);
    let authorize = location(&answer);
    assert!(
        authorize.starts_with(sandbox.idp_issuer().as_str()),
        "{authorize}"
    );
    // Its login page lists the people; each is a link.
    let page = client
        .get(&authorize)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for person in gateway::sandbox::data::PEOPLE {
        assert!(
            page.contains(&format!("id=\"login-{}\"", person.sub)),
            "{page}"
        );
    }
    let mut sessions = Vec::new();
    for (who, scopes) in [
        ("alice", json!(["read"])),
        ("bob", json!(["read", "write"])),
        ("dana", json!(["audit", "read", "secrets", "write"])),
        ("carol", json!([])),
    ] {
        let (cookie, _) = sandbox_log_in(&client, &base, who).await;
        let session: Value = client
            .get(format!("{base}/auth/session"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(session["sub"], who);
        assert_eq!(session["scopes"], scopes, "{session}");
        assert!(session["refresh_at"].is_string(), "{session}");
        sessions.push((who, cookie));
    }
    for (who, cookie) in &sessions {
        let status = client
            .get(format!("{base}/v1/account"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, if *who == "carol" { 403 } else { 200 }, "{who}");
    }
}

#[tokio::test]
async fn a_person_logs_in_with_a_real_browser_and_follows_events_with_the_cookie() {
    let gateway = LoginGateway::start().await;
    let base = gateway.base.clone();
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("tests/identity/browser.mjs")
            .env("GATEWAY_URL", &base)
            .env("WHO", "bob")
            .stderr(Stdio::inherit())
            .output()
            .expect("node runs tests/identity/browser.mjs (tests/run.sh installs it and Chromium)")
    });
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("the browser finished within two minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("the browser's report: {stdout}"));
    assert!(seen.get("error").is_none(), "{seen}");
    assert_eq!(seen["landed"], "/docs/", "{seen}");
    assert_eq!(
        seen["cookie"],
        json!({"httpOnly": true, "secure": true, "sameSite": "Strict", "path": "/"}),
        "the browser kept the cookie as set: {seen}"
    );
    assert_eq!(seen["session"]["sub"], "bob", "{seen}");
    assert_eq!(seen["read"], 200, "{seen}");
    assert_eq!(seen["write_without_csrf"], 403, "{seen}");
    assert_eq!(seen["write"], 200, "{seen}");
    assert_eq!(seen["event"]["changed"]["city"], "Lund", "{seen}");
}

#[tokio::test]
async fn each_service_has_its_own_rate_limit_counted_by_kind() {
    let provider = Provider::start();
    let mut identity = identity(&provider, 60);
    // A burst of 2, then one a minute: the third request at once is refused.
    identity.rate_per_second = 1;
    identity.burst = 2;
    let app = spawn_app_with(move |s| s.identity = identity).await;
    let reporting = provider.token("reporting", "read", "urn:gateway").await;
    let bot = provider.token("billing-bot", "read", "urn:gateway").await;
    for _ in 0..2 {
        let answer = call(&app, reqwest::Method::GET, "/v1/account", &reporting).await;
        assert_eq!(answer.status(), 200);
        assert!(
            answer.headers().contains_key("ratelimit"),
            "{:?}",
            answer.headers()
        );
    }
    let refused = call(&app, reqwest::Method::GET, "/v1/account", &reporting).await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_problem(refused, 429).await;
    // Another service's budget is its own; API keys are untouched.
    assert_eq!(
        call(&app, reqwest::Method::GET, "/v1/account", &bot)
            .await
            .status(),
        200
    );
    assert_eq!(app.get_account().await.status(), 200);
    // Counted by kind, never one series per service or person.
    let scrape = get_text(&app.url("/metrics")).await;
    let limited = samples(&scrape, "gateway_rate_limited_total");
    assert!(
        limited.iter().any(|s| s.contains("key=\"service\"")),
        "{limited:?}"
    );
    assert!(
        !limited.iter().any(|s| s.contains("reporting")),
        "{limited:?}"
    );
}

#[tokio::test]
async fn claims_left_out_of_the_id_token_are_read_from_userinfo() {
    // The provider keeps the profile's claims out of ID tokens (OpenID
    // Connect Core 5.4): only UserInfo has the name and email (the groups
    // claim goes with the openid scope, so it stays in the ID token here; a
    // provider that leaves it out is read the same way, from UserInfo).
    let gateway = LoginGateway::with_provider(&[("CONFORM_ID_TOKEN", "1")]).await;
    let bob = gateway.log_in("bob").await;
    let session: Value = gateway
        .get("/auth/session", &bob)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(session["scopes"], json!(["read", "write"]), "{session}");
    assert_eq!(session["name"], "Bob Berg", "{session}");
    assert_eq!(session["email"], "bob@example.com", "{session}");
}

#[tokio::test]
async fn the_access_line_names_the_person_and_no_cookie_or_code_is_logged() {
    // The binary in sandbox mode, which offers the simulated provider's login.
    let data = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
    command
        .current_dir(data.path())
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG");
    let (mut child, port, log) = crate::helpers::spawn_logged(command);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (cookie, code) = sandbox_log_in(&client, &base, "bob").await;
    let answer = client
        .get(format!("{base}/v1/account"))
        .header("cookie", &cookie)
        .header("x-request-id", "person-call")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let written = || {
        log.lock()
            .unwrap()
            .lines()
            .any(|l| l.contains("\"request_id\":\"person-call\""))
    };
    wait_until("the access line is written", async || written()).await;
    let text = log.lock().unwrap().clone();
    let _ = child.kill();
    let _ = child.wait();
    let line = text
        .lines()
        .find(|l| l.contains("\"request_id\":\"person-call\"") && l.contains("\"log\":\"access\""))
        .unwrap();
    let line: Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["caller"], "person:bob", "{line}");
    let value = cookie.split_once('=').unwrap().1;
    for secret in [value, code.as_str()] {
        assert!(
            !text.contains(secret),
            "a cookie or code in the log: {secret}"
        );
    }
}
