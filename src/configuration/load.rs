//! Loading the settings: the file, then `GATEWAY__*` variables, then
//! `*_file` secrets, then validation (every fault named by its key).

use std::path::Path;

use config::{Config, Environment, File, FileFormat};

use super::*;

/// Keys whose environment variable is a comma-separated list.
const LIST_KEYS: &[(&str, &str)] = &[
    ("GATEWAY__SERVER__TRUSTED_PROXIES", "server.trusted_proxies"),
    (
        "GATEWAY__SERVER__CORS_ALLOWED_ORIGINS",
        "server.cors_allowed_origins",
    ),
];

/// Credential keys that may instead be given as a path in `<key>_file`.
const FILE_BACKED_KEYS: &[&str] = &[
    "dna.client_id",
    "dna.client_secret",
    "dna.username",
    "dna.password",
    "slitz.username",
    "slitz.password",
    "redis.url",
    "registry.url",
    "identity.oidc.client_secret",
];

impl Settings {
    /// Reads `path` (when given), then `GATEWAY__*` variables from `env`,
    /// then `*_file` secrets, then validates.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = Config::builder();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
            builder = builder.add_source(File::from_str(&text, FileFormat::Toml));
            // Parse errors would otherwise not say which file.
            Config::builder()
                .add_source(File::from_str(&text, FileFormat::Toml))
                .build()
                .map_err(|e| {
                    ConfigError(format!("{}: {}", path.display(), one_line(&e.to_string())))
                })?;
        }
        let mut env: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("GATEWAY__"))
            .collect();
        // `config` splits lists only when it also guesses types for every
        // variable, which would turn a password "0123" into the number 123;
        // so list keys are split here and every other value stays text.
        let lists: Vec<(&str, String)> = LIST_KEYS
            .iter()
            .filter_map(|(var, key)| env.remove(*var).map(|v| (*key, v)))
            .collect();
        builder = builder.add_source(
            Environment::with_prefix("GATEWAY")
                .prefix_separator("__")
                .separator("__")
                .source(Some(env)),
        );
        for (key, list) in lists {
            let items: Vec<String> = list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            builder = builder.set_override(key, items).map_err(config_error)?;
        }
        let layered = builder.build_cloned().map_err(config_error)?;
        for key in FILE_BACKED_KEYS {
            let file_key = format!("{key}_file");
            let Ok(file) = layered.get_string(&file_key) else {
                continue;
            };
            if layered.get_string(key).is_ok() {
                return Err(bad(
                    key,
                    format!("set both `{key}` and `{file_key}`; keep one"),
                ));
            }
            let value = std::fs::read_to_string(&file)
                .map_err(|e| bad(&file_key, format!("cannot read {file}: {e}")))?;
            // Secret files usually end with a newline that is not part of the secret.
            let value = value.trim_end_matches(['\r', '\n']).to_owned();
            builder = builder.set_override(*key, value).map_err(config_error)?;
        }
        let settings: Settings = builder
            .build()
            .and_then(Config::try_deserialize)
            .map_err(config_error)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot, naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.auth.api_keys.is_empty() && self.identity.jwt.is_none() {
            return Err(bad(
                "auth.api_keys",
                "no API key is configured and [identity.jwt] is not set, so no caller could use the gateway; add an [[auth.api_keys]] table",
            ));
        }
        self.identity.validate()?;
        let mut names = BTreeSet::new();
        for (i, key) in self.auth.api_keys.iter().enumerate() {
            let at = |field: &str| format!("auth.api_keys[{i}].{field}");
            if key.name.trim().is_empty() {
                return Err(bad(&at("name"), "must not be empty"));
            }
            if let Some(prefix) = [super::SERVICE_PREFIX, super::PERSON_PREFIX]
                .into_iter()
                .find(|p| key.name.starts_with(p))
            {
                return Err(bad(
                    &at("name"),
                    format!(
                        "`{}` starts with `{prefix}`, which names callers the identity provider vouches for",
                        key.name,
                    ),
                ));
            }
            if !names.insert(key.name.as_str()) {
                return Err(bad(&at("name"), format!("`{}` is used twice", key.name)));
            }
            if key.sha256.len() != 64 || !key.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(
                    &at("sha256"),
                    "must be 64 hex digits (the SHA-256 of the key, e.g. from `printf %s KEY | sha256sum`)",
                ));
            }
            if key.scopes.is_empty() {
                return Err(bad(
                    &at("scopes"),
                    "must name at least one of read, write, secrets, audit",
                ));
            }
        }
        for (key, url) in [
            ("dna.base_url", &self.dna.base_url),
            ("slitz.base_url", &self.slitz.base_url),
        ] {
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(bad(key, format!("`{url}` is not an http(s) URL")));
            }
        }
        let currency = &self.slitz.currency;
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(bad(
                "slitz.currency",
                format!("`{currency}` is not an ISO 4217 code such as SEK"),
            ));
        }
        for origin in &self.server.cors_allowed_origins {
            let plain = origin == "*"
                || Url::parse(origin).is_ok_and(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.path() == "/"
                        && !origin.ends_with('/')
                });
            if !plain {
                return Err(bad(
                    "server.cors_allowed_origins",
                    format!(
                        "`{origin}` is not an origin such as https://app.example.com (scheme, host, port; no path) or *"
                    ),
                ));
            }
        }
        use secrecy::ExposeSecret;
        let registry = self.registry.url.expose_secret();
        let scheme = registry.split_once(':').map(|(scheme, _)| scheme);
        let well_formed = match scheme {
            Some("sqlite") => {
                !registry
                    .trim_start_matches("sqlite:")
                    .trim_start_matches('/')
                    .is_empty()
                    || registry.contains(":memory:")
            }
            Some("postgres" | "postgresql") => {
                Url::parse(registry).is_ok_and(|u| u.host().is_some())
            }
            _ => false,
        };
        if !well_formed {
            return Err(bad(
                "registry.url",
                "is not sqlite://PATH (a file) or postgres://user:password@host:port/db",
            ));
        }
        self.check_bounds()?;
        Ok(())
    }

    /// Every number within a range that makes sense, so no arithmetic on it
    /// can overflow and no typo (an extra zero or three) goes unnoticed.
    fn check_bounds(&self) -> Result<(), ConfigError> {
        const MONTH_S: u64 = 31 * 24 * 3600;
        let (s, c) = (&self.server, &self.cache);
        within(
            "server.max_body_bytes",
            s.max_body_bytes as u64,
            1,
            64 << 20,
        )?;
        within("server.workers", s.workers as u64, 0, 1024)?;
        within(
            "server.shutdown_grace_seconds",
            s.shutdown_grace_seconds,
            0,
            600,
        )?;
        within(
            "server.client_request_timeout_ms",
            s.client_request_timeout_ms,
            0,
            3_600_000,
        )?;
        within("server.keep_alive_seconds", s.keep_alive_seconds, 0, 3_600)?;
        within(
            "server.max_connections",
            s.max_connections as u64,
            1,
            1_000_000,
        )?;
        self.upstream.validate()?;
        within("cache.ttl_seconds", c.ttl_seconds, 0, MONTH_S)?;
        within("cache.stale_seconds", c.stale_seconds, 0, MONTH_S)?;
        within("cache.max_bytes", c.max_bytes, 1, 64 << 30)?;
        for (route, ttl) in &c.routes {
            within(&format!("cache.routes.{}", route.name()), *ttl, 0, MONTH_S)?;
        }
        if let Some(redis) = &self.redis {
            within("redis.timeout_ms", redis.timeout_ms, 1, 10_000)?;
            use secrecy::ExposeSecret;
            let url = Url::parse(redis.url.expose_secret())
                .map_err(|_| bad("redis.url", "is not a URL such as redis://redis:6379/0"))?;
            if !matches!(url.scheme(), "redis" | "rediss") || url.host().is_none() {
                return Err(bad(
                    "redis.url",
                    format!(
                        "must be redis://host:port/db or rediss:// (TLS), not {}://",
                        url.scheme()
                    ),
                ));
            }
            if redis.key_prefix.is_empty() || redis.key_prefix.chars().any(char::is_control) {
                return Err(bad(
                    "redis.key_prefix",
                    "must be plain, non-empty text such as gateway:",
                ));
            }
        }
        let i = &self.idempotency;
        within("idempotency.ttl_seconds", i.ttl_seconds, 1, MONTH_S)?;
        within("idempotency.max_keys", i.max_keys, 1, 100_000_000)?;
        let r = &self.registry;
        within(
            "registry.max_connections",
            u64::from(r.max_connections),
            1,
            1_000,
        )?;
        within("registry.timeout_ms", r.timeout_ms, 1, 600_000)?;
        if let Some(days) = r.audit_retention_days {
            within("registry.audit_retention_days", u64::from(days), 1, 36_500)?;
        }
        let e = &self.events;
        within("events.poll_seconds", e.poll_seconds, 1, 3_600)?;
        within("events.heartbeat_seconds", e.heartbeat_seconds, 1, 300)?;
        within("events.replay", e.replay, 1, 100_000)?;
        within("events.buffer", e.buffer, 1, 100_000)?;
        within("events.max_stream_seconds", e.max_stream_seconds, 0, 86_400)?;
        within(
            "events.max_subscribers_per_key",
            e.max_subscribers_per_key,
            1,
            100_000,
        )?;
        within(
            "overview.expiring_days",
            self.overview.expiring_days.into(),
            0,
            3650,
        )?;
        for (n, key) in self.auth.api_keys.iter().enumerate() {
            let at = |field: &str| format!("auth.api_keys[{n}].{field}");
            within(
                &at("rate_per_second"),
                key.rate_per_second.into(),
                0,
                1_000_000,
            )?;
            within(&at("burst"), key.burst.into(), 0, 1_000_000)?;
        }
        Ok(())
    }
}

pub(super) fn within(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(bad(
            key,
            format!("is {value}; it must be from {min} to {max}"),
        ))
    }
}

/// `config` names the key in most of its messages already; keep them to one line.
fn config_error(e: config::ConfigError) -> ConfigError {
    ConfigError(one_line(&e.to_string()))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
