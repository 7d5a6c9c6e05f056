//! The watcher: while anyone is subscribed, reads Slitz's lists (invoices,
//! tickets, domains, services) every `events.poll_seconds`, compares each
//! record with what it saw last, and publishes one event per record that
//! appeared (`*.created`, with all its fields) or changed (`*.updated`, with
//! the fields that changed and their new values).
//!
//! It reads through the same Slitz client as every route (breakers,
//! concurrency limits, drift detection), not through the cache: a cached
//! list would hide a change for up to its TTL. A change it sees is
//! forgotten from the cache (on every instance) before it is published, so
//! a subscriber that refetches on the event reads it. Its first read of a list is
//! the baseline and publishes nothing; a read that fails is skipped (the
//! next one compares with the last good one). It stops when the last
//! subscriber leaves, and the next subscriber starts it again (with a new
//! baseline).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use serde::Serialize;
use serde_json::{Map, Value};

use super::{EventHub, EventType, changed_members};
use crate::{
    cache::ResponseCache,
    upstream::{UpstreamError, slitz::SlitzClient},
};

/// One list the watcher reads: its events, and the member that identifies
/// a record.
#[derive(Debug, Clone, Copy)]
enum Source {
    Invoices,
    Tickets,
    Domains,
    Services,
}

impl Source {
    const ALL: [Source; 4] = [Self::Invoices, Self::Tickets, Self::Domains, Self::Services];

    fn events(self) -> (EventType, EventType) {
        match self {
            Self::Invoices => (EventType::InvoiceCreated, EventType::InvoiceUpdated),
            Self::Tickets => (EventType::TicketCreated, EventType::TicketUpdated),
            Self::Domains => (EventType::DomainCreated, EventType::DomainUpdated),
            Self::Services => (EventType::ServiceCreated, EventType::ServiceUpdated),
        }
    }

    /// The member naming a record: the id its read route takes.
    fn key(self) -> &'static str {
        match self {
            Self::Tickets => "number",
            _ => "id",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Invoices => "invoices",
            Self::Tickets => "tickets",
            Self::Domains => "domains",
            Self::Services => "services",
        }
    }

    async fn read(self, slitz: &SlitzClient) -> Result<Vec<Value>, UpstreamError> {
        fn values<T: Serialize>(items: Vec<T>) -> Vec<Value> {
            items
                .into_iter()
                .filter_map(|item| serde_json::to_value(item).ok())
                .collect()
        }
        Ok(match self {
            Self::Invoices => values(slitz.invoices().await?),
            Self::Tickets => values(slitz.tickets().await?),
            Self::Domains => values(slitz.domains().await?),
            Self::Services => values(slitz.services().await?),
        })
    }
}

/// What one list held at the last good read: each record by its id.
type Snapshot = BTreeMap<String, Map<String, Value>>;

fn snapshot(source: Source, records: Vec<Value>) -> Snapshot {
    records
        .into_iter()
        .filter_map(|record| match record {
            Value::Object(fields) => {
                let id = fields.get(source.key())?.to_string();
                Some((id, fields))
            }
            _ => None,
        })
        .collect()
}

/// The events from `before` to `after`: `(type, id, changed fields)`.
fn differences(
    source: Source,
    before: &Snapshot,
    after: &Snapshot,
) -> Vec<(EventType, i64, Map<String, Value>)> {
    let (created, updated) = source.events();
    let mut events = Vec::new();
    for (id, fields) in after {
        // Every record of these lists has a numeric id; one without is not news.
        let Some(resource) = fields.get(source.key()).and_then(Value::as_i64) else {
            continue;
        };
        match before.get(id) {
            None => events.push((created, resource, fields.clone())),
            Some(old) => {
                let changed = changed_members(old, fields);
                if !changed.is_empty() {
                    events.push((updated, resource, changed));
                }
            }
        }
    }
    events
}

/// Starts the watcher unless one runs on this instance.
pub fn ensure_running(hub: &Arc<EventHub>, slitz: &Arc<SlitzClient>, cache: &Arc<ResponseCache>) {
    if hub.claim_watching() {
        tokio::spawn(run(Arc::clone(hub), Arc::clone(slitz), Arc::clone(cache)));
    }
}

async fn run(hub: Arc<EventHub>, slitz: Arc<SlitzClient>, cache: Arc<ResponseCache>) {
    let period = Duration::from_secs(hub.settings().poll_seconds);
    let mut last: BTreeMap<&'static str, Snapshot> = BTreeMap::new();
    tracing::info!(poll_seconds = period.as_secs(), "event watcher started");
    loop {
        if hub.subscribers() == 0 {
            hub.watching
                .store(false, std::sync::atomic::Ordering::Release);
            // A subscriber that came in between found it running: keep on.
            if hub.subscribers() == 0 || !hub.claim_watching() {
                if let Some(shared) = &hub.shared {
                    shared.let_go().await;
                }
                tracing::info!("event watcher stopped: no subscriber");
                return;
            }
        }
        // With `[redis]`, one instance polls for the cluster; another's
        // baseline is stale by the time it takes over, so it starts anew.
        let leads = match &hub.shared {
            Some(shared) => shared.lead(period).await,
            None => true,
        };
        if !leads {
            last.clear();
            tokio::time::sleep(period).await;
            continue;
        }
        for source in Source::ALL {
            match source.read(&slitz).await {
                Ok(records) => {
                    let now = snapshot(source, records);
                    if let Some(before) = last.get(source.label()) {
                        let events = differences(source, before, &now);
                        if !events.is_empty() {
                            // Forgotten first (on every instance, with
                            // Redis), so a subscriber that refetches on the
                            // event reads the change, not the cached answer.
                            // What the stream's declaration says its changes
                            // invalidate (`routes::events`), every list's
                            // routes at once: changes are rare, a refetch cheap.
                            cache.after_write(hub.invalidates()).await;
                        }
                        for (event_type, id, changed) in events {
                            hub.publish(event_type, id, changed);
                        }
                    }
                    last.insert(source.label(), now);
                    metrics::counter!("gateway_event_polls_total", "list" => source.label(), "outcome" => "ok")
                        .increment(1);
                }
                Err(error) => {
                    tracing::warn!(list = source.label(), error = %error, "event watcher: a read failed; compared again at the next poll");
                    metrics::counter!("gateway_event_polls_total", "list" => source.label(), "outcome" => "failed")
                        .increment(1);
                }
            }
        }
        tokio::time::sleep(period).await;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn new_and_changed_records_are_events_with_what_changed() {
        let before = snapshot(
            Source::Tickets,
            vec![
                json!({"number": 1, "status": "open", "subject": "a"}),
                json!({"number": 2, "status": "open", "subject": "b"}),
            ],
        );
        let after = snapshot(
            Source::Tickets,
            vec![
                json!({"number": 1, "status": "open", "subject": "a"}),
                json!({"number": 2, "status": "answered", "subject": "b"}),
                json!({"number": 3, "status": "open", "subject": "c"}),
            ],
        );
        let events = differences(Source::Tickets, &before, &after);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].0, EventType::TicketUpdated);
        assert_eq!(events[0].1, 2);
        assert_eq!(
            Value::Object(events[0].2.clone()),
            json!({"status": "answered"})
        );
        assert_eq!(events[1].0, EventType::TicketCreated);
        assert_eq!(events[1].2.len(), 3);
        assert!(differences(Source::Tickets, &after, &after).is_empty());
    }
}
