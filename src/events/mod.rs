//! Live change events: what changed, as a Server-Sent Events stream
//! (`GET /v1/events`).
//!
//! Two sources publish into one [`EventHub`]: the writes the gateway makes
//! (a customer created, activated or suspended; the account changed) and
//! the [`watcher`], which reads Slitz's lists while anyone is subscribed and
//! publishes one event per record that appeared or changed.
//!
//! Each event is formatted once, as its SSE frame, and kept in a bounded
//! ring for `Last-Event-ID` to replay. Subscribers receive from a broadcast
//! channel whose capacity is each one's buffer: publishing never waits for
//! a subscriber, and one that falls further behind than its buffer gets a
//! final `reset` event and is dropped, without the others noticing.
//!
//! Event ids are `<boot>-<sequence>` alone (the instance's start time and a
//! counter). With `[redis]` ([`shared`]) every event goes through a Redis
//! stream and its id is the stream's (`<ms>-<n>`): every instance hears every
//! event in one order, and `Last-Event-ID` replays from the stream on any
//! instance. An id that cannot be replayed (another boot, older than what is
//! kept, or unknown) gets a `reset` event: refetch, then follow.

pub mod shared;
mod types;
pub mod watcher;

pub use types::{ChangeEvent, EventType, ResetEvent, ResetReason, TypeFilter};

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::web::Bytes;
use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::{
    configuration::EventSettings, context::Draining, error::ApiError, shared::SharedRedis,
};

/// An event's id: `<boot>-<sequence>` on one instance, the Redis stream's
/// `<ms>-<n>` with `[redis]`; ordered as the pair of numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EventId(u64, u64);

impl EventId {
    pub fn parse(text: &str) -> Option<Self> {
        let (major, minor) = text.trim().split_once('-')?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(major) || !digits(minor) {
            return None;
        }
        Some(Self(major.parse().ok()?, minor.parse().ok()?))
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// The members of `after` whose value differs from `before` (or that
/// `before` lacks), with their new values: what an `*.updated` event says
/// changed.
pub fn changed_members(
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) -> Map<String, Value> {
    after
        .iter()
        .filter(|(name, value)| before.get(*name) != Some(value))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// What subscribers hear: an event, or that events were missed (they get a
/// `reset`, and their streams end).
#[derive(Debug, Clone)]
pub enum Live {
    Event(Arc<Event>),
    Reset(ResetReason),
}

/// One published event: its id, its type and its SSE frame, formatted once.
#[derive(Debug)]
pub struct Event {
    pub id: EventId,
    pub event_type: EventType,
    pub frame: Bytes,
}

impl Event {
    fn new(id: EventId, event_type: EventType, data: &str) -> Self {
        Self {
            id,
            event_type,
            frame: Bytes::from(format!(
                "id: {id}\nevent: {}\ndata: {data}\n\n",
                event_type.as_str()
            )),
        }
    }
}

/// The hub every publisher and subscriber of this instance shares.
pub struct EventHub {
    boot: u64,
    seq: AtomicU64,
    /// With `[redis]`: events go through it, for every instance.
    shared: Option<shared::Shared>,
    settings: EventSettings,
    /// The recent events, oldest first, for `Last-Event-ID`; also the lock
    /// under which an event is numbered, kept and sent, so a subscriber that
    /// joins under it misses nothing and sees nothing twice.
    ring: Mutex<VecDeque<Arc<Event>>>,
    live: broadcast::Sender<Live>,
    subscribers: Mutex<HashMap<String, u64>>,
    total: AtomicUsize,
    watching: AtomicBool,
    draining: Draining,
    /// The cached routes a change the watcher sees makes stale: the stream
    /// route's declared `invalidates`, given at start.
    invalidates: &'static [crate::configuration::Route],
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EventHub {
    pub fn new(settings: &EventSettings, draining: Draining) -> Self {
        Self::with_redis(settings, draining, None)
    }

    /// A hub whose events go through `redis` when given.
    pub fn with_redis(
        settings: &EventSettings,
        draining: Draining,
        redis: Option<Arc<SharedRedis>>,
    ) -> Self {
        let buffer = usize::try_from(settings.buffer)
            .unwrap_or(usize::MAX)
            .max(1);
        let (live, _) = broadcast::channel(buffer);
        // There from the start, so rates and alerts see zero, not nothing.
        metrics::gauge!("gateway_event_subscribers").set(0.0);
        metrics::gauge!("gateway_event_watcher_leader").set(0.0);
        metrics::counter!("gateway_event_subscribers_dropped_total").increment(0);
        metrics::counter!("gateway_events_lost_total").increment(0);
        Self {
            boot: u64::try_from(Utc::now().timestamp_millis()).unwrap_or_default(),
            seq: AtomicU64::new(0),
            shared: redis.map(|redis| shared::Shared::new(redis, settings)),
            settings: settings.clone(),
            ring: Mutex::new(VecDeque::new()),
            live,
            subscribers: Mutex::new(HashMap::new()),
            total: AtomicUsize::new(0),
            watching: AtomicBool::new(false),
            draining,
            invalidates: &[],
        }
    }

    /// Forgets `routes` from the cache on every change the watcher sees
    /// (the stream route's declared `invalidates`).
    pub fn invalidating(mut self, routes: &'static [crate::configuration::Route]) -> Self {
        self.invalidates = routes;
        self
    }

    pub(crate) fn invalidates(&self) -> &'static [crate::configuration::Route] {
        self.invalidates
    }

    pub fn settings(&self) -> &EventSettings {
        &self.settings
    }

    /// Open streams on this instance.
    pub fn subscribers(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Publishes that `resource` (its id) changed: `changed` holds the
    /// fields that changed with their new, normalized values. Never waits:
    /// with `[redis]` the event is handed to this instance's publisher,
    /// which adds it to the stream in order.
    pub fn publish(&self, event_type: EventType, id: i64, changed: Map<String, Value>) {
        let event = ChangeEvent {
            event_type,
            id,
            changed,
            seen_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        };
        let data = serde_json::to_string(&event).unwrap_or_default();
        metrics::counter!("gateway_events_published_total", "type" => event_type.as_str())
            .increment(1);
        match &self.shared {
            Some(shared) => shared.publish(event_type, data, &self.live),
            None => {
                let mut ring = lock(&self.ring);
                let seq = self.seq.fetch_add(1, Ordering::Relaxed).saturating_add(1);
                self.deliver_locked(
                    &mut ring,
                    Event::new(EventId(self.boot, seq), event_type, &data),
                );
            }
        }
    }

    /// Keeps `event` for replay and sends it to every subscriber here.
    fn deliver_locked(&self, ring: &mut VecDeque<Arc<Event>>, event: Event) {
        let event = Arc::new(event);
        ring.push_back(Arc::clone(&event));
        let keep = usize::try_from(self.settings.replay).unwrap_or(usize::MAX);
        while ring.len() > keep {
            ring.pop_front();
        }
        // No receiver is not an error: nobody is listening.
        let _ = self.live.send(Live::Event(event));
    }

    /// An event heard from the shared stream.
    fn deliver(&self, event: Event) {
        let mut ring = lock(&self.ring);
        self.deliver_locked(&mut ring, event);
    }

    /// Opens a stream for `key`: what `last_event_id` missed (or a `reset`
    /// when it cannot be replayed), then every event as it is published.
    pub async fn subscribe(
        self: &Arc<Self>,
        key: &str,
        last_event_id: Option<&str>,
        filter: TypeFilter,
    ) -> Result<Subscription, ApiError> {
        let guard = SubscriberGuard::enter(self, key)?;
        let last = last_event_id.map(str::trim).filter(|l| !l.is_empty());
        let (live, backlog, after, reset) = match &self.shared {
            None => {
                let ring = lock(&self.ring);
                let live = self.live.subscribe();
                let newest = EventId(self.boot, self.seq.load(Ordering::Relaxed));
                let (backlog, after, reset) = match last.map(|l| self.replayable(&ring, l)) {
                    None => (VecDeque::new(), newest, None),
                    Some(Ok(from)) => (
                        ring.iter().filter(|e| e.id > from).cloned().collect(),
                        newest,
                        None,
                    ),
                    Some(Err(reason)) => (VecDeque::new(), newest, Some(reason)),
                };
                (live, backlog, after, reset)
            }
            Some(shared) => {
                // Heard live first, then read back: nothing published in
                // between is missed (duplicates are skipped by id).
                shared.listen(self).await?;
                let live = self.live.subscribe();
                let (backlog, after, reset) = shared.replay(last).await?;
                (
                    live,
                    backlog.into_iter().map(Arc::new).collect(),
                    after,
                    reset,
                )
            }
        };
        Ok(Subscription {
            hub: Arc::clone(self),
            filter,
            backlog,
            after,
            live,
            reset,
            started: false,
            done: false,
            ends_at: match self.settings.max_stream_seconds {
                0 => None,
                // Bounded at load (a day), so this always adds.
                seconds => tokio::time::Instant::now().checked_add(Duration::from_secs(seconds)),
            },
            _guard: guard,
        })
    }

    /// The id after which `last` resumes from this instance's ring, or why
    /// it cannot.
    fn replayable(&self, ring: &VecDeque<Arc<Event>>, last: &str) -> Result<EventId, ResetReason> {
        let id = EventId::parse(last).ok_or(ResetReason::UnknownId)?;
        let newest = EventId(self.boot, self.seq.load(Ordering::Relaxed));
        if id.0 != self.boot || id > newest {
            return Err(ResetReason::UnknownId);
        }
        // Resumable when the event right after `id` is still kept (or
        // nothing was published since).
        let next = EventId(id.0, id.1.saturating_add(1));
        match ring.front() {
            Some(oldest) if next < oldest.id => Err(ResetReason::TooOld),
            _ => Ok(id),
        }
    }

    /// Whether the watcher should start: true once, for the subscriber that
    /// finds it stopped.
    fn claim_watching(&self) -> bool {
        !self.watching.swap(true, Ordering::AcqRel)
    }
}

/// Counts an open stream against its key and the instance; uncounts it
/// when the stream ends, however it ends.
struct SubscriberGuard {
    hub: Arc<EventHub>,
    key: String,
}

impl SubscriberGuard {
    fn enter(hub: &Arc<EventHub>, key: &str) -> Result<Self, ApiError> {
        let mut counts = lock(&hub.subscribers);
        let count = counts.entry(key.to_owned()).or_insert(0);
        if *count >= hub.settings.max_subscribers_per_key {
            return Err(ApiError::TooManyStreams {
                limit: hub.settings.max_subscribers_per_key,
            });
        }
        *count = count.saturating_add(1);
        let total = hub.total.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        metrics::gauge!("gateway_event_subscribers").set(total as f64);
        Ok(Self {
            hub: Arc::clone(hub),
            key: key.to_owned(),
        })
    }
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        let mut counts = lock(&self.hub.subscribers);
        if let Some(count) = counts.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
        let total = self
            .hub
            .total
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        metrics::gauge!("gateway_event_subscribers").set(total as f64);
    }
}

/// One subscriber's stream, as SSE frames.
pub struct Subscription {
    hub: Arc<EventHub>,
    filter: TypeFilter,
    backlog: VecDeque<Arc<Event>>,
    /// The last event already handed over (replayed or skipped).
    after: EventId,
    live: broadcast::Receiver<Live>,
    reset: Option<ResetReason>,
    started: bool,
    done: bool,
    /// `events.max_stream_seconds` after it opened, when set.
    ends_at: Option<tokio::time::Instant>,
    _guard: SubscriberGuard,
}

/// How long a reader waits for a new event before it checks whether the
/// gateway is draining.
const DRAIN_CHECK: Duration = Duration::from_millis(500);

pub(crate) fn reset_frame(reason: ResetReason) -> Bytes {
    let data = ResetEvent {
        reason,
        detail: "events were missed: refetch what you show, then follow this stream",
    };
    Bytes::from(format!(
        "event: reset\ndata: {}\n\n",
        serde_json::to_string(&data).unwrap_or_default()
    ))
}

impl Subscription {
    /// Whether `events.max_stream_seconds` is up.
    fn ended(&self) -> bool {
        self.ends_at
            .is_some_and(|end| tokio::time::Instant::now() >= end)
    }

    /// The next frame to send, waiting for one; `None` when the stream ends
    /// (the gateway drains, this subscriber fell behind and got its
    /// `reset`, or `events.max_stream_seconds` is up: the client resumes).
    pub async fn next_frame(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            // The reconnection delay a client should use (ms).
            let mut first = String::from("retry: 3000\n\n");
            if let Some(reason) = self.reset.take() {
                first.push_str(&String::from_utf8_lossy(&reset_frame(reason)));
            }
            return Some(Bytes::from(first));
        }
        while let Some(event) = self.backlog.pop_front() {
            if self.filter.wants(event.event_type) {
                return Some(event.frame.clone());
            }
        }
        let heartbeat = Duration::from_secs(self.hub.settings.heartbeat_seconds);
        let now = tokio::time::Instant::now();
        // The heartbeat is bounded at load (300 s), so this always adds.
        let deadline = now.checked_add(heartbeat).unwrap_or(now);
        loop {
            let now = tokio::time::Instant::now();
            if self.hub.draining.is_set() || self.ends_at.is_some_and(|end| now >= end) {
                self.done = true;
                return None;
            }
            let mut wait = deadline.saturating_duration_since(now).min(DRAIN_CHECK);
            if let Some(end) = self.ends_at {
                wait = wait.min(end.saturating_duration_since(now));
            }
            match tokio::time::timeout(wait, self.live.recv()).await {
                Ok(Ok(Live::Reset(reason))) => {
                    self.done = true;
                    return Some(reset_frame(reason));
                }
                Ok(Ok(Live::Event(event))) => {
                    if event.id <= self.after {
                        continue;
                    }
                    self.after = event.id;
                    if self.filter.wants(event.event_type) {
                        return Some(event.frame.clone());
                    }
                }
                Ok(Err(RecvError::Lagged(_))) => {
                    // Too slow for its buffer: told, and dropped.
                    self.done = true;
                    metrics::counter!("gateway_event_subscribers_dropped_total").increment(1);
                    return Some(reset_frame(ResetReason::FellBehind));
                }
                Ok(Err(RecvError::Closed)) => {
                    self.done = true;
                    return None;
                }
                Err(_) if tokio::time::Instant::now() >= deadline && !self.ended() => {
                    return Some(Bytes::from_static(b": heartbeat\n\n"));
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn hub(replay: u64, buffer: u64) -> Arc<EventHub> {
        Arc::new(EventHub::new(
            &EventSettings {
                replay,
                buffer,
                heartbeat_seconds: 1,
                ..EventSettings::default()
            },
            Draining::default(),
        ))
    }

    fn text(bytes: &Bytes) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    #[test]
    fn type_filters_take_types_resources_and_star() {
        let f = TypeFilter::parse("invoice.*, ticket.updated").unwrap();
        assert!(f.wants(EventType::InvoiceCreated) && f.wants(EventType::InvoiceUpdated));
        assert!(f.wants(EventType::TicketUpdated) && !f.wants(EventType::TicketCreated));
        assert_eq!(TypeFilter::parse("*").unwrap(), TypeFilter::all());
        let error = TypeFilter::parse("invoice.paid,nope.*").unwrap_err();
        assert!(
            error.starts_with("names `invoice.paid`, `nope.*` that"),
            "{error}"
        );
        assert!(TypeFilter::parse(" , ").is_err());
    }

    #[tokio::test]
    async fn a_subscriber_gets_what_is_published_after_it_joined_filtered() {
        let hub = hub(10, 10);
        hub.publish(EventType::InvoiceUpdated, 1, Map::new());
        let mut sub = hub
            .subscribe("k", None, TypeFilter::parse("ticket.*").unwrap())
            .await
            .unwrap();
        assert!(text(&sub.next_frame().await.unwrap()).starts_with("retry: "));
        hub.publish(EventType::InvoiceUpdated, 2, Map::new());
        hub.publish(EventType::TicketUpdated, 3, Map::new());
        let frame = text(&sub.next_frame().await.unwrap());
        assert!(frame.contains("event: ticket.updated\n"), "{frame}");
        assert!(frame.contains(r#""id":3"#), "{frame}");
        assert_eq!(hub.subscribers(), 1);
        drop(sub);
        assert_eq!(hub.subscribers(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_ends_after_max_stream_seconds_when_set_and_not_before() {
        let bounded = Arc::new(EventHub::new(
            &EventSettings {
                max_stream_seconds: 30,
                heartbeat_seconds: 10,
                ..EventSettings::default()
            },
            Draining::default(),
        ));
        let mut sub = bounded
            .subscribe("k", None, TypeFilter::all())
            .await
            .unwrap();
        let opened = tokio::time::Instant::now();
        assert!(text(&sub.next_frame().await.unwrap()).starts_with("retry: "));
        // Heartbeats while it lasts, then the end (on the paused clock).
        let mut heartbeats = 0;
        while let Some(frame) = sub.next_frame().await {
            assert!(text(&frame).starts_with(": heartbeat"), "{}", text(&frame));
            heartbeats += 1;
        }
        assert_eq!(heartbeats, 2, "at 10 s and 20 s");
        assert_eq!(opened.elapsed(), Duration::from_secs(30));
        // Without the setting a stream goes on: a day later it still beats.
        let lasting = hub(10, 10);
        let mut sub = lasting
            .subscribe("k", None, TypeFilter::all())
            .await
            .unwrap();
        sub.next_frame().await.unwrap();
        tokio::time::advance(Duration::from_secs(86_400)).await;
        assert!(sub.next_frame().await.is_some());
    }

    #[tokio::test]
    async fn last_event_id_replays_what_was_missed_or_resets() {
        let hub = hub(3, 10);
        for id in 1..=5 {
            hub.publish(EventType::TicketUpdated, id, Map::new());
        }
        let boot = hub.boot;
        // 3 is kept (3, 4, 5): after 3 come 4 and 5.
        let mut sub = hub
            .subscribe("k", Some(&format!("{boot}-3")), TypeFilter::all())
            .await
            .unwrap();
        assert!(text(&sub.next_frame().await.unwrap()).starts_with("retry: "));
        assert!(text(&sub.next_frame().await.unwrap()).contains(&format!("id: {boot}-4\n")));
        assert!(text(&sub.next_frame().await.unwrap()).contains(&format!("id: {boot}-5\n")));
        hub.publish(EventType::TicketUpdated, 6, Map::new());
        assert!(text(&sub.next_frame().await.unwrap()).contains(&format!("id: {boot}-6\n")));
        for stale in [
            format!("{boot}-1"),
            "0-1".to_owned(),
            "garbage".to_owned(),
            format!("{boot}-99"),
        ] {
            let mut sub = hub
                .subscribe("k", Some(&stale), TypeFilter::all())
                .await
                .unwrap();
            let first = text(&sub.next_frame().await.unwrap());
            assert!(first.contains("event: reset\n"), "{stale}: {first}");
        }
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_gets_a_reset_and_ends() {
        let hub = hub(100, 2);
        let mut slow = hub.subscribe("k", None, TypeFilter::all()).await.unwrap();
        let mut fast = hub.subscribe("k", None, TypeFilter::all()).await.unwrap();
        slow.next_frame().await.unwrap();
        fast.next_frame().await.unwrap();
        for id in 1..=5 {
            hub.publish(EventType::TicketUpdated, id, Map::new());
            // The fast one keeps up.
            assert!(text(&fast.next_frame().await.unwrap()).contains(&format!(r#""id":{id}"#)));
        }
        let frame = text(&slow.next_frame().await.unwrap());
        assert!(
            frame.contains("event: reset\n") && frame.contains("fell-behind"),
            "{frame}"
        );
        assert!(slow.next_frame().await.is_none());
    }

    #[tokio::test]
    async fn an_idle_stream_gets_heartbeats_and_a_draining_one_ends() {
        let draining = Draining::default();
        let hub = Arc::new(EventHub::new(
            &EventSettings {
                heartbeat_seconds: 1,
                ..EventSettings::default()
            },
            draining.clone(),
        ));
        let mut sub = hub.subscribe("k", None, TypeFilter::all()).await.unwrap();
        sub.next_frame().await.unwrap();
        assert_eq!(text(&sub.next_frame().await.unwrap()), ": heartbeat\n\n");
        draining.set();
        assert!(sub.next_frame().await.is_none());
    }

    #[tokio::test]
    async fn streams_per_key_are_limited() {
        let hub = Arc::new(EventHub::new(
            &EventSettings {
                max_subscribers_per_key: 2,
                ..EventSettings::default()
            },
            Draining::default(),
        ));
        let a = hub.subscribe("k", None, TypeFilter::all()).await.unwrap();
        let _b = hub.subscribe("k", None, TypeFilter::all()).await.unwrap();
        assert!(matches!(
            hub.subscribe("k", None, TypeFilter::all()).await,
            Err(ApiError::TooManyStreams { limit: 2 })
        ));
        assert!(
            hub.subscribe("other", None, TypeFilter::all())
                .await
                .is_ok()
        );
        drop(a);
        assert!(hub.subscribe("k", None, TypeFilter::all()).await.is_ok());
    }

    proptest! {
        /// Any text as `?types=` or `Last-Event-ID`: parsed or refused,
        /// never a panic.
        #[test]
        fn any_types_or_last_event_id_text_is_handled(raw in ".{0,60}") {
            let _ = TypeFilter::parse(&raw);
            let hub = hub(5, 5);
            hub.publish(EventType::TicketUpdated, 1, Map::new());
            // Without Redis nothing in it waits.
            let subscribed = futures_util::FutureExt::now_or_never(hub.subscribe("k", Some(&raw), TypeFilter::all()));
            prop_assert!(matches!(subscribed, Some(Ok(_))));
        }
    }
}
