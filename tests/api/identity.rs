//! Service tokens against a real OpenID Provider: npm `oidc-provider`
//! (tests/identity/provider.mjs), started here on loopback. Its access
//! tokens are JWTs for the resource `urn:gateway`; the gateway validates
//! them with the provider's published keys and maps groups and scopes.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use base64::Engine;
use gateway::configuration::{IdentitySettings, JwtSettings, OidcSettings, Scope};
use serde_json::{Value, json};

use crate::{
    binary::{Gateway, config},
    helpers::{TestApp, assert_problem, get_text, samples, spawn_app_with, wait_until},
};

/// The provider, killed when dropped.
struct Provider {
    child: Child,
    issuer: String,
    kid: String,
}

impl Provider {
    fn start() -> Self {
        Self::on_port(0)
    }

    /// Started on `port` (0: a random one), with a fresh signing key.
    fn on_port(port: u16) -> Self {
        Self::spawn(port, "", &[])
    }

    /// With the gateway at `base` as its login client (callback and
    /// back-channel logout there), and more of the provider's `env`.
    fn for_login(base: &str, env: &[(&str, &str)]) -> Self {
        let mut env = env.to_vec();
        let backchannel = format!("{base}/auth/backchannel-logout");
        env.push(("BACKCHANNEL_URI", &backchannel));
        Self::spawn(0, &format!("{base}/auth/callback"), &env)
    }

    fn spawn(port: u16, redirect: &str, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new("node")
            .arg("tests/identity/provider.mjs")
            .env("PORT", port.to_string())
            .env("REDIRECT_URI", redirect)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs tests/identity/provider.mjs (tests/run.sh installs it)");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout
            .read_line(&mut line)
            .expect("the provider says where it listens");
        // Drained for as long as it runs: its notices must not meet a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let started: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("the provider's first line is JSON: {line:?}"));
        Self {
            child,
            issuer: started["issuer"].as_str().unwrap().to_owned(),
            kid: started["kid"].as_str().unwrap().to_owned(),
        }
    }

    fn port(&self) -> u16 {
        self.issuer.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Stopped and started again on the same port: a new signing key.
    fn rotate(&mut self) {
        let port = self.port();
        self.stop();
        *self = Self::on_port(port);
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// An access token from the client credentials grant.
    async fn token(&self, client: &str, scope: &str, resource: &str) -> String {
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth(client, Some(format!("{client}-secret")))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", scope),
                ("resource", resource),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("a token: {answer}"))
            .to_owned()
    }

    /// How many times the provider renewed a session (refresh token grant).
    async fn renewals(&self) -> u64 {
        let counts: Value = reqwest::get(format!("{}/__test/counts", self.issuer))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        counts["refresh"].as_u64().unwrap()
    }

    /// Changes a person at the provider (its test-only helper).
    async fn change_person(&self, change: Value) {
        let answer = reqwest::Client::new()
            .post(format!("{}/__test/person", self.issuer))
            .json(&change)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 204);
    }

    /// `claims` signed with the provider's current key (its test-only helper).
    async fn sign(&self, claims: Value) -> String {
        reqwest::Client::new()
            .post(format!("{}/__test/sign", self.issuer))
            .json(&claims)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.stop();
    }
}

fn identity(provider: &Provider, refetch_seconds: u64) -> IdentitySettings {
    IdentitySettings {
        oidc: Some(OidcSettings::issuer(provider.issuer.parse().unwrap())),
        jwt: Some(JwtSettings {
            audience: "urn:gateway".into(),
            leeway_seconds: 0,
            jwks_refetch_seconds: refetch_seconds,
        }),
        groups: [("gateway-readers".to_owned(), [Scope::Read].into())].into(),
        ..IdentitySettings::default()
    }
}

async fn gateway(provider: &Provider, refetch_seconds: u64) -> TestApp {
    let identity = identity(provider, refetch_seconds);
    spawn_app_with(move |s| s.identity = identity).await
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn a_service_token_is_admitted_with_the_scopes_its_groups_and_scope_map_to() {
    let provider = Provider::start();
    let app = gateway(&provider, 60).await;

    // `reporting` is in gateway-readers: read, whatever its `scope` says.
    let token = provider.token("reporting", "write", "urn:gateway").await;
    let answer = call(&app, reqwest::Method::GET, "/v1/account", &token).await;
    assert_eq!(answer.status(), 200);
    // `write` from its scope claim lets it through admission to the body check.
    let answer = call(&app, reqwest::Method::PATCH, "/v1/account", &token).await;
    assert_eq!(answer.status(), 415, "admitted, then asked for JSON");

    // `billing-bot` has no group: only what its scope names.
    let token = provider.token("billing-bot", "read", "urn:gateway").await;
    assert_eq!(
        call(&app, reqwest::Method::GET, "/v1/account", &token)
            .await
            .status(),
        200
    );
    let problem = assert_problem(
        call(&app, reqwest::Method::PATCH, "/v1/account", &token).await,
        403,
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("write"),
        "{problem}"
    );
    // ... and nothing at all when its scope names no gateway scope.
    let token = provider.token("billing-bot", "openid", "urn:gateway").await;
    assert_problem(
        call(&app, reqwest::Method::GET, "/v1/account", &token).await,
        403,
    )
    .await;

    // The sandbox key keeps working beside tokens.
    assert_eq!(app.get_account().await.status(), 200);
    let scrape = get_text(&app.url("/metrics")).await;
    assert!(
        samples(&scrape, "gateway_admissions_total")
            .iter()
            .any(|s| s.contains("kind=\"service\"")),
        "{scrape}"
    );
    assert!(
        samples(&scrape, "gateway_jwks_fetches_total")
            .iter()
            .any(|s| s.contains("outcome=\"ok\"")),
        "{scrape}"
    );
}

#[tokio::test]
async fn tokens_the_gateway_must_not_trust_are_refused_with_401() {
    let provider = Provider::start();
    let app = gateway(&provider, 60).await;
    let issuer = provider.issuer.clone();
    let good = |extra: Value| {
        let mut claims = json!({
            "iss": issuer, "aud": "urn:gateway", "client_id": "reporting", "sub": "reporting",
            "scope": "read", "iat": now(), "exp": now() + 300,
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    // What the provider signs as it stands is accepted: the refusals below
    // are each about one thing.
    let signed = provider.sign(good(json!({}))).await;
    assert_eq!(
        call(&app, reqwest::Method::GET, "/v1/account", &signed)
            .await
            .status(),
        200
    );

    let issued = provider.token("reporting", "read", "urn:gateway").await;
    let (header, rest) = issued.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let mut claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["scope"] = json!("read write secrets");
    let forged = format!("{header}.{}.{signature}", b64(&claims));
    let none = format!(
        "{}.{payload}.",
        b64(&json!({"alg": "none", "typ": "at+jwt"}))
    );
    let none_signed = format!(
        "{}.{payload}.{signature}",
        b64(&json!({"alg": "none", "typ": "at+jwt", "kid": provider.kid}))
    );
    let hmac = format!(
        "{}.{payload}.{signature}",
        b64(&json!({"alg": "HS256", "typ": "at+jwt", "kid": provider.kid}))
    );
    let unknown_kid = format!(
        "{}.{payload}.{signature}",
        b64(&json!({"alg": "RS256", "typ": "at+jwt", "kid": "nope"}))
    );
    let refused = [
        ("forged claims", forged),
        ("alg none, unsigned", none),
        ("alg none, signed", none_signed),
        ("HMAC", hmac),
        ("unknown kid", unknown_kid),
        ("another audience", provider.token("reporting", "read", "urn:other").await),
        ("expired", provider.sign(good(json!({"iat": now() - 600, "exp": now() - 60}))).await),
        ("not yet valid", provider.sign(good(json!({"nbf": now() + 600}))).await),
        ("another issuer", provider.sign(good(json!({"iss": "http://127.0.0.1:1"}))).await),
        ("no audience", provider.sign(json!({"iss": issuer, "client_id": "reporting", "scope": "read", "exp": now() + 300})).await),
        ("not an access token", id_token_like(&provider, &issuer).await),
    ];
    for (what, token) in refused {
        let answer = call(&app, reqwest::Method::GET, "/v1/account", &token).await;
        let problem = assert_problem(answer, 401).await;
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(!detail.contains(&token), "{what}: the token is not echoed");
    }
}

/// A JWT the provider's key signed whose `typ` says it is not an access token.
async fn id_token_like(provider: &Provider, issuer: &str) -> String {
    let token = provider
        .sign(json!({"iss": issuer, "aud": "urn:gateway", "client_id": "reporting", "scope": "read", "exp": now() + 300}))
        .await;
    // Re-headed as a plain JWT: the signature no longer matches either, but
    // the type is what is refused first.
    let (_, rest) = token.split_once('.').unwrap();
    format!(
        "{}.{rest}",
        b64(&json!({"alg": "RS256", "typ": "JWT", "kid": provider.kid}))
    )
}

#[tokio::test]
async fn a_rotated_key_is_fetched_once_and_held_keys_survive_the_provider_going_down() {
    let mut provider = Provider::start();
    let app = gateway(&provider, 1).await;
    let old = provider.token("reporting", "read", "urn:gateway").await;
    assert_eq!(
        call(&app, reqwest::Method::GET, "/v1/account", &old)
            .await
            .status(),
        200
    );

    provider.rotate();
    let new = provider.token("reporting", "read", "urn:gateway").await;
    // Wait out the refetch interval (1 s here): the first call with the new
    // `kid` fetches the keys again.
    wait_until("the new key is accepted", async || {
        call(&app, reqwest::Method::GET, "/v1/account", &new)
            .await
            .status()
            == 200
    })
    .await;

    // Many calls with a `kid` nobody has, at once: at most one more fetch.
    let before = fetches(&app).await;
    let unknown = {
        let (_, rest) = new.split_once('.').unwrap();
        format!(
            "{}.{rest}",
            b64(&json!({"alg": "RS256", "typ": "at+jwt", "kid": "nobody"}))
        )
    };
    let calls = (0..20).map(|_| call(&app, reqwest::Method::GET, "/v1/account", &unknown));
    for answer in futures_util::future::join_all(calls).await {
        assert_eq!(answer.status(), 401);
    }
    let after = fetches(&app).await;
    assert!(
        after - before <= 1.0,
        "{before} -> {after} fetches for one unknown kid"
    );

    // The provider goes away: the key already held keeps working.
    provider.stop();
    assert_eq!(
        call(&app, reqwest::Method::GET, "/v1/account", &new)
            .await
            .status(),
        200
    );
}

async fn fetches(app: &TestApp) -> f64 {
    let scrape = get_text(&app.url("/metrics")).await;
    samples(&scrape, "gateway_jwks_fetches_total")
        .iter()
        .filter_map(|s| s.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The running binary, as ops run it: the access line names the service,
/// the refusal's reason is logged, and no token is ever in the log.
#[tokio::test]
async fn the_access_line_names_the_service_and_no_token_is_logged() {
    let provider = Provider::start();
    let sandbox =
        gateway::sandbox::Sandbox::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let dna = sandbox.dna_base_url().to_string();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[identity.oidc]\nissuer = \"{}\"\n\n[identity.jwt]\naudience = \"urn:gateway\"\n\n[identity.groups]\n\"gateway-readers\" = [\"read\"]\n",
        config(&sandbox, &[("frontend", "access-key", "")], "info", &dna),
        provider.issuer
    );
    let gateway = Gateway::start(dir.path(), &text);
    let client = reqwest::Client::new();
    let token = provider.token("reporting", "read", "urn:gateway").await;
    let answer = client
        .get(format!("{}/v1/account", gateway.base))
        .bearer_auth(&token)
        .header("x-request-id", "service-call")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let (head, rest) = token.split_once('.').unwrap();
    let forged = format!("{head}.{}", rest.replacen('e', "f", 1));
    let answer = client
        .get(format!("{}/v1/account", gateway.base))
        .bearer_auth(&forged)
        .header("x-request-id", "forged-call")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    wait_until("both access lines are written", async || {
        gateway.lines_with("\"request_id\":\"forged-call\"") > 0
            && gateway.lines_with("\"request_id\":\"service-call\"") > 0
    })
    .await;
    let log = gateway.log();
    let line = log
        .lines()
        .find(|l| l.contains("\"request_id\":\"service-call\"") && l.contains("\"log\":\"access\""))
        .unwrap();
    let line: Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["caller"], "service:reporting", "{line}");
    assert!(log.contains("a bearer token was refused"), "{log}");
    for secret in [token.as_str(), forged.as_str(), head] {
        assert!(!log.contains(secret), "a token in the log");
    }
}

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
        let mut settings = gateway::sandbox::settings(&sandbox, loopback);
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
    let settings = gateway::sandbox::settings(&sandbox, listener.local_addr().unwrap());
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
        ("dana", json!(["read", "secrets", "write"])),
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
    let mut command = Command::new(env!("CARGO_BIN_EXE_gateway"));
    command
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
