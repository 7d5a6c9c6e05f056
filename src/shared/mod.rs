//! The state several instances share, on Redis (or Valkey): one connection
//! that reconnects by itself (redis-rs's `ConnectionManager`), every call
//! bounded by `redis.timeout_ms`, every failure counted. Nothing here ever
//! panics or hangs a request: a Redis that is down or slow is an error the
//! caller decides about (fall back, or fail closed).
//!
//! A stalled Redis is noticed once, not per request: after
//! [`FAILURES_TO_SKIP`] consecutive failed or late calls, calls fail at once
//! without waiting on Redis (callers take their fallback: local rate-limit
//! budgets, the local cache only, keyed creates failing closed), while one
//! background task pings Redis every [`PROBE_EVERY`] until it answers; then
//! calls go to Redis again. `gateway_redis_up` and `/readyz` show the state.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;

use crate::configuration::RedisSettings;

pub mod conventions;
pub use conventions::Keys;

/// Redis could not be used for this call: down, slow, or refusing.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct RedisUnavailable(String);

impl RedisUnavailable {
    pub fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

/// Consecutive failed or late Redis calls after which calls stop waiting on it.
pub const FAILURES_TO_SKIP: u32 = 3;
/// How often a skipped Redis is pinged in the background.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);

/// Whether Redis is being waited on, shared with the background probe.
#[derive(Debug, Default)]
struct Health {
    failures: AtomicU32,
    /// Calls fail at once while set; the probe clears it.
    skipped: AtomicBool,
}

impl Health {
    fn succeeded(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// Counts a failure; true when it is the one that starts skipping.
    fn failed(&self) -> bool {
        let failures = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        failures >= FAILURES_TO_SKIP
            && self
                .skipped
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    fn recovered(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.skipped.store(false, Ordering::Release);
        metrics::gauge!("gateway_redis_up").set(1.0);
    }
}

pub struct SharedRedis {
    client: redis::Client,
    /// Made on first use, so the gateway starts while Redis is down; once
    /// made, the manager reconnects by itself.
    connection: OnceCell<ConnectionManager>,
    keys: Keys,
    timeout: Duration,
    health: Arc<Health>,
}

impl SharedRedis {
    /// Reads the settings; connects only when first used.
    pub fn new(settings: &RedisSettings) -> anyhow::Result<Self> {
        let client = redis::Client::open(settings.url.expose_secret())
            .map_err(|e| anyhow::anyhow!("`redis.url` is not usable: {}", e.category()))?;
        // Up until it fails: the gauge is there from the start.
        metrics::gauge!("gateway_redis_up").set(1.0);
        Ok(Self {
            client,
            connection: OnceCell::new(),
            keys: Keys::new(&settings.key_prefix),
            timeout: Duration::from_millis(settings.timeout_ms),
            health: Arc::default(),
        })
    }

    /// The names of this gateway's keys (see [`conventions`]).
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    async fn manager(&self) -> Result<ConnectionManager, RedisUnavailable> {
        let connect = self.connection.get_or_try_init(|| async {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(self.timeout))
                .set_number_of_retries(1);
            ConnectionManager::new_with_config(self.client.clone(), config).await
        });
        self.bounded(connect, "cannot connect", || "no connection".into())
            .await
            .cloned()
    }

    /// `future` within `redis.timeout_ms`; its error is `failed: <category>`,
    /// running late is `<late()> within N ms` (built only then).
    async fn bounded<T>(
        &self,
        future: impl Future<Output = redis::RedisResult<T>>,
        failed: &str,
        late: impl FnOnce() -> String,
    ) -> Result<T, RedisUnavailable> {
        match tokio::time::timeout(self.timeout, future).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(RedisUnavailable(format!("{failed}: {}", e.category()))),
            Err(_) => Err(RedisUnavailable(format!(
                "{} within {} ms",
                late(),
                self.timeout.as_millis()
            ))),
        }
    }

    /// Runs one Redis operation within `redis.timeout_ms`; `what` names it
    /// in logs and metrics.
    pub async fn call<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, RedisUnavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if self.is_skipped() {
            metrics::counter!("gateway_redis_skipped_total", "operation" => what).increment(1);
            return Err(RedisUnavailable(format!(
                "{what}: skipped: redis stopped answering and is being probed"
            )));
        }
        let result = match self.manager().await {
            Ok(manager) => {
                self.bounded(op(manager), what, || format!("{what}: no answer"))
                    .await
            }
            Err(e) => Err(e),
        };
        match &result {
            Ok(_) => self.health.succeeded(),
            Err(error) => {
                tracing::warn!(error = %error, "redis call failed");
                metrics::counter!("gateway_redis_errors_total", "operation" => what).increment(1);
                if self.health.failed() {
                    self.start_probing();
                }
            }
        }
        result
    }

    /// True while calls fail at once because Redis stopped answering.
    pub fn is_skipped(&self) -> bool {
        self.health.skipped.load(Ordering::Acquire)
    }

    /// Stops waiting on Redis and pings it in the background until it
    /// answers, then lets calls through again.
    fn start_probing(&self) {
        tracing::warn!(
            failures = FAILURES_TO_SKIP,
            probe_every_ms = PROBE_EVERY.as_millis() as u64,
            "redis stopped answering: calls no longer wait on it (local fallbacks) until a background ping succeeds"
        );
        metrics::gauge!("gateway_redis_up").set(0.0);
        let health = Arc::clone(&self.health);
        let client = self.client.clone();
        let manager = self.connection.get().cloned();
        let timeout = self.timeout;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                if ping(&client, manager.clone(), timeout).await {
                    tracing::info!("redis answers again: calls go to it again");
                    health.recovered();
                    return;
                }
            }
        });
    }

    /// A connection of its own for pub/sub, made within `redis.timeout_ms`.
    pub async fn subscriber(&self) -> Result<redis::aio::PubSub, RedisUnavailable> {
        self.bounded(self.client.get_async_pubsub(), "cannot subscribe", || {
            "no subscription".into()
        })
        .await
    }

    /// `redis.timeout_ms`: how long any one Redis call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether Redis answers a PING now, for `/readyz`: while calls skip
    /// it, that it is being probed.
    pub async fn ping(&self) -> Result<(), RedisUnavailable> {
        self.call("ping", |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await
        .map(|_| ())
    }
}

/// One background PING within `timeout`, on the shared connection when it
/// was made, else on a connection of its own.
async fn ping(
    client: &redis::Client,
    manager: Option<ConnectionManager>,
    timeout: Duration,
) -> bool {
    let ping = async {
        match manager {
            Some(mut manager) => redis::cmd("PING").query_async::<String>(&mut manager).await,
            None => {
                let mut connection = client.get_multiplexed_async_connection().await?;
                redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
            }
        }
    };
    matches!(tokio::time::timeout(timeout, ping).await, Ok(Ok(_)))
}
