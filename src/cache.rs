//! The Slitz read cache: normalized answers, serialized once, kept per route
//! for their TTL and a stale grace period after it, bounded by bytes.
//!
//! Concurrent misses on one key make one upstream call: loads go through
//! moka's per-key serialized `and_try_compute_with`, and whoever comes after
//! the loader finds the fresh entry. When Slitz fails and an expired entry is
//! younger than its TTL plus `cache.stale_seconds`, that entry is served as
//! `X-Cache: STALE`.

use std::{
    collections::HashMap,
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::{
    HttpRequest, HttpResponse,
    http::{StatusCode, header},
    web::Bytes,
};
use moka::{Expiry, future::Cache, ops::compute::CompResult, ops::compute::Op};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{configuration::CacheSettings, error::ApiError, upstream::UpstreamError};

pub use crate::configuration::Route;

/// A route and what distinguishes one answer of it from another: path and
/// query parameters, and the caller's view where answers differ by scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub route: Route,
    pub variant: String,
}

impl CacheKey {
    pub fn new(route: Route, variant: impl Into<String>) -> Self {
        Self {
            route,
            variant: variant.into(),
        }
    }
}

/// A serialized answer and when it was fetched.
#[derive(Debug)]
pub struct Cached {
    pub body: Bytes,
    pub etag: String,
    fetched_at: Instant,
    ttl: Duration,
}

impl Cached {
    fn new(body: Vec<u8>, ttl: Duration) -> Self {
        let digest = Sha256::digest(&body);
        Self {
            etag: format!("\"{}\"", hex::encode(digest.get(..16).unwrap_or_default())),
            body: Bytes::from(body),
            fetched_at: Instant::now(),
            ttl,
        }
    }

    fn remaining(&self) -> Duration {
        self.ttl.saturating_sub(self.fetched_at.elapsed())
    }

    fn is_fresh(&self) -> bool {
        self.fetched_at.elapsed() < self.ttl
    }
}

/// How an answer was served, for `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    Stale,
}

impl CacheStatus {
    fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Stale => "STALE",
        }
    }
}

/// Entries live for their TTL plus the stale grace, then leave the cache.
struct TtlPlusGrace(Duration);

impl Expiry<CacheKey, Arc<Cached>> for TtlPlusGrace {
    fn expire_after_create(
        &self,
        _: &CacheKey,
        value: &Arc<Cached>,
        _: Instant,
    ) -> Option<Duration> {
        Some(value.ttl.saturating_add(self.0))
    }

    fn expire_after_update(
        &self,
        _: &CacheKey,
        value: &Arc<Cached>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl.saturating_add(self.0))
    }
}

pub struct ResponseCache {
    entries: Cache<CacheKey, Arc<Cached>>,
    ttls: HashMap<Route, Duration>,
    stale: Duration,
}

impl ResponseCache {
    pub fn new(settings: &CacheSettings) -> Self {
        let stale = Duration::from_secs(settings.stale_seconds);
        let ttls = Route::ALL
            .iter()
            .map(|route| {
                let seconds = settings
                    .routes
                    .get(route)
                    .copied()
                    .unwrap_or(settings.ttl_seconds);
                (*route, Duration::from_secs(seconds))
            })
            .collect();
        let entries = Cache::builder()
            .max_capacity(settings.max_bytes)
            // Weighed by size, so the bound is bytes, not entries.
            .weigher(|key: &CacheKey, value: &Arc<Cached>| {
                let bytes = value
                    .body
                    .len()
                    .saturating_add(value.etag.len())
                    .saturating_add(key.variant.len())
                    .saturating_add(96);
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .expire_after(TtlPlusGrace(stale))
            .support_invalidation_closures()
            .build();
        Self {
            entries,
            ttls,
            stale,
        }
    }

    fn ttl(&self, route: Route) -> Duration {
        self.ttls.get(&route).copied().unwrap_or_default()
    }

    /// The answer for `key`: fresh from the cache, else loaded (once, however
    /// many callers wait), else stale when loading fails with an upstream fault.
    pub async fn get_or_load<T, F, Fut>(
        &self,
        key: CacheKey,
        load: F,
    ) -> Result<(Arc<Cached>, CacheStatus), ApiError>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        if let Some(entry) = self.entries.get(&key).await
            && entry.is_fresh()
        {
            return Ok((entry, CacheStatus::Hit));
        }
        let ttl = self.ttl(key.route);
        let grace = self.stale;
        let result = self
            .entries
            .entry(key)
            .and_try_compute_with(|existing| async move {
                let existing = existing.map(|e| e.into_value());
                if existing.as_ref().is_some_and(|e| e.is_fresh()) {
                    // Another caller loaded it while this one waited.
                    return Ok(Op::Nop);
                }
                match load().await {
                    Ok(value) => {
                        let body = serde_json::to_vec(&value).map_err(|e| {
                            ApiError::Internal(
                                anyhow::Error::new(e).context("Failed to serialize an answer"),
                            )
                        })?;
                        Ok(Op::Put(Arc::new(Cached::new(body, ttl))))
                    }
                    Err(error) if serves_stale(&error) => match existing {
                        Some(old) if old.fetched_at.elapsed() < old.ttl.saturating_add(grace) => {
                            tracing::warn!(error = %error, "serving a stale answer");
                            Ok(Op::Nop)
                        }
                        _ => Err(error),
                    },
                    Err(error) => Err(error),
                }
            })
            .await?;
        match result {
            CompResult::Inserted(entry) | CompResult::ReplacedWith(entry) => {
                Ok((entry.into_value(), CacheStatus::Miss))
            }
            CompResult::Unchanged(entry) => {
                let entry = entry.into_value();
                let status = if entry.is_fresh() {
                    CacheStatus::Hit
                } else {
                    CacheStatus::Stale
                };
                Ok((entry, status))
            }
            CompResult::StillNone(_) | CompResult::Removed(_) => Err(ApiError::internal(
                "the cache lost an entry it just computed",
            )),
        }
    }

    /// The HTTP answer for `key`, through the cache: see [`ResponseCache::get_or_load`] and [`respond`].
    pub async fn serve<T, F, Fut>(
        &self,
        req: &HttpRequest,
        key: CacheKey,
        load: F,
    ) -> Result<HttpResponse, ApiError>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let (entry, status) = self.get_or_load(key, load).await?;
        Ok(respond(req, &entry, status))
    }

    /// Forgets one answer.
    pub async fn invalidate(&self, key: &CacheKey) {
        self.entries.invalidate(key).await;
    }

    /// Forgets every answer of a route.
    pub fn invalidate_route(&self, route: Route) {
        // Only fails when closures are not enabled, which `new` does.
        let _ = self
            .entries
            .invalidate_entries_if(move |key, _| key.route == route);
    }
}

/// Upstream faults that a stale answer may paper over; a 404 or a refusal
/// is an answer, not a fault.
fn serves_stale(error: &ApiError) -> bool {
    match error {
        ApiError::Upstream(e) => {
            e.is_transient()
                || matches!(
                    e,
                    UpstreamError::Malformed { .. }
                        | UpstreamError::CircuitOpen { .. }
                        | UpstreamError::Busy { .. }
                )
        }
        _ => false,
    }
}

/// The HTTP answer for a cached entry: 200 with the body, or 304 when the
/// caller's `If-None-Match` already names it; always `ETag`, `X-Cache` and a
/// `Cache-Control` matching the time left.
pub fn respond(req: &HttpRequest, entry: &Cached, status: CacheStatus) -> HttpResponse {
    let max_age = match status {
        CacheStatus::Stale => 0,
        _ => entry.remaining().as_secs(),
    };
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, &entry.etag));
    let mut response = HttpResponse::build(if not_modified {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    });
    response
        .insert_header((header::ETAG, entry.etag.as_str()))
        .insert_header(("X-Cache", status.as_str()))
        .insert_header((header::CACHE_CONTROL, format!("private, max-age={max_age}")))
        // Answers differ by caller (the `secrets` scope).
        .insert_header((header::VARY, "Authorization"));
    if not_modified {
        response.finish()
    } else {
        response
            .content_type("application/json")
            .body(entry.body.clone())
    }
}

/// `If-None-Match` uses the weak comparison: `W/` prefixes are ignored, `*` matches anything.
fn etag_matches(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ttl: u64, stale: u64) -> CacheSettings {
        CacheSettings {
            ttl_seconds: ttl,
            stale_seconds: stale,
            max_bytes: 1 << 20,
            routes: Default::default(),
        }
    }

    fn key() -> CacheKey {
        CacheKey::new(Route::Balance, "")
    }

    #[tokio::test]
    async fn a_miss_then_a_hit_loads_once() {
        let cache = ResponseCache::new(&settings(60, 0));
        let (_, first) = cache
            .get_or_load(key(), || async { Ok::<_, ApiError>(1) })
            .await
            .unwrap();
        let (entry, second) = cache
            .get_or_load(key(), || async {
                Err::<i32, _>(ApiError::internal("must not load"))
            })
            .await
            .unwrap();
        assert_eq!((first, second), (CacheStatus::Miss, CacheStatus::Hit));
        assert_eq!(&entry.body[..], b"1");
    }

    #[tokio::test]
    async fn an_expired_entry_is_served_stale_when_the_upstream_fails() {
        let cache = ResponseCache::new(&settings(0, 600));
        cache
            .get_or_load(key(), || async { Ok::<_, ApiError>("old") })
            .await
            .unwrap();
        let (entry, status) = cache
            .get_or_load(key(), || async {
                Err::<&str, _>(ApiError::Upstream(UpstreamError::Status {
                    upstream: crate::upstream::Upstream::Slitz,
                    status: 500,
                }))
            })
            .await
            .unwrap();
        assert_eq!(status, CacheStatus::Stale);
        assert_eq!(&entry.body[..], b"\"old\"");
    }

    #[tokio::test]
    async fn a_not_found_is_never_papered_over_with_a_stale_answer() {
        let cache = ResponseCache::new(&settings(0, 600));
        cache
            .get_or_load(key(), || async { Ok::<_, ApiError>("old") })
            .await
            .unwrap();
        let result = cache
            .get_or_load(key(), || async {
                Err::<&str, _>(ApiError::Upstream(UpstreamError::NotFound {
                    upstream: crate::upstream::Upstream::Slitz,
                    detail: "gone".into(),
                }))
            })
            .await;
        assert!(matches!(
            result,
            Err(ApiError::Upstream(UpstreamError::NotFound { .. }))
        ));
    }

    #[tokio::test]
    async fn the_bound_is_bytes_not_entries() {
        let mut small = settings(60, 0);
        small.max_bytes = 10_000;
        let cache = ResponseCache::new(&small);
        // Twenty answers of about 1 KiB each: only about ten fit.
        for i in 0..20 {
            let key = CacheKey::new(Route::Invoice, i.to_string());
            cache
                .get_or_load(key, || async { Ok::<_, ApiError>("x".repeat(1000)) })
                .await
                .unwrap();
        }
        cache.entries.run_pending_tasks().await;
        assert!(
            cache.entries.weighted_size() <= 10_000,
            "{}",
            cache.entries.weighted_size()
        );
        assert!(cache.entries.entry_count() < 20);
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("W/\"abc\"", "\"abc\""));
        assert!(etag_matches("\"x\", \"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }
}
