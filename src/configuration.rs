//! The configuration contract (docs/configuration.md): a TOML file, overridden by
//! `GATEWAY__SECTION__KEY` environment variables, with credentials also
//! readable from files (`*_file` keys, or `GATEWAY__SECTION__KEY_FILE`) for
//! container secrets. Unknown keys are errors, so a typo fails at start.

use std::{collections::BTreeSet, net::SocketAddr, path::Path, path::PathBuf};

use chrono_tz::Tz;
use config::{Config, Environment, File, FileFormat};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read account, billing, support, domains and services.
    Read,
    /// Change the account and DNA customers.
    Write,
    /// See upstream credentials stored on services.
    Secrets,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Secrets => "secrets",
        }
    }
}

/// The cached routes; their names are the keys of `[cache.routes]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    Account,
    Balance,
    Invoices,
    Invoice,
    Tickets,
    Ticket,
    Domains,
    Domain,
    Availability,
    Services,
    Service,
}

impl Route {
    pub const ALL: [Route; 11] = [
        Route::Account,
        Route::Balance,
        Route::Invoices,
        Route::Invoice,
        Route::Tickets,
        Route::Ticket,
        Route::Domains,
        Route::Domain,
        Route::Availability,
        Route::Services,
        Route::Service,
    ];

    /// The route whose name is `name`, if any.
    pub fn named(name: &str) -> Option<Route> {
        Route::ALL.into_iter().find(|r| r.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Route::Account => "account",
            Route::Balance => "balance",
            Route::Invoices => "invoices",
            Route::Invoice => "invoice",
            Route::Tickets => "tickets",
            Route::Ticket => "ticket",
            Route::Domains => "domains",
            Route::Domain => "domain",
            Route::Availability => "availability",
            Route::Services => "services",
            Route::Service => "service",
        }
    }
}

/// A configuration that cannot be used, described in one line naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

fn bad(key: &str, problem: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("`{key}`: {problem}"))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub auth: AuthSettings,
    pub dna: DnaSettings,
    pub slitz: SlitzSettings,
    #[serde(default)]
    pub cache: CacheSettings,
    #[serde(default)]
    pub upstream: UpstreamSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub idempotency: IdempotencySettings,
    #[serde(default)]
    pub overview: OverviewSettings,
    #[serde(default)]
    pub events: EventSettings,
    /// Shared state for several instances; absent: each instance keeps its own.
    #[serde(default)]
    pub redis: Option<RedisSettings>,
}

/// `[redis]`: where instances share their state (Idempotency-Keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://[user:password@]host:port/db`, or `rediss://` for TLS. Held
    /// as a secret: it may carry the password.
    pub url: SecretString,
    /// Prefix of every key, so several gateways can share one Redis.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// The longest any one Redis call may take before the gateway falls back
    /// (or, for an Idempotency-Key, fails closed with a 503).
    #[serde(default = "default_redis_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default, rename = "url_file")]
    _url_file: Option<PathBuf>,
}

impl RedisSettings {
    pub fn new(url: &str, key_prefix: &str, timeout_ms: u64) -> Self {
        Self {
            url: url.into(),
            key_prefix: key_prefix.to_owned(),
            timeout_ms,
            _url_file: None,
        }
    }
}

fn default_key_prefix() -> String {
    "gateway:".to_owned()
}

/// Not 50 ms, as first planned: a busy Redis (an fsync, a slow command from
/// another client) passes that now and then, and an Idempotency-Key fails
/// closed: a 50 ms bound would turn such moments into 503s on creates.
fn default_redis_timeout_ms() -> u64 {
    200
}

/// `GET /v1/overview`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OverviewSettings {
    /// Domains expiring within this many days are listed.
    pub expiring_days: u32,
}

impl Default for OverviewSettings {
    fn default() -> Self {
        Self { expiring_days: 30 }
    }
}

/// `[events]`: the change stream (`GET /v1/events`) and the watcher that
/// polls Slitz for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventSettings {
    /// How often the watcher reads Slitz's lists while anyone is subscribed.
    pub poll_seconds: u64,
    /// A comment line this often on an idle stream, so proxies keep it open.
    pub heartbeat_seconds: u64,
    /// How many recent events `Last-Event-ID` can replay.
    pub replay: u64,
    /// Events a subscriber may fall behind by before it is dropped with a
    /// `reset` (its buffer; the others and the watcher never wait for it).
    pub buffer: u64,
    /// Open streams one API key may hold at once.
    pub max_subscribers_per_key: u64,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            poll_seconds: 30,
            heartbeat_seconds: 15,
            replay: 1000,
            buffer: 256,
            max_subscribers_per_key: 16,
        }
    }
}

/// How long `Idempotency-Key`s are remembered, and how many.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdempotencySettings {
    pub ttl_seconds: u64,
    pub max_keys: u64,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        Self {
            ttl_seconds: 24 * 3600,
            max_keys: 100_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on; the CLI's `--listen` overrides it.
    pub listen: SocketAddr,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Origins browsers may call the API from (CORS); `*` for any; empty for
    /// none (same-origin only, e.g. through the reverse proxy).
    pub cors_allowed_origins: Vec<String>,
    /// After SIGTERM or SIGINT: how long requests in flight may take to
    /// finish before the gateway exits anyway.
    pub shutdown_grace_seconds: u64,
    /// How long a client may take to send a request's head (line and
    /// headers) after connecting or after its previous request; a slower
    /// one gets a 408 and is disconnected, so slow-header clients cannot
    /// hold connections. 0: no limit. The HTTP server's default, 5000.
    pub client_request_timeout_ms: u64,
    /// How long an idle keep-alive connection is kept open for its next
    /// request. 0: no keep-alive (one request per connection). The HTTP server's
    /// default, 5; keep it above the reverse proxy's upstream keepalive
    /// timeout (nginx's `keepalive_timeout` in an `upstream` block, 60 s by
    /// default) or set that lower, so the proxy never reuses a connection the
    /// gateway is closing.
    pub keep_alive_seconds: u64,
    /// Connections each worker holds open at most; past it, new connections
    /// wait in the listen backlog until one closes. The HTTP server's default, 25,000.
    pub max_connections: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            trusted_proxies: vec![ipnet::IpNet::from(std::net::IpAddr::from([127, 0, 0, 1]))],
            max_body_bytes: 65_536,
            workers: 0,
            cors_allowed_origins: Vec::new(),
            shutdown_grace_seconds: 10,
            client_request_timeout_ms: 5_000,
            keep_alive_seconds: 5,
            max_connections: 25_000,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    pub api_keys: Vec<ApiKeySettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    /// Who the caller is, for logs and metrics.
    pub name: String,
    /// Hex SHA-256 of the key; the key itself is never stored.
    pub sha256: String,
    pub scopes: BTreeSet<Scope>,
    /// Sustained requests per second this key may make; 0 for no limit.
    #[serde(default = "default_rate")]
    pub rate_per_second: u32,
    /// Requests this key may make at once before the rate applies.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

/// No limit unless ops set one: a busy frontend server is one key for many
/// users, and an implicit limit would turn its first busy hour into 429s.
fn default_rate() -> u32 {
    0
}

/// 0: as many as `rate_per_second`.
fn default_burst() -> u32 {
    0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnaSettings {
    /// Base URL including `/api`; the gateway appends `/oauth/token`, `/residential/client/...`.
    pub base_url: Url,
    pub client_id: String,
    pub client_secret: SecretString,
    pub username: String,
    pub password: SecretString,
    #[serde(default)]
    pub scope: String,
    // `*_file` twins are read into their key before deserialization; they are
    // declared so `deny_unknown_fields` accepts them.
    #[serde(default, rename = "client_id_file")]
    _client_id_file: Option<PathBuf>,
    #[serde(default, rename = "client_secret_file")]
    _client_secret_file: Option<PathBuf>,
    #[serde(default, rename = "username_file")]
    _username_file: Option<PathBuf>,
    #[serde(default, rename = "password_file")]
    _password_file: Option<PathBuf>,
}

impl DnaSettings {
    pub fn new(
        base_url: Url,
        client_id: String,
        client_secret: SecretString,
        username: String,
        password: SecretString,
        scope: String,
    ) -> Self {
        Self {
            base_url,
            client_id,
            client_secret,
            username,
            password,
            scope,
            _client_id_file: None,
            _client_secret_file: None,
            _username_file: None,
            _password_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlitzSettings {
    /// Base URL including `/api`; the gateway appends `/details`, `/invoice/...`.
    pub base_url: Url,
    /// The client-area login: the account's email address.
    pub username: String,
    pub password: SecretString,
    /// Zone in which Slitz's zone-less date-times are read.
    #[serde(default = "default_timezone")]
    pub timezone: Tz,
    /// Currency of amounts Slitz sends without one (the balance).
    #[serde(default = "default_currency")]
    pub currency: String,
    #[serde(default, rename = "username_file")]
    _username_file: Option<PathBuf>,
    #[serde(default, rename = "password_file")]
    _password_file: Option<PathBuf>,
}

impl SlitzSettings {
    pub fn new(
        base_url: Url,
        username: String,
        password: SecretString,
        timezone: Tz,
        currency: String,
    ) -> Self {
        Self {
            base_url,
            username,
            password,
            timezone,
            currency,
            _username_file: None,
            _password_file: None,
        }
    }
}

fn default_timezone() -> Tz {
    Tz::UTC
}

fn default_currency() -> String {
    "SEK".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// TTL of every cached route without its own entry in `routes`.
    pub ttl_seconds: u64,
    /// How long after expiry an entry may still answer while Slitz fails.
    pub stale_seconds: u64,
    /// Bound on the cache, in bytes of cached answers.
    pub max_bytes: u64,
    /// Per-route TTLs in seconds, by route name (`account`, `invoices`, …).
    pub routes: std::collections::BTreeMap<Route, u64>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            ttl_seconds: 60,
            stale_seconds: 600,
            max_bytes: 64 * 1024 * 1024,
            routes: Default::default(),
        }
    }
}

/// `[upstream]`: how every upstream call is made. Its keys are the defaults
/// of both upstreams; `[upstream.dna]` and `[upstream.slitz]` may override
/// any of them for one upstream ([`UpstreamSettings::of`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamSettings {
    pub connect_timeout_ms: u64,
    /// Whole request, per attempt.
    pub timeout_ms: u64,
    /// Retries of idempotent reads only.
    pub retries: u32,
    /// The most a caller waits for one gateway request, retries included.
    pub deadline_ms: u64,
    /// Consecutive faults that open a circuit breaker: an operation's (its
    /// 5xx, timeouts, resets), or the whole upstream's (connections refused
    /// or failing).
    pub breaker_failures: u32,
    /// How long an open breaker fails fast before one probe is let through.
    pub breaker_open_ms: u64,
    /// Calls in flight to one upstream at most; more wait briefly, then get a 503.
    pub max_concurrency: usize,
    /// Whether the calls allowed in flight follow the upstream's latency
    /// (a gradient limit under `max_concurrency`): when it slows down, fewer
    /// calls go out and callers beyond them get a 503 at once instead of
    /// queueing. Off by default: see docs/operations.md.
    pub adaptive_concurrency: bool,
    /// `[upstream.dna]`: DNA's own values for any key above.
    pub dna: UpstreamOverrides,
    /// `[upstream.slitz]`: Slitz's own values for any key above.
    pub slitz: UpstreamOverrides,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 2_000,
            timeout_ms: 10_000,
            retries: 2,
            deadline_ms: 15_000,
            breaker_failures: 5,
            breaker_open_ms: 30_000,
            max_concurrency: 64,
            adaptive_concurrency: false,
            dna: UpstreamOverrides::default(),
            slitz: UpstreamOverrides::default(),
        }
    }
}

/// One upstream's own values for keys of `[upstream]`; an absent key keeps
/// `[upstream]`'s.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamOverrides {
    pub connect_timeout_ms: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub retries: Option<u32>,
    pub deadline_ms: Option<u64>,
    pub breaker_failures: Option<u32>,
    pub breaker_open_ms: Option<u64>,
    pub max_concurrency: Option<usize>,
    pub adaptive_concurrency: Option<bool>,
}

impl UpstreamOverrides {
    /// The keys this table sets, by name.
    fn set_keys(&self) -> Vec<&'static str> {
        let Self {
            connect_timeout_ms,
            timeout_ms,
            retries,
            deadline_ms,
            breaker_failures,
            breaker_open_ms,
            max_concurrency,
            adaptive_concurrency,
        } = self;
        [
            ("connect_timeout_ms", connect_timeout_ms.is_some()),
            ("timeout_ms", timeout_ms.is_some()),
            ("retries", retries.is_some()),
            ("deadline_ms", deadline_ms.is_some()),
            ("breaker_failures", breaker_failures.is_some()),
            ("breaker_open_ms", breaker_open_ms.is_some()),
            ("max_concurrency", max_concurrency.is_some()),
            ("adaptive_concurrency", adaptive_concurrency.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }
}

/// An upstream; its name is the one in `[upstream.<name>]`, in metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    Dna,
    Slitz,
}

impl Upstream {
    pub const ALL: [Upstream; 2] = [Upstream::Dna, Upstream::Slitz];

    pub fn as_str(self) -> &'static str {
        match self {
            Upstream::Dna => "dna",
            Upstream::Slitz => "slitz",
        }
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl UpstreamSettings {
    /// The policy of `upstream`: `[upstream]` with that upstream's overrides
    /// applied, and no overrides of its own.
    pub fn of(&self, upstream: Upstream) -> UpstreamSettings {
        let o = self.overrides(upstream);
        UpstreamSettings {
            connect_timeout_ms: o.connect_timeout_ms.unwrap_or(self.connect_timeout_ms),
            timeout_ms: o.timeout_ms.unwrap_or(self.timeout_ms),
            retries: o.retries.unwrap_or(self.retries),
            deadline_ms: o.deadline_ms.unwrap_or(self.deadline_ms),
            breaker_failures: o.breaker_failures.unwrap_or(self.breaker_failures),
            breaker_open_ms: o.breaker_open_ms.unwrap_or(self.breaker_open_ms),
            max_concurrency: o.max_concurrency.unwrap_or(self.max_concurrency),
            adaptive_concurrency: o.adaptive_concurrency.unwrap_or(self.adaptive_concurrency),
            dna: UpstreamOverrides::default(),
            slitz: UpstreamOverrides::default(),
        }
    }

    fn overrides(&self, upstream: Upstream) -> &UpstreamOverrides {
        match upstream {
            Upstream::Dna => &self.dna,
            Upstream::Slitz => &self.slitz,
        }
    }

    /// The longest any request may wait on upstreams: the larger of the two
    /// upstreams' deadlines.
    pub fn longest_deadline_ms(&self) -> u64 {
        Upstream::ALL
            .iter()
            .map(|upstream| self.of(*upstream).deadline_ms)
            .max()
            .unwrap_or(self.deadline_ms)
    }

    /// Checks `[upstream]`, then each upstream's resolved policy; a fault is
    /// named by the key that set the value (`upstream.slitz.timeout_ms` when
    /// `[upstream.slitz]` sets it, `upstream.timeout_ms` otherwise).
    fn validate(&self) -> Result<(), ConfigError> {
        self.check(|key| format!("upstream.{key}"))?;
        for upstream in Upstream::ALL {
            let (name, set) = (upstream.as_str(), self.overrides(upstream).set_keys());
            self.of(upstream).check(|key| {
                if set.contains(&key) {
                    format!("upstream.{name}.{key}")
                } else {
                    format!("upstream.{key} (used by {name})")
                }
            })?;
        }
        Ok(())
    }

    fn check(&self, key: impl Fn(&'static str) -> String) -> Result<(), ConfigError> {
        const HOUR_MS: u64 = 3_600_000;
        within(
            &key("connect_timeout_ms"),
            self.connect_timeout_ms,
            1,
            HOUR_MS,
        )?;
        within(&key("timeout_ms"), self.timeout_ms, 1, HOUR_MS)?;
        within(&key("deadline_ms"), self.deadline_ms, 1, HOUR_MS)?;
        within(&key("retries"), self.retries.into(), 0, 10)?;
        within(
            &key("breaker_failures"),
            self.breaker_failures.into(),
            1,
            10_000,
        )?;
        within(&key("breaker_open_ms"), self.breaker_open_ms, 1, HOUR_MS)?;
        within(
            &key("max_concurrency"),
            self.max_concurrency as u64,
            1,
            100_000,
        )?;
        if self.deadline_ms < self.timeout_ms {
            return Err(bad(
                &key("deadline_ms"),
                format!(
                    "is {}; it must be at least {} ({})",
                    self.deadline_ms,
                    key("timeout_ms"),
                    self.timeout_ms
                ),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty on a terminal, JSON lines otherwise.
    #[default]
    Auto,
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `gateway=debug,info`; `RUST_LOG` wins.
    pub filter: String,
    /// Whether each request is logged on the access log (one line per
    /// request, apart from the diagnostic lines `filter` selects).
    pub access: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            filter: "info".to_owned(),
            access: true,
        }
    }
}

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
        if self.auth.api_keys.is_empty() {
            return Err(bad(
                "auth.api_keys",
                "no API key is configured, so no caller could use the gateway; add an [[auth.api_keys]] table",
            ));
        }
        let mut names = BTreeSet::new();
        for (i, key) in self.auth.api_keys.iter().enumerate() {
            let at = |field: &str| format!("auth.api_keys[{i}].{field}");
            if key.name.trim().is_empty() {
                return Err(bad(&at("name"), "must not be empty"));
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
                    "must name at least one of read, write, secrets",
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
        let e = &self.events;
        within("events.poll_seconds", e.poll_seconds, 1, 3_600)?;
        within("events.heartbeat_seconds", e.heartbeat_seconds, 1, 300)?;
        within("events.replay", e.replay, 1, 100_000)?;
        within("events.buffer", e.buffer, 1, 100_000)?;
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

fn within(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
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
