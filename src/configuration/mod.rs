//! The configuration contract (docs/configuration.md): a TOML file, overridden by
//! `GATEWAY__SECTION__KEY` environment variables, with credentials also
//! readable from files (`*_file` keys, or `GATEWAY__SECTION__KEY_FILE`) for
//! container secrets. Unknown keys are errors, so a typo fails at start.

use std::{collections::BTreeSet, net::SocketAddr, path::PathBuf};

use chrono_tz::Tz;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

mod identity;
mod load;

pub use identity::{IdentitySettings, JwtSettings, OidcSettings, PERSON_PREFIX, SERVICE_PREFIX};
use load::within;

/// What a key may do. Its name (lowercase) is the same to serde and strum.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Scope {
    /// Read account, billing, support, domains and services.
    Read,
    /// Change the account and DNA customers.
    Write,
    /// See upstream credentials stored on services.
    Secrets,
    /// Read the audit trail: who made which DNA write, when, and how it ended.
    Audit,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The scope named exactly `name`, if any.
    pub fn named(name: &str) -> Option<Self> {
        <Self as strum::VariantArray>::VARIANTS
            .iter()
            .copied()
            .find(|scope| scope.as_str() == name)
    }
}

/// The cached routes; their names (lowercase, the same to serde and strum)
/// are the keys of `[cache.routes]`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
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
    /// Every cached route, in declaration order.
    pub const ALL: &'static [Route] = <Self as strum::VariantArray>::VARIANTS;

    /// The route whose name is `name`, if any.
    pub fn named(name: &str) -> Option<Route> {
        name.parse().ok()
    }

    pub fn name(self) -> &'static str {
        self.into()
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
    /// Callers the identity provider vouches for, beside the API keys.
    #[serde(default)]
    pub identity: IdentitySettings,
    /// Shared state for several instances; absent: each instance keeps its own.
    #[serde(default)]
    pub redis: Option<RedisSettings>,
    /// The customer registry and audit trail's database.
    #[serde(default)]
    pub registry: RegistrySettings,
}

/// `[registry]`: where every DNA write is recorded (the customer registry
/// and the audit trail).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// `sqlite://PATH` (a file, created with its directory; relative to the
    /// working directory) or `postgres://user:password@host:port/db` for
    /// several instances. Held as a secret: it may carry a password.
    pub url: SecretString,
    /// Connections in the pool.
    pub max_connections: u32,
    /// The longest a request waits for a connection (and SQLite for a busy
    /// writer) before a 503.
    pub timeout_ms: u64,
    /// Audit entries older than this are removed (hourly); absent: kept.
    pub audit_retention_days: Option<u32>,
}

/// The embedded default: a SQLite file under the data directory.
pub const DEFAULT_REGISTRY_URL: &str = "sqlite://data/registry.sqlite3";

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            url: SecretString::from(DEFAULT_REGISTRY_URL),
            max_connections: 8,
            timeout_ms: 5_000,
            audit_retention_days: None,
        }
    }
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
    /// A stream ends this long after it opened, and the client reconnects
    /// with `Last-Event-ID` (missing nothing): spreads long-lived streams
    /// over instances added since, or suits a proxy that caps a
    /// connection's life. 0 (the default): streams last until shutdown.
    pub max_stream_seconds: u64,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            poll_seconds: 30,
            heartbeat_seconds: 15,
            replay: 1000,
            buffer: 256,
            max_subscribers_per_key: 16,
            max_stream_seconds: 0,
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

/// An upstream; its name (lowercase) is the one in `[upstream.<name>]`, in
/// metrics and logs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::Display, strum::VariantArray,
)]
#[strum(serialize_all = "lowercase")]
pub enum Upstream {
    Dna,
    Slitz,
}

impl Upstream {
    pub const ALL: &'static [Upstream] = <Self as strum::VariantArray>::VARIANTS;

    pub fn as_str(self) -> &'static str {
        self.into()
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
        for &upstream in Upstream::ALL {
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
