//! `Idempotency-Key` for non-idempotent writes
//! (draft-ietf-httpapi-idempotency-key-header): the same key with the same
//! body replays the first answer; with another body it is a 422; while the
//! first request with the key is still being processed it is a 409.
//!
//! Keys are scoped to the caller (two API keys never share one), live for
//! `idempotency.ttl_seconds`, and are bounded in number.

use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use crate::{
    configuration::IdempotencySettings,
    context::current_request_id,
    error::{ApiError, FieldError, Problem},
};
use actix_web::{
    HttpResponse,
    http::header::{HeaderName, HeaderValue},
};
use moka::future::Cache;
use sha2::{Digest, Sha256};

/// A finished answer, kept to be replayed.
#[derive(Debug, Clone)]
pub enum Stored {
    /// `201 Created`: the JSON body and where the new resource is.
    Created { body: Vec<u8>, location: String },
    /// A failure whose outcome upstream is unknown; replayed as the same
    /// problem, with the id of the request that asks again.
    Failed(Problem),
}

impl Stored {
    /// The answer as first sent.
    pub fn replay_first(&self) -> HttpResponse {
        self.response(false)
    }

    /// The stored answer, marked as a replay.
    pub fn replay(&self) -> HttpResponse {
        self.response(true)
    }

    fn response(&self, replayed: bool) -> HttpResponse {
        let mut response = match self {
            Self::Created { body, location } => {
                let mut response = HttpResponse::Created();
                response
                    .content_type("application/json")
                    .insert_header(("Location", location.as_str()));
                response.body(body.clone())
            }
            Self::Failed(problem) => {
                let mut problem = problem.clone();
                problem.request_id = current_request_id();
                problem.respond()
            }
        };
        if replayed {
            response.headers_mut().insert(
                HeaderName::from_static("idempotent-replayed"),
                HeaderValue::from_static("true"),
            );
        }
        response
    }
}

#[derive(Debug)]
enum State {
    InFlight,
    Done(Stored),
}

#[derive(Debug)]
struct Record {
    fingerprint: [u8; 32],
    state: Mutex<State>,
}

/// What to do with a request that carries a key.
pub enum Claim {
    /// First use: process it, then [`IdempotencyStore::finish`] or [`IdempotencyStore::release`].
    Fresh(ClaimedKey),
    /// Seen and finished: answer this.
    Replay(Stored),
}

/// A key this request owns until it finishes or releases it.
pub struct ClaimedKey {
    key: String,
    record: Arc<Record>,
    store: Cache<String, Arc<Record>>,
    settled: bool,
}

pub struct IdempotencyStore {
    records: Cache<String, Arc<Record>>,
}

impl IdempotencyStore {
    pub fn new(settings: &IdempotencySettings) -> Self {
        Self {
            records: Cache::builder()
                .max_capacity(settings.max_keys)
                .time_to_live(Duration::from_secs(settings.ttl_seconds))
                .build(),
        }
    }

    /// Checks a key: a valid key is 1 to 255 visible ASCII characters.
    pub fn parse_key(raw: &str) -> Result<&str, ApiError> {
        let ok = (1..=255).contains(&raw.len()) && raw.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if ok {
            Ok(raw)
        } else {
            Err(ApiError::bad_field(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters, e.g. a UUID",
            ))
        }
    }

    /// Claims `key` for `caller` and a request body, or says how it was used before.
    pub async fn claim(&self, caller: &str, key: &str, body: &[u8]) -> Result<Claim, ApiError> {
        let fingerprint: [u8; 32] = Sha256::digest(body).into();
        let scoped = format!("{caller}\u{0}{key}");
        let entry = self
            .records
            .entry(scoped.clone())
            .or_insert_with(async {
                Arc::new(Record {
                    fingerprint,
                    state: Mutex::new(State::InFlight),
                })
            })
            .await;
        let inserted = entry.is_fresh();
        let record = entry.into_value();
        if inserted {
            return Ok(Claim::Fresh(ClaimedKey {
                key: scoped,
                record,
                store: self.records.clone(),
                settled: false,
            }));
        }
        if record.fingerprint != fingerprint {
            return Err(ApiError::Unprocessable {
                detail: "this Idempotency-Key was used with a different request body; use a new key for a new request"
                    .into(),
                errors: vec![FieldError::new("Idempotency-Key", "already used with a different body")],
            });
        }
        let state = lock(&record.state);
        match &*state {
            State::Done(stored) => Ok(Claim::Replay(stored.clone())),
            State::InFlight => Err(ApiError::Conflict(
                "a request with this Idempotency-Key is still being processed; retry shortly"
                    .into(),
            )),
        }
    }
}

impl ClaimedKey {
    /// Records the answer to replay for this key.
    pub fn finish(mut self, stored: Stored) {
        *lock(&self.record.state) = State::Done(stored);
        self.settled = true;
    }

    /// Forgets the key: the request provably never reached the upstream, so
    /// sending it again with the same key is safe.
    pub async fn release(mut self) {
        self.settled = true;
        self.store.invalidate(&self.key).await;
    }
}

impl Drop for ClaimedKey {
    /// A claim dropped unsettled (a bug or a panic mid-write) has an unknown
    /// outcome: retries with the key are told so rather than sent again.
    fn drop(&mut self) {
        if !self.settled {
            let mut problem = ApiError::internal("a claim dropped unsettled").to_problem();
            problem.detail = Some(
                "the first request with this Idempotency-Key ended without an answer; its outcome is unknown, so it is not sent again"
                    .to_owned(),
            );
            *lock(&self.record.state) = State::Done(Stored::Failed(problem));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> IdempotencyStore {
        IdempotencyStore::new(&IdempotencySettings::default())
    }

    fn stored() -> Stored {
        Stored::Created {
            body: b"{}".to_vec(),
            location: "/v1/customers/1".into(),
        }
    }

    #[tokio::test]
    async fn the_same_key_and_body_replays_and_another_body_is_refused() {
        let store = store();
        let Claim::Fresh(claim) = store.claim("web", "k1", b"a").await.unwrap() else {
            panic!()
        };
        assert!(matches!(
            store.claim("web", "k1", b"a").await,
            Err(ApiError::Conflict(_))
        ));
        claim.finish(stored());
        assert!(matches!(
            store.claim("web", "k1", b"a").await,
            Ok(Claim::Replay(Stored::Created { .. }))
        ));
        assert!(matches!(
            store.claim("web", "k1", b"b").await,
            Err(ApiError::Unprocessable { .. })
        ));
        // Another caller's key of the same name is another key.
        assert!(matches!(
            store.claim("app", "k1", b"b").await,
            Ok(Claim::Fresh(_))
        ));
    }

    #[tokio::test]
    async fn a_released_key_can_be_used_again() {
        let store = store();
        let Claim::Fresh(claim) = store.claim("web", "k", b"a").await.unwrap() else {
            panic!()
        };
        claim.release().await;
        assert!(matches!(
            store.claim("web", "k", b"a").await,
            Ok(Claim::Fresh(_))
        ));
    }

    #[tokio::test]
    async fn a_dropped_claim_is_never_sent_again() {
        let store = store();
        let Claim::Fresh(claim) = store.claim("web", "k", b"a").await.unwrap() else {
            panic!()
        };
        drop(claim);
        assert!(
            matches!(store.claim("web", "k", b"a").await, Ok(Claim::Replay(Stored::Failed(p))) if p.status == 500)
        );
    }

    #[test]
    fn keys_are_visible_ascii() {
        assert!(IdempotencyStore::parse_key("8e03978e-40d5-43e8-bc93-6894a57f9324").is_ok());
        for bad in ["", "has space", "ä", &"k".repeat(256)] {
            assert!(IdempotencyStore::parse_key(bad).is_err(), "{bad}");
        }
    }
}
