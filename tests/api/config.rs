use std::{path::Path, process::Command};

use gateway::configuration::{Settings, Upstream};
use secrecy::ExposeSecret;

const VALID: &str = r#"
[[auth.api_keys]]
name = "web"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
scopes = ["read"]

[dna]
base_url = "https://staging.api.nexogy.com/api"
client_id = "3"
client_secret = "dna-client-secret-value"
username = "api@example.com"
password = "dna-password-value"

[slitz]
base_url = "https://slitz.se/api"
username = "billing@example.com"
password = "slitz-password-value"
"#;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn load(text: &str, env: &[(&str, &str)]) -> Result<Settings, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "gateway.toml", text);
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Settings::load(Some(&path), env).map_err(|e| e.to_string())
}

#[test]
fn a_minimal_file_loads_with_every_other_key_defaulted() {
    let settings = load(VALID, &[]).unwrap();
    assert_eq!(settings.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(settings.server.max_body_bytes, 65536);
    assert_eq!(settings.cache.ttl_seconds, 60);
    assert_eq!(settings.cache.stale_seconds, 600);
    assert_eq!(settings.upstream.timeout_ms, 10_000);
    assert_eq!(settings.upstream.retries, 2);
    assert_eq!(settings.slitz.timezone, chrono_tz::UTC);
    assert_eq!(
        settings.slitz.password.expose_secret(),
        "slitz-password-value"
    );
}

#[test]
fn environment_variables_override_the_file() {
    let settings = load(
        VALID,
        &[
            ("GATEWAY__SLITZ__PASSWORD", "0123"),
            ("GATEWAY__UPSTREAM__TIMEOUT_MS", "2500"),
            ("GATEWAY__SLITZ__TIMEZONE", "Europe/Stockholm"),
            (
                "GATEWAY__SERVER__TRUSTED_PROXIES",
                "10.0.0.0/8, 192.168.0.0/16",
            ),
            (
                "GATEWAY__SERVER__CORS_ALLOWED_ORIGINS",
                "https://app.example.com,http://localhost:3000",
            ),
            ("UNRELATED", "x"),
        ],
    )
    .unwrap();
    assert_eq!(
        settings.slitz.password.expose_secret(),
        "0123",
        "kept as text, leading zero and all"
    );
    assert_eq!(settings.upstream.timeout_ms, 2500);
    assert_eq!(settings.slitz.timezone, chrono_tz::Europe::Stockholm);
    assert_eq!(settings.server.trusted_proxies.len(), 2);
    assert_eq!(
        settings.server.cors_allowed_origins,
        vec!["https://app.example.com", "http://localhost:3000"]
    );
}

#[test]
fn secrets_can_come_from_files_by_key_or_by_environment() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write(dir.path(), "dna_secret", "from-a-file\n");
    let password = write(dir.path(), "slitz_password", "env-file-password\n");
    let text = VALID.replace(
        r#"client_secret = "dna-client-secret-value""#,
        &format!("client_secret_file = {:?}", secret.display().to_string()),
    );
    let text = text.replace(r#"password = "slitz-password-value""#, "");
    let settings = load(
        &text,
        &[("GATEWAY__SLITZ__PASSWORD_FILE", password.to_str().unwrap())],
    )
    .unwrap();
    assert_eq!(
        settings.dna.client_secret.expose_secret(),
        "from-a-file",
        "trailing newline dropped"
    );
    assert_eq!(settings.slitz.password.expose_secret(), "env-file-password");
}

#[test]
fn a_typo_is_rejected_naming_the_key() {
    let err = load(&VALID.replace("[dna]", "[dna]\nclient_secert = \"x\""), &[]).unwrap_err();
    assert!(
        err.contains("client_secert") && err.contains("dna"),
        "{err}"
    );
    let err = load(VALID, &[("GATEWAY__CACHE__TTL_SECNDS", "5")]).unwrap_err();
    assert!(err.contains("ttl_secnds"), "{err}");
    let err = load(&format!("{VALID}\n[cache.routes]\ninvoicez = 5\n"), &[]).unwrap_err();
    assert!(err.contains("invoicez") && err.contains("cache"), "{err}");
}

#[test]
fn bad_values_are_rejected_naming_the_key() {
    for (env, key) in [
        (
            ("GATEWAY__UPSTREAM__TIMEOUT_MS", "soon"),
            "upstream.timeout_ms",
        ),
        (
            ("GATEWAY__SLITZ__TIMEZONE", "Mars/Olympus"),
            "slitz.timezone",
        ),
        (("GATEWAY__SLITZ__CURRENCY", "kronor"), "slitz.currency"),
        (("GATEWAY__SERVER__LISTEN", "everywhere"), "server.listen"),
        (
            ("GATEWAY__DNA__BASE_URL", "ftp://x.example/api"),
            "dna.base_url",
        ),
        (
            ("GATEWAY__SERVER__MAX_BODY_BYTES", "0"),
            "server.max_body_bytes",
        ),
        (
            (
                "GATEWAY__SERVER__CORS_ALLOWED_ORIGINS",
                "https://app.example.com/path",
            ),
            "server.cors_allowed_origins",
        ),
        (
            ("GATEWAY__UPSTREAM__DEADLINE_MS", "10"),
            "upstream.deadline_ms",
        ),
        (
            ("GATEWAY__UPSTREAM__MAX_CONCURRENCY", "0"),
            "upstream.max_concurrency",
        ),
        // Values so large that time arithmetic on them would overflow.
        (
            ("GATEWAY__CACHE__TTL_SECONDS", "18446744073709551615"),
            "cache.ttl_seconds",
        ),
        (
            ("GATEWAY__CACHE__STALE_SECONDS", "18446744073709551615"),
            "cache.stale_seconds",
        ),
        (
            ("GATEWAY__UPSTREAM__BREAKER_OPEN_MS", "18446744073709551615"),
            "upstream.breaker_open_ms",
        ),
        (
            ("GATEWAY__UPSTREAM__BREAKER_FAILURES", "0"),
            "upstream.breaker_failures",
        ),
        (
            ("GATEWAY__IDEMPOTENCY__TTL_SECONDS", "18446744073709551615"),
            "idempotency.ttl_seconds",
        ),
        (
            ("GATEWAY__CACHE__ROUTES__INVOICES", "99999999999"),
            "cache.routes.invoices",
        ),
        (("GATEWAY__REGISTRY__URL", "mysql://db/gw"), "registry.url"),
        (
            ("GATEWAY__REGISTRY__URL", "data/registry.db"),
            "registry.url",
        ),
        (("GATEWAY__REGISTRY__URL", "postgres://"), "registry.url"),
        (
            ("GATEWAY__REGISTRY__MAX_CONNECTIONS", "0"),
            "registry.max_connections",
        ),
        (
            ("GATEWAY__REGISTRY__AUDIT_RETENTION_DAYS", "0"),
            "registry.audit_retention_days",
        ),
    ] {
        let err = load(VALID, &[env]).unwrap_err();
        assert!(err.contains(key), "{key}: {err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
}

#[test]
fn missing_credentials_and_keys_are_named() {
    let err = load(
        &VALID.replace("username = \"billing@example.com\"", ""),
        &[],
    )
    .unwrap_err();
    assert!(err.contains("slitz.username"), "{err}");
    let no_keys = VALID
        .split("[dna]")
        .nth(1)
        .map(|rest| format!("[dna]{rest}"))
        .unwrap();
    let err = load(&no_keys, &[]).unwrap_err();
    assert!(err.contains("auth.api_keys"), "{err}");
    let err = load(&VALID.replace("9f86d081", "zz"), &[]).unwrap_err();
    assert!(err.contains("auth.api_keys[0].sha256"), "{err}");
}

#[test]
fn a_secret_given_twice_is_rejected() {
    let err = load(VALID, &[("GATEWAY__SLITZ__PASSWORD_FILE", "/dev/null")]).unwrap_err();
    assert!(err.contains("slitz.password"), "{err}");
}

#[test]
fn debug_output_never_shows_a_secret() {
    let settings = load(VALID, &[]).unwrap();
    let debug = format!("{settings:?}");
    for secret in [
        "dna-client-secret-value",
        "dna-password-value",
        "slitz-password-value",
    ] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
}

#[test]
fn check_config_exits_0_for_a_good_file_and_2_with_one_line_for_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.toml", VALID);
    let output = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["check-config", "--config"])
        .arg(&good)
        .env_remove("GATEWAY_CONFIG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");

    let bad = write(
        dir.path(),
        "bad.toml",
        &VALID.replace("[slitz]", "[slitz]\ntimezon = \"UTC\""),
    );
    let output = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("timezon") && stderr.contains("slitz"),
        "{stderr}"
    );
}

#[test]
fn the_gateway_refuses_to_start_on_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.toml",
        &VALID
            .replace("[cache]", "")
            .replace("[dna]", "[dna]\nretries = 3"),
    );
    let output = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("GATEWAY_CONFIG", &bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("retries"));
}

#[test]
fn the_shipped_example_config_is_valid_given_its_secret_files() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["dna_client_secret", "dna_password", "slitz_password"] {
        write(dir.path(), name, "s3cret\n");
    }
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/gateway.toml"
    ))
    .unwrap()
    .replace("/run/secrets", dir.path().to_str().unwrap());
    let settings = load(&text, &[]).unwrap();
    // Its per-upstream tables are read as such.
    assert_eq!(settings.upstream.of(Upstream::Slitz).timeout_ms, 5_000);
    assert_eq!(settings.upstream.of(Upstream::Dna).timeout_ms, 15_000);
}

#[test]
fn a_redis_section_is_optional_validated_and_keeps_its_password_secret() {
    assert!(load(VALID, &[]).unwrap().redis.is_none());
    let settings = load(
        VALID,
        &[(
            "GATEWAY__REDIS__URL",
            "redis://:redis-password-value@redis:6379/0",
        )],
    )
    .unwrap();
    let redis = settings.redis.as_ref().unwrap();
    assert_eq!(redis.key_prefix, "gateway:");
    assert_eq!(redis.timeout_ms, 200);
    assert!(!format!("{settings:?}").contains("redis-password-value"));

    let dir = tempfile::tempdir().unwrap();
    let url = write(
        dir.path(),
        "redis_url",
        "rediss://:from-a-file@redis:6380/1\n",
    );
    let settings = load(
        VALID,
        &[("GATEWAY__REDIS__URL_FILE", url.to_str().unwrap())],
    )
    .unwrap();
    assert_eq!(
        settings.redis.unwrap().url.expose_secret(),
        "rediss://:from-a-file@redis:6380/1"
    );

    for (env, key) in [
        (
            ("GATEWAY__REDIS__URL", "http://:hunter2@redis:6379/0"),
            "redis.url",
        ),
        (("GATEWAY__REDIS__URL", "not a url hunter2"), "redis.url"),
        (("GATEWAY__REDIS__TIMEOUT_MS", "0"), "redis.timeout_ms"),
    ] {
        let mut env = vec![env];
        if env[0].0 != "GATEWAY__REDIS__URL" {
            env.push(("GATEWAY__REDIS__URL", "redis://redis:6379/0"));
        }
        let err = load(VALID, &env).unwrap_err();
        assert!(err.contains(key), "{key}: {err}");
        assert!(
            !err.contains("hunter2"),
            "the URL's password stays out: {err}"
        );
    }
}

#[test]
fn each_upstream_may_override_any_upstream_key() {
    let text = format!(
        "{VALID}\n[upstream]\ntimeout_ms = 4000\nretries = 1\n\n[upstream.slitz]\ntimeout_ms = 1500\nmax_concurrency = 16\nadaptive_concurrency = true\n\n[upstream.dna]\nbreaker_failures = 3\n"
    );
    let settings = load(&text, &[("GATEWAY__UPSTREAM__DNA__DEADLINE_MS", "30000")]).unwrap();
    let (dna, slitz) = (
        settings.upstream.of(Upstream::Dna),
        settings.upstream.of(Upstream::Slitz),
    );
    assert_eq!(
        (slitz.timeout_ms, slitz.retries, slitz.max_concurrency),
        (1_500, 1, 16),
        "slitz: its own timeout and limit, [upstream]'s retries"
    );
    assert!(slitz.adaptive_concurrency);
    assert_eq!(
        (dna.timeout_ms, dna.breaker_failures, dna.deadline_ms),
        (4_000, 3, 30_000),
        "dna: [upstream]'s timeout, its own breaker and (from the environment) deadline"
    );
    assert!(!dna.adaptive_concurrency, "off unless set");
    assert_eq!(settings.upstream.longest_deadline_ms(), 30_000);
}

#[test]
fn a_bad_override_is_named_by_its_own_key() {
    for (text, env, key) in [
        (
            "[upstream.slitz]\ntimeout_ms = 0\n",
            None,
            "upstream.slitz.timeout_ms",
        ),
        ("[upstream.dna]\ntimout_ms = 5\n", None, "timout_ms"),
        ("[upstream.vonage]\ntimeout_ms = 5\n", None, "vonage"),
        (
            "",
            Some(("GATEWAY__UPSTREAM__SLITZ__MAX_CONCURRENCY", "0")),
            "upstream.slitz.max_concurrency",
        ),
        (
            "[upstream.slitz]\ndeadline_ms = 500\n",
            None,
            "upstream.slitz.deadline_ms",
        ),
        // The timeout inherited, the deadline overridden below it.
        (
            "[upstream]\ntimeout_ms = 5000\n[upstream.dna]\ndeadline_ms = 4000\n",
            None,
            "upstream.dna.deadline_ms",
        ),
    ] {
        let env: Vec<(&str, &str)> = env.into_iter().collect();
        let err = load(&format!("{VALID}\n{text}"), &env).unwrap_err();
        assert!(err.contains(key), "{key}: {err}");
        assert!(!err.contains('\n'), "one line: {err}");
    }
    // The deadline fault also says which timeout it is held against.
    let err = load(
        &format!("{VALID}\n[upstream.slitz]\ntimeout_ms = 9000\ndeadline_ms = 8000\n"),
        &[],
    )
    .unwrap_err();
    assert!(err.contains("upstream.slitz.timeout_ms (9000)"), "{err}");
}

#[test]
fn connection_settings_have_the_http_servers_defaults_and_are_checked() {
    let settings = load(VALID, &[]).unwrap();
    assert_eq!(settings.server.client_request_timeout_ms, 5_000);
    assert_eq!(settings.server.keep_alive_seconds, 5);
    assert_eq!(settings.server.max_connections, 25_000);
    let err = load(VALID, &[("GATEWAY__SERVER__MAX_CONNECTIONS", "0")]).unwrap_err();
    assert!(err.contains("server.max_connections"), "{err}");
}

/// `gateway sandbox-upstreams --config-out` writes a configuration that
/// loads, and a gateway built from it serves the simulators with the
/// sandbox key just as sandbox mode does.
#[tokio::test]
async fn the_sandbox_config_file_serves_the_simulators() {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let sandbox = gateway::sandbox::Sandbox::start(loopback).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, gateway::sandbox::config_toml(&sandbox)).unwrap();
    let env = [(
        "GATEWAY__EVENTS__MAX_STREAM_SECONDS".to_owned(),
        "5".to_owned(),
    )];
    let mut settings = gateway::configuration::Settings::load(Some(&path), env).unwrap();
    assert_eq!(
        settings.events.max_stream_seconds, 5,
        "GATEWAY__* adjusts it"
    );
    settings.server.workers = 1;
    let app = gateway::startup::Application::build(settings).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let account = reqwest::Client::new()
        .get(format!("{base}/v1/account"))
        .bearer_auth(crate::helpers::KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(account.status().as_u16(), 200);
    let body: serde_json::Value = account.json().await.unwrap();
    // Read in the sandbox's zone, as sandbox mode reads it.
    assert!(
        body["last_login_at"].as_str().unwrap().ends_with("+01:00"),
        "{body}"
    );
}

#[test]
fn identity_loads_and_its_mistakes_are_named() {
    let identity = r#"
[identity.oidc]
issuer = "https://idp.example.com"

[identity.jwt]
audience = "urn:gateway"

[identity.groups]
"gateway-readers" = ["read"]
"#;
    let settings = load(&format!("{VALID}{identity}"), &[]).unwrap();
    let (oidc, jwt) = settings.identity.service_tokens().expect("service tokens");
    assert_eq!(oidc.groups_claim, "groups");
    assert_eq!((jwt.leeway_seconds, jwt.jwks_refetch_seconds), (30, 60));
    // Without [identity.jwt], no key at all is a mistake; with it, services suffice.
    let keyless = VALID.replace("[[auth.api_keys]]", "[[nothing]]");
    let keyless = keyless.split("[[nothing]]").collect::<Vec<_>>();
    let without_keys = format!(
        "{}{}",
        keyless[0],
        &keyless[1][keyless[1].find("[dna]").unwrap()..]
    );
    assert!(
        load(&without_keys, &[])
            .unwrap_err()
            .contains("auth.api_keys")
    );
    assert!(load(&format!("{without_keys}{identity}"), &[]).is_ok());
    for (text, key) in [
        (
            identity.replace("https://idp.example.com", "http://idp.example.com"),
            "identity.oidc.issuer",
        ),
        (
            identity.replace(
                "[identity.oidc]\nissuer = \"https://idp.example.com\"\n",
                "",
            ),
            "identity.jwt",
        ),
        (identity.replace("urn:gateway", ""), "identity.jwt.audience"),
        (
            identity.replace("[\"read\"]", "[]"),
            "identity.groups.gateway-readers",
        ),
        (
            identity.replace("[\"read\"]", "[\"admin\"]"),
            "identity.groups",
        ),
        (
            format!("{identity}\n[identity.jwt.extra]\n"),
            "identity.jwt",
        ),
        (
            identity.replace(
                "issuer = \"https://idp.example.com\"\n",
                "issuer = \"https://idp.example.com\"\nscopes = [\"profile\"]\n",
            ),
            "identity.oidc.scopes",
        ),
        (
            identity.replace(
                "issuer = \"https://idp.example.com\"\n",
                "issuer = \"https://idp.example.com\"\nscopes = [\"openid\", \"a b\"]\n",
            ),
            "identity.oidc.scopes",
        ),
        (
            identity.replace(
                "issuer = \"https://idp.example.com\"\n",
                "issuer = \"https://idp.example.com\"\nclient_id = \"gateway\"\n",
            ),
            "client_secret",
        ),
    ] {
        let err = load(&format!("{VALID}{text}"), &[]).unwrap_err();
        assert!(err.contains(key), "{key}: {err}");
    }
    // A key may not take the name services are known by.
    let err = load(
        &VALID.replace("name = \"web\"", "name = \"service:web\""),
        &[],
    )
    .unwrap_err();
    assert!(err.contains("auth.api_keys[0].name"), "{err}");
    // An http issuer is fine on loopback (tests, a provider beside the gateway).
    let local = identity.replace("https://idp.example.com", "http://127.0.0.1:9000");
    assert!(load(&format!("{VALID}{local}"), &[]).is_ok());
}
