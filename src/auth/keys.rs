//! API keys and every caller's rate: the configured keys held as digests
//! (swapped whole on a reload), and each key's, person's or service's
//! budget, counted here or, with `[redis]`, for every instance together
//! by leases taken from a GCRA on Redis.

use std::{
    collections::BTreeSet,
    num::NonZeroU32,
    sync::{
        Arc, LazyLock, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use actix_web::http::header;
use arc_swap::ArcSwap;
use governor::{
    DefaultDirectRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{KEY, Kind, PERSON, Principal, SERVICE, Scope};
use crate::{configuration::ApiKeySettings, error::ApiError, shared::SharedRedis};

type Limiter = DefaultDirectRateLimiter<StateInformationMiddleware>;

#[derive(Debug)]
pub(super) struct KeyEntry {
    name: Arc<str>,
    /// The `key` label of its refusals: a key's name (few, chosen by ops);
    /// `person` or `service` for theirs, never one series per person.
    counted_as: Arc<str>,
    digest: [u8; 32],
    pub(super) scopes: BTreeSet<Scope>,
    /// `None`: no limit. Shared with the entry that replaces this one on a
    /// reload when the key's name, rate and burst stay the same, so a
    /// reload does not hand out a fresh burst.
    limiter: Option<Arc<Limiter>>,
    rate_per_second: u32,
    burst: u32,
    /// Its `RateLimit-Policy` field.
    policy: header::HeaderValue,
    /// With `[redis]`: requests this instance took from the shared budget
    /// ahead of time, so a busy key costs a Redis call per lease, not per request.
    lease: Mutex<Lease>,
    /// A lease is being taken in the background (busy keys only).
    renewing: AtomicBool,
}

/// Requests taken from a key's shared budget at once and admitted here one
/// by one. They are counted in Redis when taken, so the instances together
/// never admit more than the limit; what a lease leaves unused when it ends
/// is handed back with the next call, so an instance does not waste them.
#[derive(Debug, Default)]
struct Lease {
    requests: u32,
    until: Option<Instant>,
    /// Where the shared budget stood when the lease was taken.
    left: u32,
    reset_at: Option<Instant>,
    /// Redis refused until then: nothing can be admitted anywhere before
    /// (unless another instance hands back a lease meanwhile, which at
    /// worst makes this refusal a few requests strict), so refuse here
    /// without asking.
    refused_until: Option<Instant>,
}

/// What a key's lease says about one request.
enum Leased {
    /// From the lease; `renew`: it runs low, take the next one now, in the
    /// background.
    Admitted { budget: Budget, renew: bool },
    /// Refused by Redis moments ago: wait this long; the burst is whole after `reset`.
    Refused { wait: Duration, reset: Duration },
    /// Ask Redis, handing back what an ended lease left.
    Ask { handed_back: u32 },
}

/// How long a lease may be used: long enough that a steady key renews it
/// rarely, short enough that the `RateLimit` figures it answers with stay close.
const LEASE_TIME: Duration = Duration::from_secs(1);

/// Keys whose leases are this large or larger (1,000/s and a burst of 1,000
/// up) take their next lease in the background when half of one is used,
/// and never hold a request for Redis: when a lease runs dry before the next
/// arrives (Redis slow or frozen), requests are admitted from the
/// instance's own budget meanwhile, as when Redis is down. Smaller keys,
/// whose leases are a few requests, ask Redis with the request.
const BACKGROUND_LEASE: u32 = 10;

impl KeyEntry {
    /// Requests to take from the shared budget at once: 1% of the burst and
    /// at most 10 ms of the rate, so a lease held elsewhere never starves
    /// another instance noticeably; 1 (a call per request) for small limits.
    fn lease_size(&self) -> u32 {
        (self.burst / 100).min(self.rate_per_second / 100).max(1)
    }

    /// Whether leases are taken in the background (see [`BACKGROUND_LEASE`]).
    fn renews_ahead(&self) -> bool {
        self.lease_size() >= BACKGROUND_LEASE
    }

    fn lease(&self) -> std::sync::MutexGuard<'_, Lease> {
        self.lease.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One request from the lease, with the budget to show; a refusal
    /// Redis gave moments ago; or ask Redis.
    fn take_leased(&self, now: Instant) -> Leased {
        let mut lease = self.lease();
        let reset = lease
            .reset_at
            .map(|at| at.saturating_duration_since(now))
            .unwrap_or_default();
        if let Some(until) = lease.refused_until.filter(|until| now < *until) {
            return Leased::Refused {
                wait: until.saturating_duration_since(now),
                reset,
            };
        }
        if lease.until.is_none_or(|until| now >= until) {
            return Leased::Ask {
                handed_back: std::mem::take(&mut lease.requests),
            };
        }
        let Some(left_in_lease) = lease.requests.checked_sub(1) else {
            return Leased::Ask { handed_back: 0 };
        };
        lease.requests = left_in_lease;
        let renew = self.renews_ahead()
            && left_in_lease <= self.lease_size() / 2
            && !self.renewing.swap(true, Ordering::AcqRel);
        Leased::Admitted {
            budget: Budget::new(self, lease.left.saturating_add(left_in_lease), reset),
            renew,
        }
    }

    /// Remembers Redis's refusal, so requests until `wait` is over are
    /// refused without asking again.
    fn refused(&self, wait: Duration, reset: Duration, now: Instant) {
        let mut lease = self.lease();
        lease.refused_until = now.checked_add(wait);
        lease.reset_at = now.checked_add(reset);
    }

    /// Keeps `requests` more taken from the shared budget, for [`LEASE_TIME`].
    fn extend_lease(&self, requests: u32, left: u32, reset: Duration, now: Instant) -> u32 {
        let mut lease = self.lease();
        lease.requests = lease.requests.saturating_add(requests);
        lease.until = now.checked_add(LEASE_TIME);
        lease.left = left;
        lease.reset_at = now.checked_add(reset);
        lease.requests
    }
}

/// The configured keys, held as digests only. Swapped whole on a reload:
/// a request keeps the key it was admitted with until it is answered.
pub struct ApiKeys {
    keys: ArcSwap<KeySet>,
    /// With `[redis]`: limits counted for all instances together.
    shared: Option<Arc<SharedRedis>>,
    /// People's and services' budgets, one each (`[identity]`).
    identity_limits: Option<IdentityLimits>,
    /// `gateway_admissions_total` by kind, registered once: an admission
    /// neither hashes nor looks up its labels.
    admissions: [metrics::Counter; 3],
}

struct IdentityLimits {
    rate_per_second: u32,
    burst: u32,
    /// By principal name; one unused for an hour is forgotten (its burst
    /// whole again, as it would be by then).
    held: moka::future::Cache<Arc<str>, Arc<KeyEntry>>,
}

/// GCRA (the generic cell rate algorithm) in one atomic step, on Redis's own
/// clock so instances' clocks do not matter. KEYS[1]: the key's theoretical
/// arrival time (µs); ARGV: emission interval (µs), burst, requests wanted
/// (a lease) and requests handed back (what an ended lease left). Admits as
/// many as wanted that fit, at least one or none. Returns {requests admitted,
/// µs to wait (when none), requests left now, µs until the whole burst is back}.
static GCRA: LazyLock<redis::Script> = LazyLock::new(|| {
    crate::shared::conventions::script(
        r#"
local now = now_us()
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local handed_back = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or now) - handed_back * interval
if tat < now then tat = now end
local fit = math.floor((now + burst * interval - tat) / interval)
if fit < 1 then
    if handed_back > 0 then
        redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
    end
    return {0, tat - (burst - 1) * interval - now, 0, tat - now}
end
local admitted = math.min(want, fit)
local next_tat = tat + admitted * interval
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1000)
local left = math.floor((burst * interval - (next_tat - now)) / interval)
if left < 0 then left = 0 end
return {admitted, 0, left, next_tat - now}
"#,
    )
});

/// Where a key stands against its rate, sent as the `RateLimit-Policy` and
/// `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers-09): the policy
/// is the burst, refilled over `window` seconds; `remaining` requests may
/// be sent now, and the whole burst is back after `reset` seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    quota: u32,
    window: u64,
    /// The `RateLimit-Policy` field, the same for every answer to the key:
    /// made once with its entry.
    policy: header::HeaderValue,
    remaining: u32,
    reset: u64,
}

impl Budget {
    fn new(key: &KeyEntry, remaining: u32, reset: Duration) -> Self {
        Self {
            quota: key.burst,
            window: window(key.rate_per_second, key.burst),
            policy: key.policy.clone(),
            remaining,
            reset: whole_seconds_up(reset),
        }
    }

    /// Adds the two fields to an answer.
    pub fn write(&self, headers: &mut header::HeaderMap) {
        // `"per-key";r=N;t=N` written into a buffer on the stack: no
        // formatting machinery, one copy (into the field's value).
        let (mut remaining, mut reset) = (itoa::Buffer::new(), itoa::Buffer::new());
        let parts = [
            b"\"per-key\";r=".as_slice(),
            remaining.format(self.remaining).as_bytes(),
            b";t=",
            reset.format(self.reset).as_bytes(),
        ];
        let mut state = [0u8; 64];
        let mut length = 0_usize;
        for part in parts {
            let end = length.saturating_add(part.len());
            if let Some(slot) = state.get_mut(length..end) {
                slot.copy_from_slice(part);
                length = end;
            }
        }
        headers.insert(RATELIMIT_POLICY, self.policy.clone());
        if let Some(Ok(value)) = state.get(..length).map(header::HeaderValue::from_bytes) {
            headers.insert(RATELIMIT, value);
        }
    }
}

const RATELIMIT_POLICY: header::HeaderName = header::HeaderName::from_static("ratelimit-policy");
const RATELIMIT: header::HeaderName = header::HeaderName::from_static("ratelimit");

/// The seconds in which a whole burst is refilled at `rate_per_second`.
fn window(rate_per_second: u32, burst: u32) -> u64 {
    u64::from(burst)
        .div_ceil(u64::from(rate_per_second.max(1)))
        .max(1)
}

/// The `RateLimit-Policy` field of a key with this rate and burst.
fn policy(rate_per_second: u32, burst: u32) -> header::HeaderValue {
    let value = format!("\"per-key\";q={burst};w={}", window(rate_per_second, burst));
    header::HeaderValue::from_str(&value).unwrap_or(header::HeaderValue::from_static("\"per-key\""))
}

fn whole_seconds_up(duration: Duration) -> u64 {
    let seconds = duration.as_secs();
    if duration.subsec_nanos() > 0 {
        seconds.saturating_add(1)
    } else {
        seconds
    }
}

/// A request over its key's rate: the 429 to answer, and the budget to show with it.
#[derive(Debug)]
pub struct Refused {
    pub error: ApiError,
    pub budget: Budget,
}

/// The keys in use, found by digest.
struct KeySet {
    all: Vec<Arc<KeyEntry>>,
    by_digest: std::collections::HashMap<[u8; 32], Arc<KeyEntry>>,
}

impl KeySet {
    fn new(all: Vec<Arc<KeyEntry>>) -> Self {
        let by_digest = all.iter().map(|k| (k.digest, Arc::clone(k))).collect();
        Self { all, by_digest }
    }
}

impl ApiKeys {
    /// Expects settings already validated (64 hex digits per key).
    pub fn new(settings: &[ApiKeySettings]) -> Self {
        Self {
            keys: ArcSwap::from_pointee(KeySet::new(entries(settings, &[]))),
            shared: None,
            identity_limits: None,
            admissions: [KEY, SERVICE, PERSON]
                .map(|kind| metrics::counter!("gateway_admissions_total", "kind" => kind)),
        }
    }

    /// Counts an admitted caller, by kind.
    pub fn count_admission(&self, caller: &Principal) {
        let index = match caller.kind {
            Kind::Key(_) => 0,
            Kind::Service(_) => 1,
            Kind::Person(_) => 2,
        };
        if let Some(counter) = self.admissions.get(index) {
            counter.increment(1);
        }
    }

    /// Puts `settings` in place of the keys in use, at once. Requests
    /// already admitted finish under the key they came with; a key whose
    /// name, rate and burst stay keeps its budget.
    pub fn replace(&self, settings: &[ApiKeySettings]) {
        let old = self.keys.load();
        self.keys
            .store(Arc::new(KeySet::new(entries(settings, &old.all))));
    }

    /// People and services get `rate_per_second` and `burst` each
    /// (`[identity]`), counted as a key's are, under their principal's name.
    pub fn with_identity_limits(mut self, rate_per_second: u32, burst: u32) -> Self {
        if rate_per_second > 0 {
            self.identity_limits = Some(IdentityLimits {
                rate_per_second,
                burst,
                held: moka::future::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_idle(Duration::from_secs(3600))
                    .build(),
            });
        }
        self
    }

    /// The budget of a person or service, made at its first request.
    async fn of_principal(&self, caller: &Principal) -> Option<Arc<KeyEntry>> {
        let limits = self.identity_limits.as_ref()?;
        Some(
            limits
                .held
                .get_with_by_ref(&caller.name, async {
                    let settings = ApiKeySettings {
                        name: caller.name.to_string(),
                        sha256: String::new(),
                        scopes: BTreeSet::new(),
                        rate_per_second: limits.rate_per_second,
                        burst: limits.burst,
                    };
                    Arc::new(entry(&settings, &[], caller.kind().into()))
                })
                .await,
        )
    }

    /// Counts limits in Redis, for every instance together; each instance's
    /// own budget still answers while Redis cannot.
    pub fn with_shared_limits(mut self, redis: Arc<SharedRedis>) -> Self {
        self.shared = Some(redis);
        self
    }

    /// Finds the caller a presented key belongs to: its SHA-256 looked up in
    /// a map (one lookup however many keys), then compared in constant time.
    /// The lookup's timing can only tell about digests, and learning a
    /// configured digest does not give its key.
    pub fn authenticate(&self, presented: &str) -> Option<Principal> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let keys = self.keys.load();
        let key = keys.by_digest.get(&digest)?;
        bool::from(key.digest.ct_eq(&digest)).then(|| Principal {
            name: key.name.clone(),
            kind: Kind::Key(Arc::clone(key)),
        })
    }

    /// Counts one request against the caller's rate: its budget after it
    /// (`None` for a key without a limit), or the refusal saying how long to wait.
    pub async fn admit(&self, caller: &Principal) -> Result<Option<Budget>, Box<Refused>> {
        let held;
        let key = match &caller.kind {
            Kind::Key(key) => key,
            // Boxed: the cache's future is large, and a key's admission
            // would otherwise carry it (and move it) on every request.
            Kind::Person(_) | Kind::Service(_) => match Box::pin(self.of_principal(caller)).await {
                Some(entry) => {
                    held = entry;
                    &held
                }
                None => return Ok(None),
            },
        };
        let Some(limiter) = &key.limiter else {
            return Ok(None);
        };
        if let Some(redis) = &self.shared {
            let handed_back = match key.take_leased(Instant::now()) {
                Leased::Admitted { budget, renew } => {
                    if renew {
                        renew_in_background(redis, key, 0);
                    }
                    return Ok(Some(budget));
                }
                Leased::Refused { wait, reset } => {
                    return Err(Box::new(limited(key, wait, Budget::new(key, 0, reset))));
                }
                Leased::Ask { handed_back } => handed_back,
            };
            if key.renews_ahead() {
                // Never waits on Redis: the next lease is asked for in the
                // background (unless it already is), and this request is
                // admitted from the instance's own budget meanwhile.
                if !key.renewing.swap(true, Ordering::AcqRel) {
                    renew_in_background(redis, key, handed_back);
                }
                metrics::counter!("gateway_rate_limit_fallbacks_total").increment(1);
            } else {
                // Boxed: Redis's future is large, and every admission's
                // future would otherwise carry (and move) its size.
                match Box::pin(shared_admit(redis, key, handed_back)).await {
                    Ok(Ok(budget)) => return Ok(Some(budget)),
                    Ok(Err(refused)) => return Err(Box::new(refused)),
                    Err(_) => {
                        metrics::counter!("gateway_rate_limit_fallbacks_total").increment(1);
                    }
                }
            }
        }
        let rate = key.rate_per_second.max(1);
        match limiter.check() {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let used = key.burst.saturating_sub(remaining);
                let reset = Duration::from_secs(u64::from(used))
                    .checked_div(rate)
                    .unwrap_or_default();
                Ok(Some(Budget::new(key, remaining, reset)))
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let reset = Duration::from_secs(u64::from(key.burst.saturating_sub(1)))
                    .checked_div(rate)
                    .unwrap_or_default();
                Err(Box::new(limited(
                    key,
                    wait,
                    Budget::new(key, 0, reset.saturating_add(wait)),
                )))
            }
        }
    }
}

/// The refusal of a request over `key`'s rate, counted: come back after
/// `wait`, with `budget` to show.
fn limited(key: &KeyEntry, wait: Duration, budget: Budget) -> Refused {
    // By the key's configured name, never the key: names are few and chosen by ops.
    metrics::counter!("gateway_rate_limited_total", "key" => key.counted_as.to_string())
        .increment(1);
    Refused {
        error: ApiError::RateLimited {
            retry_after: wait,
            per_second: key.rate_per_second,
        },
        budget,
    }
}

/// Takes up to a lease of requests from the key's shared budget, handing
/// back what the last lease left: {admitted, µs to wait (when none), left
/// now, µs until the whole burst is back}.
async fn take_from_shared(
    redis: &SharedRedis,
    key: &KeyEntry,
    handed_back: u32,
) -> Result<(i64, i64, i64, i64), crate::shared::RedisUnavailable> {
    let interval_us = 1_000_000_u64
        .checked_div(u64::from(key.rate_per_second))
        .unwrap_or(1_000_000)
        .max(1);
    let redis_key = redis.keys().rate(&key.name);
    let burst = key.burst.max(1);
    let want = key.lease_size();
    redis
        .call("rate limit", |mut c| async move {
            GCRA.key(redis_key)
                .arg(interval_us)
                .arg(burst)
                .arg(want)
                .arg(handed_back)
                .invoke_async(&mut c)
                .await
        })
        .await
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// Takes the key's next lease in a task of its own; requests go on
/// meanwhile. A refusal is remembered (requests are refused until the wait
/// is over), a failure counted; either way the key may renew again after.
fn renew_in_background(redis: &Arc<SharedRedis>, key: &Arc<KeyEntry>, handed_back: u32) {
    let (redis, key) = (Arc::clone(redis), Arc::clone(key));
    tokio::spawn(async move {
        match take_from_shared(&redis, &key, handed_back).await {
            Ok((admitted, wait_us, left, reset_us)) => {
                let now = Instant::now();
                match u32::try_from(admitted) {
                    Ok(admitted) if admitted > 0 => {
                        let left = u32::try_from(left).unwrap_or(0);
                        key.extend_lease(admitted, left, micros(reset_us), now);
                    }
                    _ => key.refused(micros(wait_us), micros(reset_us), now),
                }
            }
            Err(_) => metrics::counter!("gateway_rate_limit_fallbacks_total").increment(1),
        }
        key.renewing.store(false, Ordering::Release);
    });
}

/// One request against the key's shared budget, taking a lease for the
/// requests after it and handing back what the last lease left.
async fn shared_admit(
    redis: &SharedRedis,
    key: &KeyEntry,
    handed_back: u32,
) -> Result<Result<Budget, Refused>, crate::shared::RedisUnavailable> {
    let (admitted, wait_us, left, reset_us) = take_from_shared(redis, key, handed_back).await?;
    let left = u32::try_from(left).unwrap_or(0);
    // This request is one of those admitted; the rest are leased.
    let leased = u32::try_from(admitted).unwrap_or(0).saturating_sub(1);
    let in_lease = if leased > 0 {
        key.extend_lease(leased, left, micros(reset_us), Instant::now())
    } else {
        0
    };
    let budget = Budget::new(key, left.saturating_add(in_lease), micros(reset_us));
    Ok(if admitted <= 0 {
        key.refused(micros(wait_us), micros(reset_us), Instant::now());
        Err(limited(key, micros(wait_us), budget))
    } else {
        Ok(budget)
    })
}

/// The entries for `settings`; a limiter is taken over from `old` when the
/// key's name, rate and burst are unchanged.
fn entries(settings: &[ApiKeySettings], old: &[Arc<KeyEntry>]) -> Vec<Arc<KeyEntry>> {
    settings
        .iter()
        .map(|k| Arc::new(entry(k, old, k.name.as_str().into())))
        .collect()
}

/// One key's entry (or a person's or service's budget), keeping the limiter
/// of `old`'s entry of that name when its rate and burst are unchanged.
fn entry(k: &ApiKeySettings, old: &[Arc<KeyEntry>], counted_as: Arc<str>) -> KeyEntry {
    let mut digest = [0u8; 32];
    // Validation guarantees 64 hex digits; a bad one would simply never match.
    let _ = hex::decode_to_slice(&k.sha256, &mut digest);
    let burst = if k.burst == 0 {
        k.rate_per_second
    } else {
        k.burst
    };
    let kept = old
        .iter()
        .find(|o| *o.name == *k.name && o.rate_per_second == k.rate_per_second && o.burst == burst)
        .and_then(|o| o.limiter.clone());
    let limiter = kept.or_else(|| {
        NonZeroU32::new(k.rate_per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            Arc::new(
                RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))
                    .with_middleware::<StateInformationMiddleware>(),
            )
        })
    });
    KeyEntry {
        name: k.name.as_str().into(),
        counted_as,
        digest,
        scopes: k.scopes.clone(),
        limiter,
        rate_per_second: k.rate_per_second,
        burst,
        policy: policy(k.rate_per_second, burst),
        lease: Mutex::default(),
        renewing: AtomicBool::new(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::sha256_hex;

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
    fn among_many_keys_each_finds_its_own_caller() {
        let settings: Vec<ApiKeySettings> = (0..500)
            .map(|i| ApiKeySettings {
                name: format!("caller-{i}"),
                sha256: sha256_hex(&format!("key-{i}")),
                scopes: [Scope::Read].into(),
                rate_per_second: 0,
                burst: 0,
            })
            .collect();
        let keys = ApiKeys::new(&settings);
        for i in [0, 1, 250, 499] {
            let caller = keys.authenticate(&format!("key-{i}")).unwrap();
            assert_eq!(&*caller.name, format!("caller-{i}"));
        }
        assert!(keys.authenticate("key-500").is_none());
        // A reload replaces the map whole.
        keys.replace(settings.get(..1).unwrap());
        assert!(keys.authenticate("key-0").is_some());
        assert!(keys.authenticate("key-1").is_none());
    }

    #[tokio::test]
    async fn a_key_over_its_burst_is_told_when_to_come_back() {
        let keys = keys();
        let writer = keys.authenticate("w-key").unwrap();
        let first = keys.admit(&writer).await.unwrap().unwrap();
        assert_eq!((first.quota, first.window, first.remaining), (2, 2, 1));
        let second = keys.admit(&writer).await.unwrap().unwrap();
        assert_eq!(second.remaining, 0);
        match keys.admit(&writer).await.map_err(|r| *r) {
            Err(Refused {
                error:
                    ApiError::RateLimited {
                        retry_after,
                        per_second,
                    },
                budget,
            }) => {
                assert!(retry_after <= std::time::Duration::from_secs(1));
                assert_eq!(per_second, 1);
                assert_eq!(budget.remaining, 0);
                assert!((1..=2).contains(&budget.reset), "{budget:?}");
            }
            other => panic!("{other:?}"),
        }
        let reader = keys.authenticate("r-key").unwrap();
        for _ in 0..1000 {
            assert_eq!(
                keys.admit(&reader).await.unwrap(),
                None,
                "no limit configured"
            );
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
