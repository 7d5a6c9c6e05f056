//! The Slitz read cache: normalized answers, serialized once, kept per route
//! for their TTL and a stale grace period after it, bounded by bytes.
//!
//! Concurrent misses on one key make one upstream call: loads go through
//! moka's per-key serialized `and_try_compute_with`, and whoever comes after
//! the loader finds the fresh entry. When Slitz fails and an expired entry is
//! younger than its TTL plus `cache.stale_seconds`, that entry is served as
//! `X-Cache: STALE`.
//!
//! With `[redis]`, this in-process cache is the first level (L1) in front of
//! a second one on Redis shared by every instance (see [`cluster`]): a miss
//! here reads Redis before Slitz, one instance at a time loads a cold key, and
//! a write's invalidation reaches every instance before the write answers.
//!
//! Which answers are still current is one generation number per route: a
//! write that changes a route's answers bumps it, and an answer loaded under
//! an older generation is never served again, not even stale. An answer
//! loaded while the load raced the write carries the old generation, so it
//! cannot outlive the write either.

mod cluster;
mod entry;

pub(crate) use entry::Forms;
pub use entry::{CacheKey, CacheStatus, Cached, respond};
use entry::{Origin, Tag, etag_header};

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use actix_web::HttpResponse;
use moka::{Expiry, future::Cache, ops::compute::CompResult, ops::compute::Op};
use serde::Serialize;

use crate::{
    configuration::CacheSettings, error::ApiError, route_table::Written, shared::SharedRedis,
    upstream::UpstreamError,
};

pub use crate::configuration::Route;

/// Entries live for their TTL plus the stale grace, then leave the cache.
struct TtlPlusGrace(Duration);

impl Expiry<CacheKey, Arc<Cached>> for TtlPlusGrace {
    fn expire_after_create(
        &self,
        _: &CacheKey,
        value: &Arc<Cached>,
        _: Instant,
    ) -> Option<Duration> {
        Some(value.remaining().saturating_add(self.0))
    }

    fn expire_after_update(
        &self,
        _: &CacheKey,
        value: &Arc<Cached>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.remaining().saturating_add(self.0))
    }
}

/// Which cached answers are still current: the generation of every route,
/// and whether this instance hears invalidations from the others.
struct Coherence {
    generations: [AtomicU64; Route::ALL.len()],
    /// Alone: always. With Redis: while the subscription to invalidations is up.
    listening: AtomicBool,
    /// Bumped whenever the subscription is lost or made again: an answer
    /// cached in another epoch may have missed an invalidation.
    epoch: AtomicU64,
    /// The routes some write changes: only their answers depend on hearing
    /// invalidations.
    written: Written,
}

impl Coherence {
    fn new(listening: bool, written: Written) -> Self {
        Self {
            written,
            generations: std::array::from_fn(|_| AtomicU64::new(0)),
            listening: AtomicBool::new(listening),
            epoch: AtomicU64::new(0),
        }
    }

    fn slot(&self, route: Route) -> Option<&AtomicU64> {
        self.generations.get(route as usize)
    }

    fn generation(&self, route: Route) -> u64 {
        self.slot(route)
            .map(|g| g.load(Ordering::Acquire))
            .unwrap_or_default()
    }

    fn tag(&self, route: Route) -> Tag {
        Tag {
            generation: self.generation(route),
            epoch: self.epoch.load(Ordering::Acquire),
        }
    }

    /// Whether `entry` may be served as a hit: loaded under the route's
    /// current generation, and, for the routes writes change, while this
    /// instance has been hearing every invalidation since.
    fn current(&self, route: Route, entry: &Cached) -> bool {
        entry.tag.generation == self.generation(route)
            && (!self.written.get(route)
                || (self.listening.load(Ordering::Acquire)
                    && entry.tag.epoch == self.epoch.load(Ordering::Acquire)))
    }

    /// A generation seen in Redis or in an invalidation: generations only grow.
    fn observe(&self, route: Route, generation: u64) {
        if let Some(slot) = self.slot(route) {
            slot.fetch_max(generation, Ordering::AcqRel);
        }
    }

    /// A write changed `route`'s answers (no Redis: this instance is all there is).
    fn bump(&self, route: Route) {
        if let Some(slot) = self.slot(route) {
            // Saturating: u64 generations do not run out in practice.
            let _ = slot.fetch_update(Ordering::AcqRel, Ordering::Acquire, |g| {
                Some(g.saturating_add(1))
            });
        }
    }

    /// The subscription is up again: generations are what Redis says now
    /// (a restarted Redis starts them over), and a new epoch begins.
    fn listening_from(&self, generations: &HashMap<Route, u64>) {
        for &route in Route::ALL {
            if let Some(slot) = self.slot(route) {
                slot.store(
                    generations.get(&route).copied().unwrap_or_default(),
                    Ordering::Release,
                );
            }
        }
        self.new_epoch();
        self.listening.store(true, Ordering::Release);
    }

    /// The subscription is down: invalidations may go unheard from now on.
    fn deaf(&self) {
        self.listening.store(false, Ordering::Release);
        self.new_epoch();
    }

    fn new_epoch(&self) {
        let _ = self
            .epoch
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |e| {
                Some(e.saturating_add(1))
            });
    }

    fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }
}

/// How long answers of a route are fresh, and served stale after that.
#[derive(Debug, Clone, Copy)]
struct Lifetime {
    ttl: Duration,
    grace: Duration,
}

/// How a lookup went, for `gateway_cache_lookups_total{route,outcome}`
/// (the outcome label is the variant's name in snake_case).
#[derive(Debug, Clone, Copy, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
enum Lookup {
    /// Fresh in this instance's memory.
    Hit,
    /// Fresh in the cache the instances share.
    SharedHit,
    /// Waited for another caller's load of the same key, and got its answer.
    Coalesced,
    /// Loaded from Slitz.
    Miss,
    /// Slitz failed; an expired answer was served.
    Stale,
    /// Slitz failed and nothing could be served.
    Error,
}

impl Lookup {
    const ALL: &'static [Lookup] = <Self as strum::VariantArray>::VARIANTS;

    fn label(self) -> &'static str {
        self.into()
    }
}

/// The lookup counters, registered once so a hit costs one atomic add.
struct Lookups([[metrics::Counter; Lookup::ALL.len()]; Route::ALL.len()]);

impl Lookups {
    fn new() -> Self {
        Self(std::array::from_fn(|r| {
            std::array::from_fn(|o| {
                let route = Route::ALL.get(r).map_or("unknown", |r| r.name());
                let outcome = Lookup::ALL.get(o).map_or("unknown", |o| o.label());
                metrics::counter!("gateway_cache_lookups_total", "route" => route, "outcome" => outcome)
            })
        }))
    }

    fn count(&self, route: Route, lookup: Lookup) {
        if let Some(counter) = self
            .0
            .get(route as usize)
            .and_then(|row| row.get(lookup as usize))
        {
            counter.increment(1);
        }
    }
}

pub struct ResponseCache {
    entries: Cache<CacheKey, Arc<Cached>>,
    lookups: Lookups,
    ttls: HashMap<Route, Duration>,
    stale: Duration,
    coherence: Arc<Coherence>,
    cluster: Option<cluster::Cluster>,
}

impl ResponseCache {
    /// A cache of this instance alone. `written`: the routes a write changes.
    pub fn new(settings: &CacheSettings, written: Written) -> Self {
        Self::build(settings, Arc::new(Coherence::new(true, written)), None)
    }

    /// A cache in front of the one the instances share on Redis. Starts the
    /// subscription to invalidations (so: call within a Tokio runtime); a
    /// load waiting for another instance gives up after `lease`.
    pub fn shared(
        settings: &CacheSettings,
        written: Written,
        redis: Arc<SharedRedis>,
        lease: Duration,
    ) -> Self {
        let coherence = Arc::new(Coherence::new(false, written));
        let cluster = cluster::Cluster::start(redis, Arc::clone(&coherence), lease);
        Self::build(settings, coherence, Some(cluster))
    }

    fn build(
        settings: &CacheSettings,
        coherence: Arc<Coherence>,
        cluster: Option<cluster::Cluster>,
    ) -> Self {
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
                    .saturating_add(value.forms.bytes())
                    .saturating_add(value.etag.len())
                    .saturating_add(key.variant.len())
                    .saturating_add(96);
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .expire_after(TtlPlusGrace(stale))
            .eviction_listener(|_, _, cause| {
                let cause = match cause {
                    moka::notification::RemovalCause::Size => "size",
                    moka::notification::RemovalCause::Expired => "expired",
                    // Replaced or invalidated: not an eviction.
                    _ => return,
                };
                metrics::counter!("gateway_cache_evictions_total", "cause" => cause).increment(1);
            })
            .build();
        Self {
            entries,
            lookups: Lookups::new(),
            ttls,
            stale,
            coherence,
            cluster,
        }
    }

    fn lifetime(&self, route: Route) -> Lifetime {
        Lifetime {
            ttl: self.ttls.get(&route).copied().unwrap_or_default(),
            grace: self.stale,
        }
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
        let route = key.route;
        if let Some(entry) = self.entries.get(&key).await
            && entry.is_fresh()
            && self.coherence.current(route, &entry)
        {
            self.lookups.count(route, Lookup::Hit);
            return Ok((entry, CacheStatus::Hit));
        }
        // The load's future is large (the upstream call, Redis, the entry's
        // compute): boxed, and only on a miss, so the future a hit builds
        // and moves on every request stays small.
        Box::pin(self.load(key, load)).await
    }

    /// [`ResponseCache::get_or_load`] past a fresh hit.
    async fn load<T, F, Fut>(
        &self,
        key: CacheKey,
        load: F,
    ) -> Result<(Arc<Cached>, CacheStatus), ApiError>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let route = key.route;
        let life = self.lifetime(route);
        let variant = key.variant.clone();
        let load = || async move {
            let value = load().await?;
            serde_json::to_vec(&value).map_err(|e| {
                ApiError::Internal(anyhow::Error::new(e).context("Failed to serialize an answer"))
            })
        };
        let result = self
            .entries
            .entry(key)
            .and_try_compute_with(|existing| async move {
                let existing = existing.map(|e| e.into_value());
                if let Some(entry) = &existing
                    && entry.is_fresh()
                    && self.coherence.current(route, entry)
                {
                    // Another caller loaded it while this one waited.
                    return Ok::<_, ApiError>(Op::Nop);
                }
                // An answer from before a write is never served again, not even stale.
                let stale =
                    existing.filter(|e| e.tag.generation == self.coherence.generation(route));
                let tag = self.coherence.tag(route);
                let entry = match &self.cluster {
                    Some(cluster) => {
                        cluster
                            .load(route, &variant, life, tag, stale.clone(), load)
                            .await?
                    }
                    None => settle(load().await, stale.clone(), life, tag)?,
                };
                if stale.as_ref().is_some_and(|s| Arc::ptr_eq(s, &entry)) {
                    Ok(Op::Nop)
                } else {
                    Ok(Op::Put(entry))
                }
            })
            .await
            .inspect_err(|_| self.lookups.count(route, Lookup::Error))?;
        match result {
            CompResult::Inserted(entry) | CompResult::ReplacedWith(entry) => {
                let entry = entry.into_value();
                let (status, lookup) = match entry.origin {
                    Origin::Upstream => (CacheStatus::Miss, Lookup::Miss),
                    Origin::Shared if entry.is_fresh() => (CacheStatus::Hit, Lookup::SharedHit),
                    Origin::Shared => (CacheStatus::Stale, Lookup::Stale),
                };
                self.lookups.count(route, lookup);
                Ok((entry, status))
            }
            CompResult::Unchanged(entry) => {
                let entry = entry.into_value();
                let (status, lookup) = if entry.is_fresh() && self.coherence.current(route, &entry)
                {
                    (CacheStatus::Hit, Lookup::Coalesced)
                } else {
                    (CacheStatus::Stale, Lookup::Stale)
                };
                self.lookups.count(route, lookup);
                Ok((entry, status))
            }
            CompResult::StillNone(_) | CompResult::Removed(_) => Err(ApiError::internal(
                "the cache lost an entry it just computed",
            )),
        }
    }

    /// The HTTP answer for `key`, through the cache: see [`ResponseCache::get_or_load`] and [`respond`].
    pub async fn serve<T, F, Fut>(&self, key: CacheKey, load: F) -> Result<HttpResponse, ApiError>
    where
        T: Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let (entry, status) = self.get_or_load(key, load).await?;
        Ok(respond(&entry, status))
    }

    /// Answers held in this instance's memory, and their weight in bytes,
    /// after the cache's pending upkeep (evictions) has run.
    pub async fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks().await;
        (self.entries.entry_count(), self.entries.weighted_size())
    }

    /// With Redis: whether this instance hears the other instances'
    /// invalidations now. Alone: `None`.
    pub fn hears_invalidations(&self) -> Option<bool> {
        self.cluster.as_ref().map(|_| self.coherence.is_listening())
    }

    /// Before a write that changes cached answers: with Redis, refuses (503,
    /// nothing sent upstream) when the write's invalidation could not reach
    /// every instance. Alone, there is nothing to check.
    pub async fn before_write(&self) -> Result<(), ApiError> {
        match &self.cluster {
            Some(cluster) => cluster.before_write().await,
            None => Ok(()),
        }
    }

    /// After a write changed `routes`' answers: every cached answer of them
    /// is forgotten here and, with Redis, on every instance that hears
    /// invalidations, before this returns.
    pub async fn after_write(&self, routes: &[Route]) {
        match &self.cluster {
            Some(cluster) => cluster.invalidate(routes).await,
            None => routes.iter().for_each(|route| self.coherence.bump(*route)),
        }
    }
}

/// The answer a load ends with: what it fetched, else the stale answer when
/// the failure is one stale answers paper over and it is young enough.
fn settle(
    loaded: Result<Vec<u8>, ApiError>,
    stale: Option<Arc<Cached>>,
    life: Lifetime,
    tag: Tag,
) -> Result<Arc<Cached>, ApiError> {
    match loaded {
        Ok(body) => Ok(Arc::new(Cached::new(body, life.ttl, tag))),
        Err(error) if serves_stale(&error) => {
            match stale.filter(|old| old.age() < old.ttl.saturating_add(life.grace)) {
                Some(old) => {
                    tracing::warn!(error = %error, "serving a stale answer");
                    Ok(old)
                }
                None => Err(error),
            }
        }
        Err(error) => Err(error),
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
        let cache = ResponseCache::new(
            &settings(60, 0),
            Written::from_routes(crate::routes::routes()),
        );
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
        let cache = ResponseCache::new(
            &settings(0, 600),
            Written::from_routes(crate::routes::routes()),
        );
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
        let cache = ResponseCache::new(
            &settings(0, 600),
            Written::from_routes(crate::routes::routes()),
        );
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
        let cache = ResponseCache::new(&small, Written::from_routes(crate::routes::routes()));
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
        assert!(crate::representation::etag_matches("\"abc\"", "\"abc\""));
        assert!(crate::representation::etag_matches("W/\"abc\"", "\"abc\""));
        assert!(crate::representation::etag_matches(
            "\"x\", \"abc\"",
            "\"abc\""
        ));
        assert!(crate::representation::etag_matches("*", "\"abc\""));
        assert!(!crate::representation::etag_matches("\"abd\"", "\"abc\""));
    }
}
