//! `Idempotency-Key` for non-idempotent writes
//! (draft-ietf-httpapi-idempotency-key-header): the same key with the same
//! body replays the first answer; with another body it is a 422; while the
//! first request with the key is still being processed it is a 409.
//!
//! Keys are scoped to the caller (two API keys never share one) and live for
//! `idempotency.ttl_seconds`. Without `[redis]` they are kept in this
//! instance (bounded by `idempotency.max_keys`); with it, in Redis, so a
//! retry that lands on another instance is recognised there too. A key
//! whose first request never settled (its instance died mid-write) is never
//! sent again: it answers that the outcome is unknown.

use std::{
    future::Future,
    sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use crate::{
    configuration::IdempotencySettings,
    context::{RequestScope, current_request_id},
    error::{ApiError, FieldError, Problem},
    shared::{SharedRedis, conventions::script},
};
use actix_web::{
    HttpResponse,
    http::header::{HeaderMap, HeaderName, HeaderValue},
};
use moka::future::Cache;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::Instrument;

/// A finished answer, kept to be replayed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Stored {
    /// `201 Created`: the JSON body and where the new resource is.
    Created { body: String, location: String },
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

    /// What a key whose first request never settled answers.
    fn outcome_unknown() -> Self {
        let mut problem = ApiError::internal("an Idempotency-Key never settled").to_problem();
        problem.detail = Some(
            "the first request with this Idempotency-Key ended without an answer; its outcome at the upstream is unknown, so it is not sent again: check with DNA, then use a new key"
                .to_owned(),
        );
        Self::Failed(problem)
    }
}

/// What to do with a request that carries a key.
pub enum Claim {
    /// First use: process it, then [`ClaimedKey::finish`] or [`ClaimedKey::release`].
    Fresh(ClaimedKey),
    /// Seen and finished: answer this.
    Replay(Stored),
}

fn reused_with_another_body() -> ApiError {
    ApiError::Unprocessable {
        detail: "this Idempotency-Key was used with a different request body; use a new key for a new request"
            .into(),
        errors: vec![FieldError::parameter(
            "Idempotency-Key",
            "already used with a different body",
        )],
    }
}

fn in_flight() -> ApiError {
    ApiError::Conflict(
        "a request with this Idempotency-Key is still being processed; retry shortly".into(),
    )
}

pub struct IdempotencyStore {
    backend: Backend,
}

enum Backend {
    Local(Cache<String, Arc<LocalRecord>>),
    Shared(Arc<SharedKeys>),
}

impl IdempotencyStore {
    /// Keys kept in this instance.
    pub fn new(settings: &IdempotencySettings) -> Self {
        Self {
            backend: Backend::Local(
                Cache::builder()
                    .max_capacity(settings.max_keys)
                    .time_to_live(Duration::from_secs(settings.ttl_seconds))
                    .build(),
            ),
        }
    }

    /// Keys kept in Redis, shared by every instance. A request holds its key
    /// under a lease of `lease`: past it, with no answer recorded, the key
    /// answers that the outcome is unknown.
    pub fn shared(
        redis: Arc<SharedRedis>,
        settings: &IdempotencySettings,
        lease: Duration,
    ) -> Self {
        Self {
            backend: Backend::Shared(Arc::new(SharedKeys {
                redis,
                ttl: Duration::from_secs(settings.ttl_seconds),
                lease,
            })),
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
        match &self.backend {
            Backend::Local(records) => claim_local(records, scoped, fingerprint).await,
            Backend::Shared(keys) => keys.claim(&scoped, fingerprint).await,
        }
    }
}

impl IdempotencyStore {
    /// The request's `Idempotency-Key`, if it sent one, checked.
    pub fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
        headers
            .get("idempotency-key")
            .map(|v| Self::parse_key(v.to_str().unwrap_or_default()).map(str::to_owned))
            .transpose()
    }

    /// Runs `write` at most once per `key` (when there is one) and answers
    /// with what it stored. The state machine of a keyed write:
    ///
    /// - a key seen with the same `fingerprint` replays its stored answer;
    ///   with another, 422; while its first request runs, 409;
    /// - the write is detached from the request, so a caller hanging up
    ///   neither cancels it nor keeps its outcome from being recorded;
    /// - its answer is recorded before it is sent, so a retry on any
    ///   instance replays it; a failure is recorded too (its outcome at the
    ///   upstream is unknown), unless `unprocessed` says the upstream
    ///   provably did not act, when the key is let go for a retry;
    /// - a panic in the write goes on in this request (the request
    ///   middleware answers it); the unsettled key then says the outcome is
    ///   unknown.
    pub async fn write_once<W>(
        &self,
        caller: &str,
        key: Option<String>,
        fingerprint: &[u8],
        write: W,
        unprocessed: impl FnOnce(&ApiError) -> bool,
    ) -> Result<HttpResponse, ApiError>
    where
        W: Future<Output = Result<Stored, ApiError>> + Send + 'static,
    {
        let claim = match key {
            None => None,
            Some(key) => {
                let claimed = self.claim(caller, &key, fingerprint).await;
                let outcome = match &claimed {
                    Ok(Claim::Fresh(_)) => "claimed",
                    Ok(Claim::Replay(_)) => "replayed",
                    Err(ApiError::Conflict(_)) => "conflict",
                    Err(ApiError::Unprocessable { .. }) => "body_mismatch",
                    Err(_) => "unavailable",
                };
                metrics::counter!("gateway_idempotency_keys_total", "outcome" => outcome)
                    .increment(1);
                match claimed? {
                    Claim::Replay(stored) => return Ok(stored.replay()),
                    Claim::Fresh(claim) => Some(claim),
                }
            }
        };
        let task = tokio::spawn(
            RequestScope::current()
                .run(write)
                .instrument(tracing::Span::current()),
        );
        let outcome = match task.await {
            Ok(outcome) => outcome,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(ApiError::Internal(anyhow::anyhow!(
                "the write task failed: {e}"
            ))),
        };
        match (outcome, claim) {
            (Ok(stored), claim) => {
                let response = stored.replay_first();
                if let Some(claim) = claim {
                    claim.finish(stored).await;
                }
                Ok(response)
            }
            (Err(error), Some(claim)) if unprocessed(&error) => {
                claim.release().await;
                Err(error)
            }
            (Err(error), Some(claim)) => {
                claim.finish(Stored::Failed(error.to_problem())).await;
                Err(error)
            }
            (Err(error), None) => Err(error),
        }
    }
}

#[derive(Debug)]
enum LocalState {
    InFlight,
    Done(Stored),
}

#[derive(Debug)]
struct LocalRecord {
    fingerprint: [u8; 32],
    state: Mutex<LocalState>,
}

async fn claim_local(
    records: &Cache<String, Arc<LocalRecord>>,
    scoped: String,
    fingerprint: [u8; 32],
) -> Result<Claim, ApiError> {
    let entry = records
        .entry(scoped.clone())
        .or_insert_with(async {
            Arc::new(LocalRecord {
                fingerprint,
                state: Mutex::new(LocalState::InFlight),
            })
        })
        .await;
    let inserted = entry.is_fresh();
    let record = entry.into_value();
    if inserted {
        return Ok(Claim::Fresh(ClaimedKey {
            held: Some(Held::Local {
                key: scoped,
                record,
                records: records.clone(),
            }),
        }));
    }
    if record.fingerprint != fingerprint {
        return Err(reused_with_another_body());
    }
    let state = lock(&record.state);
    match &*state {
        LocalState::Done(stored) => Ok(Claim::Replay(stored.clone())),
        LocalState::InFlight => Err(in_flight()),
    }
}

/// Keys in Redis (see [`crate::shared::conventions`]): one JSON record per
/// key, living `ttl`, and beside it a lease whose value is its holder,
/// expiring after `lease` on Redis's clock. The first request creates both
/// atomically; its answer replaces the record and ends the lease. A record
/// without an answer whose lease has run out belongs to a request that died.
struct SharedKeys {
    redis: Arc<SharedRedis>,
    ttl: Duration,
    lease: Duration,
}

#[derive(Debug, Serialize, Deserialize)]
struct SharedRecord {
    /// SHA-256 of the request body, hex.
    fingerprint: String,
    /// Who holds the key: a fresh id per claim, so the record as claimed is
    /// this request's alone, and only it may answer or release it.
    holder: String,
    /// The answer, once there is one.
    #[serde(default)]
    stored: Option<Stored>,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// KEYS: record, lease. ARGV: the record, its holder, TTL ms, lease ms.
/// Returns {1} when claimed, else {0, the record there, 1 while its lease
/// holds}.
static CLAIM: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[3]) then
    redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[4])
    return {1, false, 1}
end
return {0, redis.call('GET', KEYS[1]), redis.call('EXISTS', KEYS[2])}
"#,
    )
});

/// KEYS: record, lease. ARGV: the record exactly as claimed, the answered
/// record, TTL ms. Only the claim's holder answers it; the lease ends.
static FINISH: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
return 1
"#,
    )
});

/// KEYS: record, lease. ARGV: the record exactly as claimed. Forgets the
/// key only if it is still that claim, unanswered and leased.
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    script(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
return redis.call('DEL', KEYS[1], KEYS[2])
"#,
    )
});

/// A claim as Redis holds it: the two keys and the record's exact text.
struct SharedClaim {
    record_key: String,
    lease_key: String,
    record: SharedRecord,
    claimed: String,
}

impl SharedKeys {
    fn unavailable(error: impl std::fmt::Display) -> ApiError {
        tracing::warn!(error = %error, "Idempotency-Key store unavailable; failing closed");
        ApiError::StateUnavailable(
            "the store of Idempotency-Keys cannot be reached, so the request was not sent (a duplicate would be worse than a retry); retry shortly"
                .into(),
        )
    }

    async fn claim(
        self: &Arc<Self>,
        scoped: &str,
        fingerprint: [u8; 32],
    ) -> Result<Claim, ApiError> {
        let (record_key, lease_key) = self.redis.keys().idempotency(scoped);
        let record = SharedRecord {
            fingerprint: hex::encode(fingerprint),
            holder: uuid::Uuid::new_v4().to_string(),
            stored: None,
        };
        let claimed = serde_json::to_string(&record).map_err(|e| ApiError::Internal(e.into()))?;
        let claim = SharedClaim {
            record_key,
            lease_key,
            record,
            claimed,
        };
        let outcome = self
            .redis
            .call("idempotency claim", |mut c| {
                let mut invocation = CLAIM.prepare_invoke();
                invocation
                    .key(&claim.record_key)
                    .key(&claim.lease_key)
                    .arg(&claim.claimed)
                    .arg(&claim.record.holder)
                    .arg(millis(self.ttl))
                    .arg(millis(self.lease));
                async move {
                    invocation
                        .invoke_async::<(bool, Option<String>, bool)>(&mut c)
                        .await
                }
            })
            .await;
        let (created, existing, leased) = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                // The claim may have landed before the answer was given up
                // on: let go of it (only if it is still ours), so the retry
                // the 503 asks for is not told "in flight", then "unknown".
                let keys = Arc::clone(self);
                tokio::spawn(async move { keys.release(&claim).await });
                return Err(Self::unavailable(error));
            }
        };
        if created {
            return Ok(Claim::Fresh(ClaimedKey {
                held: Some(Held::Shared {
                    keys: Arc::clone(self),
                    claim,
                }),
            }));
        }
        // Gone between SET and GET (it expired): as good as in flight; a retry claims it.
        let Some(existing) = existing else {
            return Err(in_flight());
        };
        let existing: SharedRecord = serde_json::from_str(&existing)
            .map_err(|e| Self::unavailable(format!("unreadable record: {e}")))?;
        if existing.fingerprint != claim.record.fingerprint {
            return Err(reused_with_another_body());
        }
        match existing.stored {
            Some(stored) => Ok(Claim::Replay(stored)),
            None if leased => Err(in_flight()),
            // The holder is gone without an answer: its outcome is unknown.
            None => Ok(Claim::Replay(Stored::outcome_unknown())),
        }
    }

    async fn finish(&self, mut claim: SharedClaim, stored: Stored) {
        claim.record.stored = Some(stored);
        let Ok(answered) = serde_json::to_string(&claim.record) else {
            return;
        };
        let ttl = millis(self.ttl);
        let result = self
            .redis
            .call("idempotency finish", |mut c| async move {
                FINISH
                    .key(&claim.record_key)
                    .key(&claim.lease_key)
                    .arg(&claim.claimed)
                    .arg(answered)
                    .arg(ttl)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await;
        match result {
            Ok(1) => {}
            // Expired and claimed again by another request: not ours to answer.
            Ok(_) => tracing::warn!("an Idempotency-Key was no longer this request's to answer"),
            // The answer was sent; the key stays held until its lease ends,
            // then answers "outcome unknown": never a second create.
            Err(error) => {
                tracing::error!(error = %error, "could not record an Idempotency-Key's answer");
            }
        }
    }

    async fn release(&self, claim: &SharedClaim) {
        let result = self
            .redis
            .call("idempotency release", |mut c| async move {
                RELEASE
                    .key(&claim.record_key)
                    .key(&claim.lease_key)
                    .arg(&claim.claimed)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await;
        if let Err(error) = result {
            // The key stays held; after its lease it answers "outcome unknown".
            tracing::warn!(error = %error, "could not release an Idempotency-Key");
        }
    }
}

/// A key this request owns until it finishes or releases it (`held` is
/// then `None`).
pub struct ClaimedKey {
    held: Option<Held>,
}

enum Held {
    Local {
        key: String,
        record: Arc<LocalRecord>,
        records: Cache<String, Arc<LocalRecord>>,
    },
    Shared {
        keys: Arc<SharedKeys>,
        claim: SharedClaim,
    },
}

impl ClaimedKey {
    /// Records the answer to replay for this key.
    pub async fn finish(mut self, stored: Stored) {
        match self.held.take() {
            Some(Held::Local { record, .. }) => *lock(&record.state) = LocalState::Done(stored),
            Some(Held::Shared { keys, claim }) => keys.finish(claim, stored).await,
            None => {}
        }
    }

    /// Forgets the key: the request provably never reached the upstream, so
    /// sending it again with the same key is safe.
    pub async fn release(mut self) {
        match self.held.take() {
            Some(Held::Local { key, records, .. }) => records.invalidate(&key).await,
            Some(Held::Shared { keys, claim }) => keys.release(&claim).await,
            None => {}
        }
    }
}

impl Drop for ClaimedKey {
    /// A claim dropped unsettled (a bug or a panic mid-write) has an unknown
    /// outcome: retries with the key are told so rather than sent again.
    fn drop(&mut self) {
        match self.held.take() {
            None => {}
            Some(Held::Local { record, .. }) => {
                *lock(&record.state) = LocalState::Done(Stored::outcome_unknown());
            }
            Some(Held::Shared { keys, claim }) => {
                // Best effort; if it cannot be written, the lease runs out and
                // the key says the same.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        keys.finish(claim, Stored::outcome_unknown()).await;
                    });
                }
            }
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
            body: "{}".into(),
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
        claim.finish(stored()).await;
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
