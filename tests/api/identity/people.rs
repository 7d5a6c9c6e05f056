//! People logging in (RFC 10017's backend for frontend) at the same real
//! OpenID Provider: the authorization code flow with PKCE, the session
//! cookie, renewal, logout from either side, sessions shared on Redis, the
//! sandbox's simulated provider and a real browser.

mod deployed;

use super::*;

/// A gateway whose people log in at `provider`, on a listener bound first
/// (the provider must know the callback's port before the gateway starts).
struct LoginGateway {
    provider: std::sync::Arc<Provider>,
    base: String,
    client: reqwest::Client,
    _sandbox: gateway::sandbox::Sandbox,
}

fn loopback_listener() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    (listener, base)
}

impl LoginGateway {
    async fn start() -> Self {
        Self::with_provider(&[]).await
    }

    /// With more of the provider's environment (`ACCESS_TOKEN_TTL`).
    async fn with_provider(env: &[(&str, &str)]) -> Self {
        let (listener, base) = loopback_listener();
        let provider = std::sync::Arc::new(Provider::for_login(&base, env));
        Self::on(listener, &base, provider, None)
    }

    /// A gateway on `listener` whose login client is registered at
    /// `provider` with `registered`'s callback (behind a proxy, every
    /// instance's), and with `redis`, sharing sessions with other instances.
    fn on(
        listener: std::net::TcpListener,
        registered: &str,
        provider: std::sync::Arc<Provider>,
        redis: Option<gateway::configuration::RedisSettings>,
    ) -> Self {
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let sandbox = gateway::sandbox::Sandbox::start(loopback).unwrap();
        let mut settings = crate::helpers::sandbox_settings(&sandbox, loopback);
        settings.server.workers = 1;
        settings.redis = redis;
        let mut oidc = OidcSettings::issuer(provider.issuer.parse().unwrap());
        oidc.client_id = Some("gateway-web".into());
        oidc.client_secret = Some("gateway-web-secret".into());
        oidc.redirect_url = Some(format!("{registered}/auth/callback").parse().unwrap());
        settings.identity = IdentitySettings {
            oidc: Some(oidc),
            jwt: None,
            groups: [
                ("gateway-readers".to_owned(), [Scope::Read].into()),
                ("gateway-writers".to_owned(), [Scope::Write].into()),
            ]
            .into(),
            ..IdentitySettings::default()
        };
        let app = gateway::startup::Application::build_with_listener(settings, listener).unwrap();
        tokio::spawn(app.run_until_stopped());
        Self {
            provider,
            base,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            _sandbox: sandbox,
        }
    }

    /// Logs `who` in through the provider's login and consent forms, as a
    /// browser would, up to the provider's redirect back to the gateway:
    /// the callback URL (not yet visited).
    async fn through_provider(&self, who: &str, return_to: &str) -> String {
        self.through_provider_keeping(who, return_to, &mut Vec::new())
            .await
    }

    /// The same, keeping the browser's cookies at the provider in `cookies`.
    async fn through_provider_keeping(
        &self,
        who: &str,
        return_to: &str,
        cookies: &mut Vec<String>,
    ) -> String {
        let answer = self
            .client
            .get(format!("{}/auth/login", self.base))
            .query(&[("return_to", return_to)])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 302, "login redirects to the provider");
        assert_eq!(answer.headers()["cache-control"], "no-store");
        let mut next = location(&answer);
        let authorize = url::Url::parse(&next).unwrap();
        let param = |name: &str| {
            authorize
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
        assert_eq!(param("client_id").as_deref(), Some("gateway-web"));
        assert!(param("state").is_some_and(|s| s.len() >= 43));
        assert!(param("nonce").is_some_and(|s| s.len() >= 43));
        for _ in 0..12 {
            if next.contains("/auth/callback?") {
                return next;
            }
            let url = if next.starts_with('/') {
                format!("{}{next}", self.provider.issuer)
            } else {
                next.clone()
            };
            let answer = self
                .client
                .get(&url)
                .header("cookie", cookies.join("; "))
                .send()
                .await
                .unwrap();
            keep_cookies(&answer, cookies);
            if answer.status().is_redirection() {
                next = location(&answer);
                continue;
            }
            let page = answer.text().await.unwrap();
            let form = if page.contains("name=\"login\"") {
                vec![("prompt", "login"), ("login", who), ("password", "any")]
            } else {
                vec![("prompt", "consent")]
            };
            let answer = self
                .client
                .post(&url)
                .header("cookie", cookies.join("; "))
                .form(&form)
                .send()
                .await
                .unwrap();
            keep_cookies(&answer, cookies);
            assert!(
                answer.status().is_redirection(),
                "the provider's form: {}",
                answer.status()
            );
            next = location(&answer);
        }
        panic!("the provider never sent the browser back: {next}");
    }

    /// Logs `who` in all the way: the session cookie (`name=value`).
    async fn log_in(&self, who: &str) -> String {
        self.log_in_keeping(who, &mut Vec::new()).await
    }

    /// The same, keeping the browser's cookies at the provider in `cookies`.
    async fn log_in_keeping(&self, who: &str, cookies: &mut Vec<String>) -> String {
        let callback = self
            .through_provider_keeping(who, "/app/customers?page=2", cookies)
            .await;
        self.finish_login(&callback).await
    }

    /// Visits the provider's redirect back (`callback`) on this instance:
    /// the session cookie.
    async fn finish_login(&self, callback: &str) -> String {
        let url = url::Url::parse(callback).unwrap();
        let callback = format!("{}{}?{}", self.base, url.path(), url.query().unwrap());
        let answer = self.client.get(&callback).send().await.unwrap();
        assert_eq!(
            answer.status(),
            302,
            "{}",
            answer.text().await.unwrap_or_default()
        );
        assert_eq!(location(&answer), "/app/customers?page=2");
        let set = answer.headers()["set-cookie"].to_str().unwrap().to_owned();
        for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
            assert!(set.contains(attribute), "{set}");
        }
        assert!(!set.to_ascii_lowercase().contains("domain"), "{set}");
        set.split(';').next().unwrap().to_owned()
    }

    /// The browser with `cookies` at the provider logs out there (another
    /// application's logout button): its logout page, then its confirmation
    /// form; the provider tells its clients on the back channel before it
    /// answers.
    async fn log_out_at_provider(&self, cookies: &[String]) {
        let end = format!("{}/session/end", self.provider.issuer);
        let page = self
            .client
            .get(&end)
            .header("cookie", cookies.join("; "))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let xsrf = page
            .split("name=\"xsrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("the provider's logout form: {page}"));
        let answer = self
            .client
            .post(format!("{end}/confirm"))
            .header("cookie", cookies.join("; "))
            .form(&[("xsrf", xsrf), ("logout", "yes")])
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_redirection(), "{}", answer.status());
    }

    /// A GET of `path` with the session `cookie`.
    async fn get(&self, path: &str, cookie: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path, cookie)
            .send()
            .await
            .unwrap()
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        cookie: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .header("cookie", cookie)
    }
}

fn location(answer: &reqwest::Response) -> String {
    answer.headers()["location"].to_str().unwrap().to_owned()
}

fn keep_cookies(answer: &reqwest::Response, jar: &mut Vec<String>) {
    for set in answer.headers().get_all("set-cookie") {
        let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
        let name = pair.split('=').next().unwrap().to_owned();
        jar.retain(|c| !c.starts_with(&format!("{name}=")));
        jar.push(pair);
    }
}

#[tokio::test]
async fn a_person_logs_in_calls_the_api_with_the_cookie_and_logs_out() {
    let gateway = LoginGateway::start().await;
    let cookie = gateway.log_in("alice").await;
    assert!(cookie.starts_with("__Host-gateway-session="), "{cookie}");

    let session: Value = gateway
        .get("/auth/session", &cookie)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(session["sub"], "alice", "{session}");
    assert_eq!(session["name"], "Alice Andersson");
    assert_eq!(session["email"], "alice@example.com");
    assert_eq!(session["scopes"], json!(["read"]));
    assert!(session["expires_at"].as_str().unwrap().ends_with('Z'));

    // Every /v1 route takes the session; a safe method needs nothing more.
    let answer = gateway.get("/v1/account", &cookie).await;
    assert_eq!(answer.status(), 200);
    // An unsafe method by cookie needs X-CSRF: 1, before anything else.
    let problem = assert_problem(
        gateway
            .request(reqwest::Method::PATCH, "/v1/account", &cookie)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("X-CSRF"),
        "{problem}"
    );
    // With it, alice (a reader) still lacks `write`.
    let problem = assert_problem(
        gateway
            .request(reqwest::Method::PATCH, "/v1/account", &cookie)
            .header("x-csrf", "1")
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("write"),
        "{problem}"
    );

    // Logging out needs the header too; then ends the session here and
    // answers the provider's end-session URL.
    assert_problem(
        gateway
            .request(reqwest::Method::POST, "/auth/logout", &cookie)
            .send()
            .await
            .unwrap(),
        403,
    )
    .await;
    let answer = gateway
        .request(reqwest::Method::POST, "/auth/logout", &cookie)
        .header("x-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        answer.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let out: Value = answer.json().await.unwrap();
    let end = out["end_session_url"].as_str().unwrap();
    assert!(
        end.starts_with(&gateway.provider.issuer) && end.contains("id_token_hint="),
        "{out}"
    );
    let problem = assert_problem(gateway.get("/v1/account", &cookie).await, 401).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("/auth/login"),
        "{problem}"
    );
    assert_problem(gateway.get("/auth/session", &cookie).await, 401).await;
}

#[tokio::test]
async fn a_writer_writes_and_someone_in_no_group_reads_nothing() {
    let gateway = LoginGateway::start().await;
    let bob = gateway.log_in("bob").await;
    let answer = gateway
        .request(reqwest::Method::PATCH, "/v1/account", &bob)
        .header("x-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 415, "admitted, then asked for JSON");
    let carol = gateway.log_in("carol").await;
    assert_problem(gateway.get("/v1/account", &carol).await, 403).await;
}

#[tokio::test]
async fn a_login_that_does_not_check_out_starts_no_session() {
    let gateway = LoginGateway::start().await;
    // An open redirect is refused before anything else.
    for bad in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let answer = gateway
            .client
            .get(format!("{}/auth/login", gateway.base))
            .query(&[("return_to", bad)])
            .send()
            .await
            .unwrap();
        assert!(answer.headers().get("location").is_none(), "{bad}");
        let problem = assert_problem(answer, 400).await;
        assert_eq!(problem["errors"][0]["parameter"], "return_to", "{problem}");
    }
    // A callback used twice: the second is refused, with no cookie.
    let callback = gateway.through_provider("alice", "/").await;
    assert_eq!(
        gateway.client.get(&callback).send().await.unwrap().status(),
        302
    );
    let answer = gateway.client.get(&callback).send().await.unwrap();
    assert!(answer.headers().get("set-cookie").is_none());
    let problem = assert_problem(answer, 400).await;
    assert_eq!(problem["errors"][0]["parameter"], "state", "{problem}");
    // The provider says no: a 401 problem, no session.
    let callback = gateway.through_provider("alice", "/").await;
    let state = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let answer = gateway
        .client
        .get(format!("{}/auth/callback", gateway.base))
        .query(&[("error", "access_denied"), ("state", &state)])
        .send()
        .await
        .unwrap();
    assert!(answer.headers().get("set-cookie").is_none());
    assert_problem(answer, 401).await;
    // A made-up code with a fresh state: the token endpoint refuses it.
    let callback = gateway.through_provider("alice", "/").await;
    let forged = callback.replace("code=", "code=x");
    let answer = gateway.client.get(&forged).send().await.unwrap();
    assert!(answer.headers().get("set-cookie").is_none());
    assert_problem(answer, 401).await;
    // A cookie nobody issued is no session.
    assert_problem(
        gateway
            .request(
                reqwest::Method::GET,
                "/v1/account",
                "__Host-gateway-session=made-up",
            )
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
}

/// Polls `check` (every 200 ms, for at most 30 s) until it says yes.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..150 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("{what} did not happen within 30 s");
}

#[tokio::test]
async fn a_session_is_renewed_with_the_provider_and_ends_when_it_refuses() {
    // Access tokens of 4 s: the gateway renews three seconds in.
    let gateway = LoginGateway::with_provider(&[("ACCESS_TOKEN_TTL", "4")]).await;
    let bob = gateway.log_in("bob").await;
    let session = |gateway: &LoginGateway| {
        gateway
            .request(reqwest::Method::GET, "/auth/session", &bob)
            .send()
    };
    let first: Value = session(&gateway).await.unwrap().json().await.unwrap();
    assert_eq!(first["scopes"], json!(["read", "write"]), "{first}");
    let refresh_at = first["refresh_at"]
        .as_str()
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    assert!(refresh_at.ends_with('Z'), "{first}");

    // Bob leaves the writers at the provider: the renewal brings it here.
    gateway
        .provider
        .change_person(json!({"sub": "bob", "groups": ["gateway-readers"]}))
        .await;
    eventually("a renewal with bob's new groups", || async {
        let answer = gateway.get("/v1/account", &bob).await;
        assert_eq!(answer.status(), 200, "the session works while it renews");
        let now: Value = session(&gateway).await.unwrap().json().await.unwrap();
        now["scopes"] == json!(["read"]) && now["refresh_at"] != first["refresh_at"]
    })
    .await;

    // Bob is disabled there: the next renewal is refused and ends the
    // session; his next call is told why.
    gateway
        .provider
        .change_person(json!({"sub": "bob", "disabled": true}))
        .await;
    let mut answer = None;
    for _ in 0..150 {
        let now = gateway.get("/v1/account", &bob).await;
        if now.status() != 200 {
            answer = Some(now);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let answer = answer.expect("the refused renewal ends the session within 30 s");
    let problem = assert_problem(answer, 401).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("no longer renews"),
        "{problem}"
    );
    let answer = session(&gateway).await.unwrap();
    assert_problem(answer, 401).await;
}

#[tokio::test]
async fn the_provider_logging_a_person_out_ends_their_sessions_here() {
    let gateway = LoginGateway::start().await;
    let mut at_provider = Vec::new();
    let alice = gateway.log_in_keeping("alice", &mut at_provider).await;
    let bob = gateway.log_in("bob").await;

    // Alice logs out at the provider itself (another application's logout
    // button): its logout page, then its confirmation form.
    gateway.log_out_at_provider(&at_provider).await;
    // The provider told the gateway on the back channel before answering.
    let problem = assert_problem(gateway.get("/v1/account", &alice).await, 401).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("identity provider logged this person out"),
        "{problem}"
    );
    // Bob, logged in elsewhere, is not touched.
    let answer = gateway.get("/v1/account", &bob).await;
    assert_eq!(answer.status(), 200);

    // Logout tokens that do not check out end nothing.
    let issuer = gateway.provider.issuer.clone();
    let logout = |claims: Value| {
        let gateway = &gateway;
        async move {
            let token = gateway.provider.sign(claims).await;
            gateway
                .client
                .post(format!("{}/auth/backchannel-logout", gateway.base))
                .form(&[("logout_token", token)])
                .send()
                .await
                .unwrap()
        }
    };
    let events = json!({"http://schemas.openid.net/event/backchannel-logout": {}});
    let good = json!({"iss": issuer, "aud": "gateway-web", "iat": now(), "exp": now() + 120,
        "jti": "logout-1", "sub": "bob", "events": events});
    let mut refusals = vec![
        (json!({"events": null}), "no back-channel logout event"),
        (json!({"nonce": "n"}), "nonce"),
        (json!({"aud": "someone-else"}), "not valid"),
        (json!({"iss": "http://127.0.0.1:1"}), "not valid"),
        (json!({"sub": null, "sid": null}), "neither sid nor sub"),
        (json!({"iat": null}), "no iat"),
        (json!({"jti": null}), "no jti"),
    ];
    for (change, why) in refusals.drain(..) {
        let mut claims = good.clone();
        for (name, value) in change.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        let problem = assert_problem(logout(claims).await, 400).await;
        assert_eq!(
            problem["errors"][0]["parameter"], "logout_token",
            "{problem}"
        );
        assert!(
            problem["errors"][0]["detail"]
                .as_str()
                .or(problem["detail"].as_str())
                .unwrap()
                .contains(why),
            "{why}: {problem}"
        );
    }
    let missing = gateway
        .client
        .post(format!("{}/auth/backchannel-logout", gateway.base))
        .form(&[("other", "x")])
        .send()
        .await
        .unwrap();
    assert_problem(missing, 400).await;
    let answer = gateway.get("/v1/account", &bob).await;
    assert_eq!(answer.status(), 200, "bob's session is still there");

    // A good one by `sub` ends every session of that person; once.
    let answer = logout(good.clone()).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    assert_problem(gateway.get("/v1/account", &bob).await, 401).await;
    let replayed = assert_problem(logout(good).await, 400).await;
    assert!(replayed.to_string().contains("already used"), "{replayed}");
}
