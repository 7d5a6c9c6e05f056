//! The gateway's own authentication: `Authorization: Bearer <api key>`,
//! checked against configured SHA-256 hashes in constant time, with scopes.

use std::{collections::BTreeSet, num::NonZeroU32, sync::Arc, time::Duration};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use futures_util::future::LocalBoxFuture;
use governor::{
    DefaultDirectRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{configuration::ApiKeySettings, error::ApiError, shared::SharedRedis};

pub use crate::configuration::Scope;

pub fn sha256_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

struct KeyEntry {
    name: Arc<str>,
    digest: [u8; 32],
    scopes: BTreeSet<Scope>,
    /// `None`: no limit.
    limiter: Option<DefaultDirectRateLimiter>,
    rate_per_second: u32,
    burst: u32,
}

/// The configured keys, held as digests only.
pub struct ApiKeys {
    keys: Vec<KeyEntry>,
    /// With `[redis]`: limits counted for all instances together.
    shared: Option<Arc<SharedRedis>>,
}

/// GCRA (the generic cell rate algorithm) in one atomic step, on Redis's own
/// clock so instances' clocks do not matter. KEYS[1]: the key's theoretical
/// arrival time (µs); ARGV: emission interval (µs) and burst. Returns
/// {1, 0} when admitted, {0, µs to wait} when not.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - (burst - 1) * interval
if now < allow_at then
    return {0, allow_at - now}
end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1000)
return {1, 0}
"#;

impl ApiKeys {
    /// Expects settings already validated (64 hex digits per key).
    pub fn new(settings: &[ApiKeySettings]) -> Self {
        let keys = settings
            .iter()
            .map(|k| {
                let mut digest = [0u8; 32];
                // Validation guarantees 64 hex digits; a bad one would simply never match.
                let _ = hex::decode_to_slice(&k.sha256, &mut digest);
                let limiter = NonZeroU32::new(k.rate_per_second).map(|rate| {
                    let burst = NonZeroU32::new(k.burst).unwrap_or(rate);
                    RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
                });
                KeyEntry {
                    name: k.name.as_str().into(),
                    digest,
                    scopes: k.scopes.clone(),
                    limiter,
                    rate_per_second: k.rate_per_second,
                    burst: if k.burst == 0 {
                        k.rate_per_second
                    } else {
                        k.burst
                    },
                }
            })
            .collect();
        Self { keys, shared: None }
    }

    /// Counts limits in Redis, for every instance together; each instance's
    /// own budget still answers while Redis cannot.
    pub fn with_shared_limits(mut self, redis: Arc<SharedRedis>) -> Self {
        self.shared = Some(redis);
        self
    }

    /// Finds the caller a presented key belongs to. Every configured digest is
    /// compared, in constant time, so timing says nothing about which matched.
    pub fn authenticate(&self, presented: &str) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for (index, key) in self.keys.iter().enumerate() {
            if bool::from(key.digest.ct_eq(&digest)) {
                found = Some(Caller {
                    name: key.name.clone(),
                    scopes: key.scopes.clone(),
                    index,
                });
            }
        }
        found
    }

    /// Counts one request against the caller's rate; `Err` says how long to wait.
    pub async fn admit(&self, caller: &Caller) -> Result<(), ApiError> {
        let Some(key) = self.keys.get(caller.index) else {
            return Ok(());
        };
        let Some(limiter) = &key.limiter else {
            return Ok(());
        };
        if let Some(redis) = &self.shared {
            match shared_admit(redis, key).await {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => return Err(limited(key, wait)),
                Err(_) => {
                    metrics::counter!("gateway_rate_limit_fallbacks_total").increment(1);
                }
            }
        }
        limiter.check().map_err(|not_until| {
            limited(key, not_until.wait_time_from(DefaultClock::default().now()))
        })
    }
}

fn limited(key: &KeyEntry, wait: Duration) -> ApiError {
    ApiError::RateLimited {
        retry_after: wait,
        per_second: key.rate_per_second,
    }
}

/// One request against the key's shared budget: `Some(wait)` when over it.
async fn shared_admit(
    redis: &SharedRedis,
    key: &KeyEntry,
) -> Result<Option<Duration>, crate::shared::RedisUnavailable> {
    let interval_us = 1_000_000_u64
        .checked_div(u64::from(key.rate_per_second))
        .unwrap_or(1_000_000)
        .max(1);
    let redis_key = redis.key(&format!("rate:{}", hex::encode(key.name.as_bytes())));
    let burst = key.burst.max(1);
    let (admitted, wait_us): (i64, i64) = redis
        .call("rate limit", |mut c| async move {
            redis::Script::new(GCRA)
                .key(redis_key)
                .arg(interval_us)
                .arg(burst)
                .invoke_async(&mut c)
                .await
        })
        .await?;
    Ok((admitted == 0).then(|| Duration::from_micros(u64::try_from(wait_us).unwrap_or(0))))
}

/// An authenticated caller. As an extractor it answers 401 itself when the
/// request carries no valid key; handlers then ask for the scope they need.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: Arc<str>,
    pub scopes: BTreeSet<Scope>,
    index: usize,
}

impl Caller {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(scope))
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let keys = req.app_data::<web::Data<ApiKeys>>().cloned();
        let caller = authenticate(req, keys.as_ref().map(|k| k.get_ref()));
        Box::pin(async move {
            let caller = caller?;
            if let Some(keys) = keys {
                keys.admit(&caller).await?;
            }
            Ok(caller)
        })
    }
}

fn authenticate(req: &HttpRequest, keys: Option<&ApiKeys>) -> Result<Caller, ApiError> {
    let Some(keys) = keys else {
        return Err(ApiError::internal("API keys are not configured in the app"));
    };
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthenticated {
            key_presented: false,
        });
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .filter(|key| !key.is_empty());
    match presented.and_then(|key| keys.authenticate(key)) {
        Some(caller) => {
            tracing::Span::current().record("caller", &*caller.name);
            Ok(caller)
        }
        None => Err(ApiError::Unauthenticated {
            key_presented: true,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ApiKeys {
        ApiKeys::new(&[
            ApiKeySettings {
                name: "reader".into(),
                sha256: sha256_hex("r-key"),
                scopes: [Scope::Read].into(),
                rate_per_second: 0,
                burst: 0,
            },
            ApiKeySettings {
                name: "writer".into(),
                sha256: sha256_hex("w-key"),
                scopes: [Scope::Read, Scope::Write].into(),
                rate_per_second: 1,
                burst: 2,
            },
        ])
    }

    #[test]
    fn a_configured_key_authenticates_as_its_caller() {
        let caller = keys().authenticate("w-key").expect("known key");
        assert_eq!(&*caller.name, "writer");
        assert!(caller.has(Scope::Write));
        assert!(!caller.has(Scope::Secrets));
    }

    #[test]
    fn an_unknown_or_near_miss_key_is_rejected() {
        let keys = keys();
        assert!(keys.authenticate("w-ke").is_none());
        assert!(keys.authenticate("").is_none());
        assert!(keys.authenticate(&sha256_hex("w-key")).is_none());
    }

    #[tokio::test]
    async fn a_key_over_its_burst_is_told_when_to_come_back() {
        let keys = keys();
        let writer = keys.authenticate("w-key").unwrap();
        assert!(keys.admit(&writer).await.is_ok());
        assert!(keys.admit(&writer).await.is_ok());
        match keys.admit(&writer).await {
            Err(ApiError::RateLimited {
                retry_after,
                per_second,
            }) => {
                assert!(retry_after <= std::time::Duration::from_secs(1));
                assert_eq!(per_second, 1);
            }
            other => panic!("{other:?}"),
        }
        let reader = keys.authenticate("r-key").unwrap();
        for _ in 0..1000 {
            assert!(keys.admit(&reader).await.is_ok(), "no limit configured");
        }
    }

    #[test]
    fn sha256_hex_matches_sha256sum() {
        // printf %s sandbox-key | sha256sum
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
