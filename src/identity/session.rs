//! People's sessions, on this instance: an opaque id in one cookie, the
//! rest (who, their scopes, the provider's tokens) kept here, never in the
//! cookie. A session ends when unused for the idle lifetime, at its
//! absolute lifetime, at logout, when the provider logs the person out
//! (back-channel logout), or when the provider refuses to renew it; an
//! ended session is remembered with why for as long as it could have lived,
//! so the next call is told.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sha2::{Digest, Sha256};

pub use super::person::{Person, Tokens, random_token};
use super::shared_sessions::{Lookup, SharedSessions, Stored};
use crate::shared::RedisUnavailable;

/// The cookie: `__Host-` so only this host, over HTTPS, with `Path=/` and
/// no `Domain`, can set it.
pub const COOKIE: &str = "__Host-gateway-session";

/// Sessions held at most (the oldest unused go first past it).
const MAX_SESSIONS: u64 = 100_000;

pub struct Session {
    /// The digest of its cookie: the key it is held under.
    pub(super) key: [u8; 32],
    pub person: Person,
    pub tokens: Tokens,
    /// Unix seconds: the absolute end.
    pub expires_at: u64,
    /// Set by whoever renews it on this instance, so one request does.
    pub(super) renewing: AtomicBool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("person", &self.person)
            .field("expires_at", &self.expires_at)
            .field("refresh_at", &self.tokens.refresh_at)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Whether it is due for renewal and this caller is the one to do it.
    pub fn take_renewal(&self, now: u64) -> bool {
        self.tokens.refresh_at.is_some_and(|at| at <= now)
            && !self.renewing.swap(true, Ordering::AcqRel)
    }

    /// The same session with what a renewal brought.
    pub(super) fn renewed(&self, person: Person, tokens: Tokens) -> Self {
        Self {
            key: self.key,
            person,
            tokens,
            expires_at: self.expires_at,
            renewing: AtomicBool::new(false),
        }
    }
}

/// What a cookie's value finds.
pub enum Found {
    Live(Arc<Session>),
    /// Ended, and why (for the 401 problem).
    Ended(&'static str),
}

/// Why a session ended, other than by its owner's logout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It reached its absolute lifetime.
    Absolute,
    /// The provider logged the person out (back-channel logout).
    ProviderLogout,
    /// The provider refused to renew it.
    RenewalRefused,
}

impl Ended {
    /// As stored on Redis.
    fn code(self) -> &'static str {
        match self {
            Self::Absolute => "absolute",
            Self::ProviderLogout => "provider_logout",
            Self::RenewalRefused => "renewal_refused",
        }
    }

    fn from_code(code: &str) -> Self {
        match code {
            "provider_logout" => Self::ProviderLogout,
            "renewal_refused" => Self::RenewalRefused,
            _ => Self::Absolute,
        }
    }

    /// What the person's next call is told.
    pub fn message(self) -> &'static str {
        match self {
            Self::Absolute => {
                "the session reached its absolute lifetime; log in again at /auth/login"
            }
            Self::ProviderLogout => {
                "the identity provider logged this person out; log in again at /auth/login"
            }
            Self::RenewalRefused => {
                "the identity provider no longer renews this session (the person may have been logged out or disabled there); log in again at /auth/login"
            }
        }
    }
}

pub struct Sessions {
    /// By the SHA-256 of the cookie's value: a lookup's timing says nothing
    /// about live ids, and a dump of memory holds no usable cookie.
    held: moka::future::Cache<[u8; 32], Arc<Session>>,
    /// Sessions ended by something other than their owner, and why.
    ended: moka::future::Cache<[u8; 32], Ended>,
    /// With `[redis]`: the sessions of every instance (then `held` and
    /// `ended` stay empty).
    shared: Option<Arc<SharedSessions>>,
    max: Duration,
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new(idle: Duration, max: Duration, shared: Option<Arc<SharedSessions>>) -> Self {
        Self {
            held: moka::future::Cache::builder()
                .max_capacity(MAX_SESSIONS)
                .time_to_idle(idle)
                .build(),
            ended: moka::future::Cache::builder()
                .max_capacity(MAX_SESSIONS)
                .time_to_live(max)
                .build(),
            shared,
            max,
        }
    }

    /// Starts a session for `person`; the cookie's value.
    pub async fn start(
        &self,
        person: Person,
        tokens: Tokens,
    ) -> Result<(String, Arc<Session>), RedisUnavailable> {
        let id = random_token();
        let key = digest(&id);
        let expires_at = match &self.shared {
            Some(shared) => {
                let refresh_in = tokens.refresh_at.map(|at| at.saturating_sub(now_unix()));
                shared.start(&key, &person, &tokens, refresh_in).await?
            }
            None => now_unix().saturating_add(self.max.as_secs()),
        };
        let session = Arc::new(Session {
            key,
            person,
            tokens,
            expires_at,
            renewing: AtomicBool::new(false),
        });
        if self.shared.is_none() {
            self.held.insert(key, Arc::clone(&session)).await;
        }
        Ok((id, session))
    }

    /// The session a cookie's value names (marking it used), if any.
    pub async fn find(&self, id: &str) -> Result<Option<Found>, RedisUnavailable> {
        self.find_key(digest(id)).await
    }

    pub(super) async fn find_key(&self, key: [u8; 32]) -> Result<Option<Found>, RedisUnavailable> {
        if let Some(shared) = &self.shared {
            return Ok(shared.find(&key).await?.map(|lookup| match lookup {
                Lookup::Live(Stored {
                    person,
                    tokens,
                    expires_at,
                }) => Found::Live(Arc::new(Session {
                    key,
                    person,
                    tokens,
                    expires_at,
                    renewing: AtomicBool::new(false),
                })),
                Lookup::Ended(code) => Found::Ended(Ended::from_code(&code).message()),
            }));
        }
        if let Some(session) = self.held.get(&key).await {
            if session.expires_at > now_unix() {
                return Ok(Some(Found::Live(session)));
            }
            self.held.remove(&key).await;
            return Ok(Some(Found::Ended(Ended::Absolute.message())));
        }
        Ok(self
            .ended
            .get(&key)
            .await
            .map(|why| Found::Ended(why.message())))
    }

    /// Puts a renewed session in place of the one it renews, unless that
    /// one has ended meanwhile.
    pub(super) async fn replace(&self, renewed: Session) {
        if let Some(shared) = &self.shared {
            let refresh_in = renewed
                .tokens
                .refresh_at
                .map_or(u64::MAX / 2, |at| at.saturating_sub(now_unix()));
            if let Err(error) = shared
                .update(&renewed.key, &renewed.person, &renewed.tokens, refresh_in)
                .await
            {
                tracing::warn!(error = %error, "a renewed session could not be stored; it is renewed again later");
            }
            return;
        }
        if self.held.contains_key(&renewed.key) {
            self.held.insert(renewed.key, Arc::new(renewed)).await;
        }
    }

    /// Ends the session a cookie's value names, by its owner; what it was.
    pub async fn end(&self, id: &str) -> Result<Option<Arc<Session>>, RedisUnavailable> {
        let key = digest(id);
        if let Some(shared) = &self.shared {
            let found = self.find_key(key).await?;
            shared.end(&key).await?;
            return Ok(match found {
                Some(Found::Live(session)) => Some(session),
                _ => None,
            });
        }
        Ok(self.held.remove(&key).await)
    }

    /// Ends a session for a reason its owner is told at their next call.
    pub(super) async fn end_because(
        &self,
        key: [u8; 32],
        why: Ended,
    ) -> Result<(), RedisUnavailable> {
        if let Some(shared) = &self.shared {
            return shared.end_because(&key, why.code()).await;
        }
        self.held.remove(&key).await;
        self.ended.insert(key, why).await;
        Ok(())
    }

    /// Ends every session of the provider session `sid` (when given) or
    /// else of the person `sub`, for `why`; how many.
    pub(super) async fn end_for(
        &self,
        sid: Option<&str>,
        sub: Option<&str>,
        why: Ended,
    ) -> Result<usize, RedisUnavailable> {
        let keys: Vec<[u8; 32]> = match &self.shared {
            Some(shared) => shared.indexed(sid, sub).await?,
            None => self
                .held
                .iter()
                .filter(|(_, session)| {
                    let p = &session.person;
                    match (sid, sub) {
                        (Some(sid), sub) => {
                            p.sid.as_deref() == Some(sid) && sub.is_none_or(|s| s == p.sub)
                        }
                        (None, Some(sub)) => p.sub == sub,
                        (None, None) => false,
                    }
                })
                .map(|(key, _)| *key)
                .collect(),
        };
        for key in &keys {
            self.end_because(*key, why).await?;
        }
        Ok(keys.len())
    }

    /// With `[redis]`: takes the cluster's lease to renew the session under
    /// `key` (its token), or `None` when another instance holds it. On one
    /// instance: always taken (the session's own flag already decided).
    pub(super) async fn take_renewal(
        &self,
        key: [u8; 32],
    ) -> Result<Option<Option<String>>, RedisUnavailable> {
        match &self.shared {
            Some(shared) => Ok(shared.take_renewal(&key).await?.map(Some)),
            None => Ok(Some(None)),
        }
    }

    pub(super) async fn release_renewal(&self, key: [u8; 32], token: Option<String>) {
        if let (Some(shared), Some(token)) = (&self.shared, token) {
            shared.release_renewal(&key, &token).await;
        }
    }

    /// The absolute lifetime, for the cookie's `Max-Age`.
    pub fn max(&self) -> Duration {
        self.max
    }
}
