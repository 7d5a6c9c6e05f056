//! Events across instances, on Redis (`shared::conventions` names the keys):
//!
//! - **Publishing**: each instance hands its events to one publisher task,
//!   which adds each to the `events` stream (trimmed to `events.replay`) and
//!   announces it on `events:live` in one script, so the stream's order is
//!   the order every instance hears. A publish that Redis refuses is lost
//!   for every instance: this instance's subscribers get a `reset` (refetch).
//! - **Hearing**: an instance with subscribers listens on `events:live` and
//!   delivers what it hears to them. When the subscription breaks, its
//!   subscribers get a `reset`: reconnecting with `Last-Event-ID` replays
//!   the gap from the stream.
//! - **Replay**: `Last-Event-ID` is read back from the stream, on any
//!   instance.
//! - **One watcher for the cluster**: the instance holding the
//!   `events:watcher` lease polls Slitz; the lease lasts three polls and is
//!   renewed at each, so when its holder goes (or loses its last subscriber
//!   and lets go), another instance with subscribers takes over.

use std::{
    sync::{
        Arc, LazyLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc, watch};

use super::{Event, EventHub, EventId, EventType, Live, ResetReason};
use crate::{
    configuration::EventSettings,
    error::ApiError,
    shared::{SharedRedis, conventions::script},
};

/// Events waiting for the publisher; beyond this a publish is dropped (and
/// this instance's subscribers told to refetch) rather than memory grown.
const QUEUE: usize = 1024;

/// Adds an event to the stream and announces it, in one step.
static ADD: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        "local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], '*', 'type', ARGV[2], 'data', ARGV[3])
redis.call('PUBLISH', KEYS[2], id .. ' ' .. ARGV[2] .. ' ' .. ARGV[3])
return id",
    )
});

/// The stream's oldest and newest ids, and what follows ARGV[1] (at most
/// ARGV[2] entries), read at one moment.
static SINCE: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        "local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local after = {}
if ARGV[1] ~= '' then
    after = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
end
return {oldest[1] and oldest[1][1] or '', newest[1] and newest[1][1] or '', after}",
    )
});

/// Takes or renews the watcher lease for ARGV[1], for ARGV[2] ms: 1 when
/// this instance holds it now.
static LEAD: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        "local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
if not holder then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0",
    )
});

/// Lets go of the lease, only if this instance holds it.
static LET_GO: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0",
    )
});

pub struct Shared {
    redis: Arc<SharedRedis>,
    replay: u64,
    publisher: mpsc::Sender<(EventType, String)>,
    queue: std::sync::Mutex<Option<mpsc::Receiver<(EventType, String)>>>,
    listener_started: AtomicBool,
    listening: watch::Sender<bool>,
    /// This instance's token for the watcher lease.
    token: String,
}

type Entry = (String, Vec<String>);

impl Shared {
    pub fn new(redis: Arc<SharedRedis>, settings: &EventSettings) -> Self {
        let (publisher, queue) = mpsc::channel(QUEUE);
        Self {
            redis,
            replay: settings.replay,
            publisher,
            queue: std::sync::Mutex::new(Some(queue)),
            listener_started: AtomicBool::new(false),
            listening: watch::channel(false).0,
            token: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Hands an event to the publisher (started on first use).
    pub fn publish(&self, event_type: EventType, data: String, live: &broadcast::Sender<Live>) {
        let queue = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(queue) = queue {
            tokio::spawn(publisher(
                Arc::clone(&self.redis),
                self.replay,
                queue,
                live.clone(),
            ));
        }
        if self.publisher.try_send((event_type, data)).is_err() {
            lost(live, "the publisher's queue is full");
        }
    }

    /// Starts listening on `events:live` (once per instance) and waits
    /// until the subscription is in place: a 503 when Redis cannot give it.
    pub async fn listen(&self, hub: &Arc<EventHub>) -> Result<(), ApiError> {
        if !self.listener_started.swap(true, Ordering::AcqRel) {
            tokio::spawn(listener(
                Arc::clone(&self.redis),
                Arc::downgrade(hub),
                self.listening.clone(),
            ));
        }
        let mut listening = self.listening.subscribe();
        let wait = self.redis.timeout().saturating_mul(2);
        match tokio::time::timeout(wait, listening.wait_for(|on| *on)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ApiError::StateUnavailable(
                "cannot follow events: the instances' shared Redis does not answer".into(),
            )),
        }
    }

    /// What follows `last` in the stream (or why it cannot be replayed),
    /// and the id after which live events are new.
    pub async fn replay(
        &self,
        last: Option<&str>,
    ) -> Result<(Vec<Event>, EventId, Option<ResetReason>), ApiError> {
        let parsed = last.map(EventId::parse);
        let from = match parsed {
            Some(Some(id)) => id.to_string(),
            _ => String::new(),
        };
        let key = self.redis.keys().events();
        let count = self.replay;
        let (oldest, newest, after): (String, String, Vec<Entry>) = self
            .redis
            .call("events replay", |mut c| {
                let mut invocation = SINCE.prepare_invoke();
                invocation.key(&key).arg(&from).arg(count);
                async move { invocation.invoke_async(&mut c).await }
            })
            .await
            .map_err(|e| ApiError::StateUnavailable(format!("cannot read past events: {e}")))?;
        let newest = EventId::parse(&newest).unwrap_or(EventId(0, 0));
        let reset = match parsed {
            None => None,
            Some(None) => Some(ResetReason::UnknownId),
            Some(Some(id)) if id > newest => Some(ResetReason::UnknownId),
            Some(Some(id)) => match EventId::parse(&oldest) {
                Some(oldest) if id < oldest => Some(ResetReason::TooOld),
                _ => None,
            },
        };
        let backlog = if reset.is_none() {
            after.iter().filter_map(entry_event).collect()
        } else {
            Vec::new()
        };
        Ok((backlog, newest, reset))
    }

    /// Whether this instance holds the watcher lease now (taking or renewing
    /// it). Redis unanswered: no, and nobody polls until it answers.
    pub async fn lead(&self, poll: Duration) -> bool {
        let key = self.redis.keys().events_watcher();
        let ttl = u64::try_from(poll.saturating_mul(3).as_millis()).unwrap_or(u64::MAX);
        let token = self.token.clone();
        let leads = self
            .redis
            .call("events lease", |mut c| {
                let mut invocation = LEAD.prepare_invoke();
                invocation.key(&key).arg(&token).arg(ttl);
                async move { invocation.invoke_async::<i64>(&mut c).await }
            })
            .await
            .is_ok_and(|held| held == 1);
        metrics::gauge!("gateway_event_watcher_leader").set(if leads { 1.0 } else { 0.0 });
        leads
    }

    /// Lets go of the lease when this instance stops watching.
    pub async fn let_go(&self) {
        let key = self.redis.keys().events_watcher();
        let token = self.token.clone();
        let _ = self
            .redis
            .call("events lease", |mut c| {
                let mut invocation = LET_GO.prepare_invoke();
                invocation.key(&key).arg(&token);
                async move { invocation.invoke_async::<i64>(&mut c).await }
            })
            .await;
        metrics::gauge!("gateway_event_watcher_leader").set(0.0);
    }
}

/// An event from a stream entry (`id`, `[type, T, data, D]`).
fn entry_event((id, fields): &Entry) -> Option<Event> {
    let id = EventId::parse(id)?;
    let mut event_type = None;
    let mut data = None;
    for pair in fields.chunks(2) {
        match pair {
            [name, value] if name == "type" => event_type = EventType::parse(value),
            [name, value] if name == "data" => data = Some(value.as_str()),
            _ => {}
        }
    }
    Some(Event::new(id, event_type?, data?))
}

/// An announcement from `events:live`: `{id} {type} {data}`.
fn announced(payload: &str) -> Option<Event> {
    let (id, rest) = payload.split_once(' ')?;
    let (event_type, data) = rest.split_once(' ')?;
    Some(Event::new(
        EventId::parse(id)?,
        EventType::parse(event_type)?,
        data,
    ))
}

/// This instance's subscribers missed an event: they get a `reset`.
fn lost(live: &broadcast::Sender<Live>, why: &str) {
    tracing::warn!(
        reason = why,
        "an event could not be shared; subscribers here are told to refetch"
    );
    metrics::counter!("gateway_events_lost_total").increment(1);
    let _ = live.send(Live::Reset(ResetReason::Interrupted));
}

async fn publisher(
    redis: Arc<SharedRedis>,
    replay: u64,
    mut queue: mpsc::Receiver<(EventType, String)>,
    live: broadcast::Sender<Live>,
) {
    let (stream, channel) = (redis.keys().events(), redis.keys().events_live());
    while let Some((event_type, data)) = queue.recv().await {
        let added = redis
            .call("events publish", |mut c| {
                let mut invocation = ADD.prepare_invoke();
                invocation
                    .key(&stream)
                    .key(&channel)
                    .arg(replay)
                    .arg(event_type.as_str())
                    .arg(&data);
                async move { invocation.invoke_async::<String>(&mut c).await }
            })
            .await;
        if let Err(error) = added {
            lost(&live, &error.to_string());
        }
    }
}

/// Hears `events:live` for as long as the hub lives; when the subscription
/// breaks, tells this instance's subscribers to refetch and subscribes again.
async fn listener(
    redis: Arc<SharedRedis>,
    hub: std::sync::Weak<EventHub>,
    listening: watch::Sender<bool>,
) {
    let channel = redis.keys().events_live();
    let mut backoff = Duration::from_millis(50);
    while hub.strong_count() > 0 {
        if let Ok(pubsub) = redis.subscriber().await {
            let (mut sink, mut stream) = pubsub.split();
            if matches!(
                tokio::time::timeout(redis.timeout(), sink.subscribe(&channel)).await,
                Ok(Ok(()))
            ) {
                listening.send_replace(true);
                backoff = Duration::from_millis(50);
                let mut beat = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tokio::select! {
                        message = stream.next() => match message {
                            Some(message) => {
                                let Some(alive) = hub.upgrade() else { return };
                                match message.get_payload::<String>().ok().as_deref().and_then(announced) {
                                    Some(event) => alive.deliver(event),
                                    None => tracing::warn!("ignoring a malformed event announcement"),
                                }
                            }
                            None => break,
                        },
                        _ = beat.tick() => {
                            if hub.strong_count() == 0 {
                                return;
                            }
                            let ping = tokio::time::timeout(redis.timeout(), sink.ping::<redis::Value>()).await;
                            if !matches!(ping, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
                tracing::warn!(
                    "lost the subscription to events; subscribers here are told to refetch"
                );
            }
        }
        listening.send_replace(false);
        if let Some(alive) = hub.upgrade() {
            let _ = alive.live.send(Live::Reset(ResetReason::Interrupted));
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2).min(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_and_entries_read_back_as_events() {
        let event = announced(r#"1733150000000-3 ticket.updated {"id":1}"#).unwrap();
        assert_eq!(event.id, EventId(1_733_150_000_000, 3));
        assert_eq!(event.event_type, EventType::TicketUpdated);
        assert!(String::from_utf8_lossy(&event.frame).contains("data: {\"id\":1}\n"));
        assert!(announced("nonsense").is_none());
        assert!(announced("1-1 nope.type {}").is_none());
        let entry = (
            "5-0".to_owned(),
            vec![
                "type".into(),
                "invoice.created".into(),
                "data".into(),
                "{}".into(),
            ],
        );
        assert_eq!(
            entry_event(&entry).unwrap().event_type,
            EventType::InvoiceCreated
        );
    }
}
