//! The state several instances share, on Redis (or Valkey): one connection
//! that reconnects by itself (redis-rs's `ConnectionManager`), every call
//! bounded by `redis.timeout_ms`, every failure counted. Nothing here ever
//! panics or hangs a request: a Redis that is down or slow is an error the
//! caller decides about (fall back, or fail closed).

use std::{future::Future, time::Duration};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;

use crate::configuration::RedisSettings;

/// Redis could not be used for this call: down, slow, or refusing.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct RedisUnavailable(String);

impl RedisUnavailable {
    pub fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

pub struct SharedRedis {
    client: redis::Client,
    /// Made on first use, so the gateway starts while Redis is down; once
    /// made, the manager reconnects by itself.
    connection: OnceCell<ConnectionManager>,
    prefix: String,
    timeout: Duration,
}

impl SharedRedis {
    /// Reads the settings; connects only when first used.
    pub fn new(settings: &RedisSettings) -> anyhow::Result<Self> {
        let client = redis::Client::open(settings.url.expose_secret())
            .map_err(|e| anyhow::anyhow!("`redis.url` is not usable: {}", e.category()))?;
        Ok(Self {
            client,
            connection: OnceCell::new(),
            prefix: settings.key_prefix.clone(),
            timeout: Duration::from_millis(settings.timeout_ms),
        })
    }

    /// The key `name` under this gateway's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
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
        let result = match self.manager().await {
            Ok(manager) => {
                self.bounded(op(manager), what, || format!("{what}: no answer"))
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(error) = &result {
            tracing::warn!(error = %error, "redis call failed");
            metrics::counter!("gateway_redis_errors_total", "operation" => what).increment(1);
        }
        result
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

    /// Whether Redis answers a PING now, for `/readyz`.
    pub async fn ping(&self) -> Result<(), RedisUnavailable> {
        self.call("ping", |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await
        .map(|_| ())
    }
}
