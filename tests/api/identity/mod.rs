//! Service tokens against a real OpenID Provider: npm `oidc-provider`
//! (tests/identity/provider.mjs), started here on loopback. Its access
//! tokens are JWTs for the resource `urn:gateway`; the gateway validates
//! them with the provider's published keys and maps groups and scopes.

mod people;

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
