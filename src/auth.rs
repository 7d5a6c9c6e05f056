//! The gateway's own authentication: `Authorization: Bearer <api key>`,
//! checked against configured SHA-256 hashes in constant time, with scopes.

use std::{collections::BTreeSet, future::Ready, num::NonZeroU32, sync::Arc};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use governor::{
    DefaultDirectRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{configuration::ApiKeySettings, error::ApiError};

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
}

/// The configured keys, held as digests only.
pub struct ApiKeys {
    keys: Vec<KeyEntry>,
}

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
                }
            })
            .collect();
        Self { keys }
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
    pub fn admit(&self, caller: &Caller) -> Result<(), ApiError> {
        let Some(key) = self.keys.get(caller.index) else {
            return Ok(());
        };
        match &key.limiter {
            Some(limiter) => limiter.check().map_err(|not_until| ApiError::RateLimited {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
                per_second: key.rate_per_second,
            }),
            None => Ok(()),
        }
    }
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
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Caller, ApiError> {
    let Some(keys) = req.app_data::<web::Data<ApiKeys>>() else {
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
    let caller = presented.and_then(|key| keys.authenticate(key));
    match caller {
        Some(caller) => {
            tracing::Span::current().record("caller", &*caller.name);
            keys.admit(&caller)?;
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

    #[test]
    fn a_key_over_its_burst_is_told_when_to_come_back() {
        let keys = keys();
        let writer = keys.authenticate("w-key").unwrap();
        assert!(keys.admit(&writer).is_ok());
        assert!(keys.admit(&writer).is_ok());
        match keys.admit(&writer) {
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
            assert!(keys.admit(&reader).is_ok(), "no limit configured");
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
