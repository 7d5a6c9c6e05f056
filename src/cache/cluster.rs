//! The second level of the Slitz cache, on the Redis the instances share,
//! and the bus that carries a write's invalidation to every instance.
//!
//! Its keys are in [`crate::shared::conventions`].
//!
//! An answer is stored under its route's generation, so bumping the
//! generation forgets every answer of the route at once, and a load that
//! raced the write stores under the old generation, where nobody reads.
//! Ages come from Redis's clock, so instances whose clocks differ agree.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, LazyLock, Weak},
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use redis::Value;

use super::{Cached, Coherence, Lifetime, Origin, Route, Tag, settle};
use crate::{
    error::ApiError,
    shared::{SharedRedis, conventions::script},
};

/// How often the subscription is checked with a PING: an instance cut off
/// from Redis stops trusting its own copies of written routes within this
/// plus `redis.timeout_ms`.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long a waiter waits to be woken by the subscription (another
/// instance's load stored, or an invalidation acknowledged) before it looks
/// in Redis again anyway: a message the subscription missed costs this much,
/// never more.
const WAKE_FALLBACK: Duration = Duration::from_millis(100);

/// Acknowledges an invalidation: counts this instance, and says so on the
/// channel, so the writer is woken rather than polling. KEYS: the
/// acknowledgements, the channel. ARGV: the invalidation's id.
static ACKNOWLEDGE: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r#"
local count = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], 60000)
redis.call('PUBLISH', KEYS[2], '!ack ' .. ARGV[1])
return count
"#,
    )
});

/// Reads a route's generation and the answer stored for it, with its age
/// by Redis's clock, in one round trip. KEYS: the generations, the entry.
/// ARGV: the route. An answer stored under another generation is none.
static READ: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r#"
local generation = redis.call('HGET', KEYS[1], ARGV[1]) or '0'
local stored = redis.call('HMGET', KEYS[2], 'body', 'etag', 'fetched_ms', 'generation')
if not stored[1] or not stored[2] or not stored[3] or stored[4] ~= generation then
    return {generation}
end
local age = now_ms() - tonumber(stored[3])
if age < 0 then age = 0 end
return {generation, stored[1], stored[2], age}
"#,
    )
});

/// Stores an answer, stamped with Redis's clock, for its TTL plus stale
/// grace, if its route is still at the generation it was loaded under (a
/// load overtaken by a write stores nothing), and says so on the channel
/// (the instances waiting for it wake). KEYS: the entry, the generations,
/// the channel. ARGV: body, ETag, ms to keep, route, generation, the message.
static WRITE: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r#"
if (redis.call('HGET', KEYS[2], ARGV[4]) or '0') ~= ARGV[5] then
    return 0
end
local fetched = now_ms()
redis.call('HSET', KEYS[1], 'body', ARGV[1], 'etag', ARGV[2], 'fetched_ms', fetched, 'generation', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', KEYS[3], ARGV[6])
return 1
"#,
    )
});

/// Lets go of a load lock, if this instance still holds it.
static UNLOCK: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"#,
    )
});

/// Bumps the generations of the routes a write changed and tells every
/// instance; answers how many instances heard it, and the message. KEYS:
/// the generations, the invalidations channel. ARGV: the invalidation's id,
/// then the routes.
static INVALIDATE: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r#"
local changed = {}
for i = 2, #ARGV do
    local generation = redis.call('HINCRBY', KEYS[1], ARGV[i], 1)
    changed[#changed + 1] = ARGV[i] .. '=' .. generation
end
local message = ARGV[1] .. ' ' .. table.concat(changed, ' ')
return {redis.call('PUBLISH', KEYS[2], message), message}
"#,
    )
});

/// What waiters on this instance wait to hear on the invalidations channel
/// (`!ack <id>`: an invalidation was acknowledged; `!loaded <route>
/// <variant>`: a cold key's answer was stored), each by its topic. The
/// subscription wakes them; each also looks again after [`WAKE_FALLBACK`].
#[derive(Default)]
struct Signals(std::sync::Mutex<HashMap<String, Arc<tokio::sync::Notify>>>);

impl Signals {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Notify>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts waiting for `topic`; the wait ends when the guard goes.
    fn wait_for(&self, topic: String) -> Waiting<'_> {
        let notify = Arc::clone(self.map().entry(topic.clone()).or_default());
        Waiting {
            signals: self,
            topic,
            notify,
        }
    }

    /// Wakes whoever waits for `topic` here (nobody, mostly).
    fn wake(&self, topic: &str) {
        if let Some(notify) = self.map().get(topic) {
            notify.notify_waiters();
        }
    }
}

/// One wait for a topic; its entry goes when the last waiter does.
struct Waiting<'a> {
    signals: &'a Signals,
    topic: String,
    notify: Arc<tokio::sync::Notify>,
}

impl Waiting<'_> {
    /// Waits until woken, or [`WAKE_FALLBACK`]; `look` runs in between, with
    /// the wake-up already armed, so a signal that comes while it runs is
    /// not missed.
    async fn until<T>(&self, look: impl AsyncFnOnce() -> Option<T>) -> Result<T, ()> {
        let woken = self.notify.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if let Some(found) = look().await {
            return Ok(found);
        }
        tokio::select! {
            () = woken => {}
            () = tokio::time::sleep(WAKE_FALLBACK) => {}
        }
        Err(())
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut map = self.signals.map();
        // The map's and this one: nobody else waits.
        if Arc::strong_count(&self.notify) <= 2 {
            map.remove(&self.topic);
        }
    }
}

pub(super) struct Cluster {
    redis: Arc<SharedRedis>,
    coherence: Arc<Coherence>,
    signals: Arc<Signals>,
    /// How long a load lock is held at most, and a waiter waits at most.
    lease: Duration,
}

/// What Redis holds for a key: the route's generation, and the answer
/// stored under it (body, ETag, age) if any.
struct Found {
    generation: u64,
    stored: Option<(Vec<u8>, String, Duration)>,
}

impl Found {
    fn entry(self, life: Lifetime, epoch: u64) -> Option<Arc<Cached>> {
        let generation = self.generation;
        self.stored.map(|(body, etag, age)| {
            Arc::new(Cached {
                forms: super::Forms::of(&body),
                body: body.into(),
                etag_header: super::etag_header(&etag),
                etag,
                received: Instant::now(),
                age_on_receipt: age,
                ttl: life.ttl,
                tag: Tag { generation, epoch },
                origin: Origin::Shared,
            })
        })
    }
}

/// Why a read went past Redis, for `gateway_cache_fallbacks_total`.
fn fell_back(reason: &'static str) {
    tracing::debug!(reason, "cache read falls back to Slitz without Redis");
    metrics::counter!("gateway_cache_fallbacks_total", "reason" => reason).increment(1);
}

impl Cluster {
    /// Starts listening for invalidations (in the current Tokio runtime).
    pub(super) fn start(
        redis: Arc<SharedRedis>,
        coherence: Arc<Coherence>,
        lease: Duration,
    ) -> Self {
        let signals = Arc::new(Signals::default());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(listen(
                    Arc::clone(&redis),
                    Arc::downgrade(&coherence),
                    Arc::clone(&signals),
                ));
            }
            // Never listening: written routes bypass L1 and account changes
            // answer 503, which is safe, and /readyz says so.
            Err(_) => tracing::error!(
                "built outside a Tokio runtime: not listening for cache invalidations"
            ),
        }
        Self {
            redis,
            coherence,
            signals,
            lease,
        }
    }

    fn key(&self, route: Route, variant: &str) -> String {
        self.redis.keys().cache_entry(route.name(), variant)
    }

    fn lock_key(&self, route: Route, generation: u64, variant: &str) -> String {
        self.redis
            .keys()
            .cache_lock(route.name(), generation, variant)
    }

    /// Loads `route`/`variant` through Redis: a fresh answer there is a hit;
    /// else one instance in the cluster loads it from Slitz (a short lock)
    /// while the others wait for it to appear. Without a usable Redis the
    /// load goes straight to Slitz. `stale` is this instance's expired copy.
    pub(super) async fn load<F, Fut>(
        &self,
        route: Route,
        variant: &str,
        life: Lifetime,
        tag: Tag,
        mut stale: Option<Arc<Cached>>,
        load: F,
    ) -> Result<Arc<Cached>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, ApiError>>,
    {
        if !self.coherence.is_listening() {
            fell_back("unavailable");
            return settle(load().await, stale, life, tag);
        }
        let token = uuid::Uuid::new_v4().to_string();
        let waiting_since = Instant::now();
        // Woken when the instance loading it stores the answer.
        let waiting = self
            .signals
            .wait_for(format!("loaded {} {variant}", route.name()));
        loop {
            let woken = waiting.notify.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let Ok(found) = self.read(route, variant).await else {
                fell_back("error");
                break;
            };
            self.coherence.observe(route, found.generation);
            // A copy from before a write elsewhere is never served, not even stale.
            stale = stale.filter(|old| old.tag.generation == found.generation);
            let tag = Tag {
                generation: found.generation,
                epoch: tag.epoch,
            };
            if let Some(shared) = found.entry(life, tag.epoch) {
                if shared.is_fresh() {
                    return Ok(shared);
                }
                if stale.as_ref().is_none_or(|old| shared.age() < old.age()) {
                    stale = Some(shared);
                }
            }
            let lock = self.lock_key(route, tag.generation, variant);
            match self.lock(&lock, &token).await {
                Ok(true) => {
                    return self
                        .load_holding(route, variant, life, tag, stale, load, &lock, &token)
                        .await;
                }
                Ok(false) if waiting_since.elapsed() < self.lease => {
                    tokio::select! {
                        () = woken => {}
                        () = tokio::time::sleep(WAKE_FALLBACK) => {}
                    }
                }
                Ok(false) => {
                    fell_back("lock_expired");
                    break;
                }
                Err(_) => {
                    fell_back("error");
                    break;
                }
            }
        }
        settle(load().await, stale, life, tag)
    }

    /// The load of the instance holding the lock: Slitz, then Redis for the
    /// others, then the lock is let go.
    #[allow(clippy::too_many_arguments)]
    async fn load_holding<F, Fut>(
        &self,
        route: Route,
        variant: &str,
        life: Lifetime,
        tag: Tag,
        stale: Option<Arc<Cached>>,
        load: F,
        lock: &str,
        token: &str,
    ) -> Result<Arc<Cached>, ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<u8>, ApiError>>,
    {
        // Another instance may have stored it between the read and the lock.
        if let Ok(found) = self.read(route, variant).await
            && found.generation == tag.generation
            && let Some(shared) = found.entry(life, tag.epoch)
            && shared.is_fresh()
        {
            self.unlock(lock, token).await;
            return Ok(shared);
        }
        let result = settle(load().await, stale, life, tag);
        if let Ok(entry) = &result
            && entry.origin == Origin::Upstream
        {
            self.write(route, tag.generation, variant, entry, life)
                .await;
        }
        self.unlock(lock, token).await;
        result
    }

    async fn read(&self, route: Route, variant: &str) -> Result<Found, ()> {
        let generations = self.redis.keys().cache_generations();
        let entry = self.key(route, variant);
        let reply = self
            .redis
            .call("cache read", |mut c| async move {
                READ.key(generations)
                    .key(entry)
                    .arg(route.name())
                    .invoke_async::<Vec<Value>>(&mut c)
                    .await
            })
            .await
            .map_err(|_| ())?;
        parse_found(reply).ok_or_else(|| {
            tracing::warn!("the shared cache answered in an unexpected shape");
        })
    }

    async fn write(
        &self,
        route: Route,
        generation: u64,
        variant: &str,
        entry: &Cached,
        life: Lifetime,
    ) {
        let keep = life.ttl.saturating_add(life.grace).as_millis();
        if keep == 0 {
            return;
        }
        let key = self.key(route, variant);
        let generations = self.redis.keys().cache_generations();
        let channel = self.redis.keys().cache_invalidations();
        let loaded = format!("!loaded {} {variant}", route.name());
        // Failures are counted and logged by `call`; the answer is served anyway.
        let _ = self
            .redis
            .call("cache write", |mut c| async move {
                WRITE
                    .key(key)
                    .key(generations)
                    .key(channel)
                    .arg(entry.body.as_ref())
                    .arg(entry.etag.as_str())
                    .arg(u64::try_from(keep).unwrap_or(u64::MAX))
                    .arg(route.name())
                    .arg(generation)
                    .arg(loaded)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await;
    }

    async fn lock(&self, key: &str, token: &str) -> Result<bool, ()> {
        let lease = u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX);
        self.redis
            .call("cache lock", |mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(token)
                    .arg("NX")
                    .arg("PX")
                    .arg(lease)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await
            .map(|set| set.is_some())
            .map_err(|_| ())
    }

    async fn unlock(&self, key: &str, token: &str) {
        // When this fails, the lock lapses after its lease.
        let _ = self
            .redis
            .call("cache unlock", |mut c| async move {
                UNLOCK.key(key).arg(token).invoke_async::<i64>(&mut c).await
            })
            .await;
    }

    /// Refuses a write whose invalidation could not reach every instance:
    /// this instance does not hear invalidations, or Redis does not answer.
    pub(super) async fn before_write(&self) -> Result<(), ApiError> {
        if !self.coherence.is_listening() {
            return Err(ApiError::StateUnavailable(
                "the gateway cannot reach Redis to tell the other instances about this change; \
                 nothing was sent, retry later"
                    .into(),
            ));
        }
        self.redis.ping().await.map_err(|e| {
            ApiError::StateUnavailable(format!(
                "the gateway cannot reach Redis to tell the other instances about this change \
                 ({e}); nothing was sent, retry later"
            ))
        })
    }

    /// Bumps the generations of `routes` in Redis, tells every instance, and
    /// waits until each that heard it has applied it (bounded by 5 ×
    /// `redis.timeout_ms`). When Redis fails here, after the write, this
    /// instance at least stops trusting its own copies.
    pub(super) async fn invalidate(&self, routes: &[Route]) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (generations, channel) = (
            self.redis.keys().cache_generations(),
            self.redis.keys().cache_invalidations(),
        );
        let names: Vec<&'static str> = routes.iter().map(|r| r.name()).collect();
        let published = self
            .redis
            .call("cache invalidate", |mut c| {
                let id = id.clone();
                async move {
                    let mut script = INVALIDATE.prepare_invoke();
                    script.key(generations).key(channel).arg(id);
                    for name in names {
                        script.arg(name);
                    }
                    script.invoke_async::<(u64, String)>(&mut c).await
                }
            })
            .await;
        let (listeners, message) = match published {
            Ok(published) => published,
            Err(error) => {
                tracing::error!(error = %error, "a write's invalidation did not reach the other instances; they may serve the old answer until its TTL");
                metrics::counter!("gateway_cache_invalidations_total", "outcome" => "failed")
                    .increment(1);
                // This instance at least forgets its own copies of written
                // routes; the subscription itself may be fine.
                self.coherence.new_epoch();
                return;
            }
        };
        if let Some((_, changed)) = parse_invalidation(&message) {
            changed
                .into_iter()
                .for_each(|(route, generation)| self.coherence.observe(route, generation));
        }
        let outcome = if self.acknowledged(&id, listeners).await {
            "confirmed"
        } else {
            tracing::warn!(
                listeners,
                "not every instance confirmed a write's invalidation in time"
            );
            "unconfirmed"
        };
        metrics::counter!("gateway_cache_invalidations_total", "outcome" => outcome).increment(1);
    }

    /// Whether `listeners` instances have applied invalidation `id`: looks
    /// once, then each time an acknowledgement is heard on the channel (or
    /// after [`WAKE_FALLBACK`]), bounded by 5 × `redis.timeout_ms`.
    async fn acknowledged(&self, id: &str, listeners: u64) -> bool {
        let key = self.redis.keys().cache_ack(id);
        let give_up = Instant::now()
            .checked_add(self.redis.timeout().saturating_mul(5))
            .unwrap_or_else(Instant::now);
        let waiting = self.signals.wait_for(format!("ack {id}"));
        loop {
            let look = async || {
                let acks = self
                    .redis
                    .call("cache acknowledgements", |mut c| {
                        let key = key.clone();
                        async move {
                            redis::cmd("GET")
                                .arg(key)
                                .query_async::<Option<u64>>(&mut c)
                                .await
                        }
                    })
                    .await;
                acks.is_ok_and(|n| n.unwrap_or_default() >= listeners)
                    .then_some(())
            };
            if waiting.until(look).await.is_ok() {
                return true;
            }
            if Instant::now() >= give_up {
                return false;
            }
        }
    }
}

fn parse_found(reply: Vec<Value>) -> Option<Found> {
    let mut fields = reply.into_iter();
    let generation: u64 = redis::from_redis_value(fields.next()?).ok()?;
    let stored = match (fields.next(), fields.next(), fields.next()) {
        (Some(body), Some(etag), Some(age)) => Some((
            redis::from_redis_value::<Vec<u8>>(body).ok()?,
            redis::from_redis_value::<String>(etag).ok()?,
            Duration::from_millis(redis::from_redis_value::<u64>(age).ok()?),
        )),
        _ => None,
    };
    Some(Found { generation, stored })
}

/// `{id} {route}={generation} …`; the id is what acknowledgements count
/// under, so only a plain token is taken.
fn parse_invalidation(message: &str) -> Option<(&str, Vec<(Route, u64)>)> {
    let mut parts = message.split(' ');
    let id = parts.next().filter(|id| {
        (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric())
    })?;
    let changed = parts
        .filter_map(|part| {
            let (name, generation) = part.split_once('=')?;
            let route = Route::named(name)?;
            Some((route, generation.parse().ok()?))
        })
        .collect();
    Some((id, changed))
}

/// Hears invalidations for as long as the cache lives: applies each one and
/// acknowledges it; checks the subscription every [`HEARTBEAT`]; when it is
/// lost, stops trusting copies of written routes and subscribes again.
async fn listen(redis: Arc<SharedRedis>, coherence: Weak<Coherence>, signals: Arc<Signals>) {
    let channel = redis.keys().cache_invalidations();
    let mut backoff = Duration::from_millis(50);
    while coherence.strong_count() > 0 {
        match subscribe(&redis, &channel).await {
            Ok((mut sink, mut stream, generations)) => {
                let Some(alive) = coherence.upgrade() else {
                    return;
                };
                alive.listening_from(&generations);
                drop(alive);
                tracing::info!("listening for cache invalidations");
                backoff = Duration::from_millis(50);
                let mut beat = tokio::time::interval(HEARTBEAT);
                loop {
                    tokio::select! {
                        message = stream.next() => match message {
                            Some(message) => heard(&redis, &coherence, &signals, &message).await,
                            None => break,
                        },
                        _ = beat.tick() => {
                            if coherence.strong_count() == 0 {
                                return;
                            }
                            let ping = tokio::time::timeout(redis.timeout(), sink.ping::<Value>()).await;
                            if !matches!(ping, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
                tracing::warn!(
                    "lost the subscription to cache invalidations; not trusting copies of written routes until it is back"
                );
            }
            Err(error) => {
                tracing::debug!(error = %error, "cannot subscribe to cache invalidations")
            }
        }
        match coherence.upgrade() {
            Some(alive) => alive.deaf(),
            None => return,
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2).min(HEARTBEAT);
    }
}

type Subscription = (
    redis::aio::PubSubSink,
    redis::aio::PubSubStream,
    HashMap<Route, u64>,
);

/// Subscribes, then reads the generations: an invalidation published in
/// between arrives on the subscription, so none is missed.
async fn subscribe(
    redis: &SharedRedis,
    channel: &str,
) -> Result<Subscription, crate::shared::RedisUnavailable> {
    let (mut sink, stream) = redis.subscriber().await?.split();
    match tokio::time::timeout(redis.timeout(), sink.subscribe(channel)).await {
        Ok(Ok(())) => {}
        _ => {
            return Err(crate::shared::RedisUnavailable::new(
                "cannot subscribe to cache invalidations",
            ));
        }
    }
    let key = redis.keys().cache_generations();
    let generations = redis
        .call("cache generations", |mut c| async move {
            redis::cmd("HGETALL")
                .arg(key)
                .query_async::<HashMap<String, u64>>(&mut c)
                .await
        })
        .await?
        .into_iter()
        .filter_map(|(name, generation)| Route::named(&name).map(|route| (route, generation)))
        .collect();
    Ok((sink, stream, generations))
}

/// One message of the channel: a signal for the waiters here (`!ack`,
/// `!loaded`), or an invalidation to apply.
async fn heard(
    redis: &SharedRedis,
    coherence: &Weak<Coherence>,
    signals: &Signals,
    message: &redis::Msg,
) {
    let Ok(payload) = message.get_payload::<String>() else {
        return;
    };
    if let Some(id) = payload.strip_prefix("!ack ") {
        signals.wake(&format!("ack {id}"));
    } else if let Some(what) = payload.strip_prefix("!loaded ") {
        signals.wake(&format!("loaded {what}"));
    } else {
        apply(redis, coherence, &payload).await;
    }
}

/// Applies one invalidation here, then counts this instance in its
/// acknowledgements.
async fn apply(redis: &SharedRedis, coherence: &Weak<Coherence>, payload: &str) {
    let Some((id, changed)) = parse_invalidation(payload) else {
        tracing::warn!("ignoring a malformed cache invalidation");
        return;
    };
    let Some(alive) = coherence.upgrade() else {
        return;
    };
    changed
        .into_iter()
        .for_each(|(route, generation)| alive.observe(route, generation));
    drop(alive);
    let (key, channel) = (
        redis.keys().cache_ack(id),
        redis.keys().cache_invalidations(),
    );
    let id = id.to_owned();
    // When the acknowledgement fails, the writer reports the invalidation unconfirmed.
    let _ = redis
        .call("cache acknowledge", |mut c| async move {
            ACKNOWLEDGE
                .key(key)
                .key(channel)
                .arg(id)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_waiter_is_woken_by_its_signal_or_looks_again_after_the_fallback() {
        let signals = Signals::default();
        let waiting = signals.wait_for("loaded account ".to_owned());
        // Nothing heard: it looks again after the fallback.
        let started = tokio::time::Instant::now();
        assert!(waiting.until(async || None::<()>).await.is_err());
        assert_eq!(started.elapsed(), WAKE_FALLBACK);
        // A signal while it looks is not missed: it returns at once.
        let started = tokio::time::Instant::now();
        let look = async || {
            signals.wake("loaded account ");
            None::<()>
        };
        assert!(waiting.until(look).await.is_err());
        assert_eq!(started.elapsed(), Duration::ZERO);
        // Another topic's signal does not wake it.
        let started = tokio::time::Instant::now();
        let look = async || {
            signals.wake("loaded invoice 1");
            None::<()>
        };
        assert!(waiting.until(look).await.is_err());
        assert_eq!(started.elapsed(), WAKE_FALLBACK);
        // Found while looking: no wait at all.
        assert_eq!(waiting.until(async || Some(7)).await, Ok(7));
        // The last waiter gone, its topic is forgotten.
        drop(waiting);
        assert!(signals.map().is_empty());
    }

    #[test]
    fn an_invalidation_names_its_id_and_the_new_generations() {
        let (id, changed) = parse_invalidation("ab12 account=3 invoice=7").unwrap();
        assert_eq!(id, "ab12");
        assert_eq!(changed, vec![(Route::Account, 3), (Route::Invoice, 7)]);
    }

    #[test]
    fn a_malformed_invalidation_is_refused_or_skips_what_it_cannot_read() {
        assert!(parse_invalidation("").is_none());
        assert!(parse_invalidation("a:b account=1").is_none());
        assert!(parse_invalidation("ключ account=1").is_none());
        let (_, changed) = parse_invalidation("ab nosuch=1 account=x invoice=2 =").unwrap();
        assert_eq!(changed, vec![(Route::Invoice, 2)]);
    }
}
