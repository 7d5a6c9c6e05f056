//! People's sessions, on this instance: an opaque id in one cookie, the
//! rest (who, their scopes, the provider's tokens) kept here, never in the
//! cookie. A session ends when unused for the idle lifetime, at its
//! absolute lifetime, at logout, when the provider logs the person out
//! (back-channel logout), or when the provider refuses to renew it; an
//! ended session is remembered with why for as long as it could have lived,
//! so the next call is told.

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::Engine;
use rand::Rng;
use secrecy::SecretString;
use sha2::{Digest, Sha256};

use crate::configuration::Scope;

/// The cookie: `__Host-` so only this host, over HTTPS, with `Path=/` and
/// no `Domain`, can set it.
pub const COOKIE: &str = "__Host-gateway-session";

/// Sessions held at most (the oldest unused go first past it).
const MAX_SESSIONS: u64 = 100_000;

/// Who logged in, as the provider's ID token said.
#[derive(Debug, Clone)]
pub struct Person {
    pub sub: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub scopes: BTreeSet<Scope>,
    /// The provider's session id, for back-channel logout.
    pub sid: Option<String>,
}

/// What the provider gave for the session: kept here only.
#[derive(Clone)]
pub struct Tokens {
    /// For RP-initiated logout's `id_token_hint`.
    pub id_token: SecretString,
    /// To renew the session; `None` when the provider issued none.
    pub refresh_token: Option<SecretString>,
    /// When to renew it (Unix seconds): three quarters into the access
    /// token's life; `None` without a refresh token.
    pub refresh_at: Option<u64>,
}

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

pub struct Sessions {
    /// By the SHA-256 of the cookie's value: a lookup's timing says nothing
    /// about live ids, and a dump of memory holds no usable cookie.
    held: moka::future::Cache<[u8; 32], Arc<Session>>,
    /// Sessions ended by something other than their owner, and why.
    ended: moka::future::Cache<[u8; 32], &'static str>,
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

/// 32 random bytes, base64url: a state, a nonce, a PKCE verifier, a session id.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Sessions {
    pub fn new(idle: Duration, max: Duration) -> Self {
        Self {
            held: moka::future::Cache::builder()
                .max_capacity(MAX_SESSIONS)
                .time_to_idle(idle)
                .build(),
            ended: moka::future::Cache::builder()
                .max_capacity(MAX_SESSIONS)
                .time_to_live(max)
                .build(),
            max,
        }
    }

    /// Starts a session for `person`; the cookie's value.
    pub async fn start(&self, person: Person, tokens: Tokens) -> (String, Arc<Session>) {
        let id = random_token();
        let session = Arc::new(Session {
            key: digest(&id),
            person,
            tokens,
            expires_at: now_unix().saturating_add(self.max.as_secs()),
            renewing: AtomicBool::new(false),
        });
        self.held.insert(session.key, Arc::clone(&session)).await;
        (id, session)
    }

    /// The session a cookie's value names (marking it used), if any.
    pub async fn find(&self, id: &str) -> Option<Found> {
        let key = digest(id);
        if let Some(session) = self.held.get(&key).await {
            if session.expires_at > now_unix() {
                return Some(Found::Live(session));
            }
            self.held.remove(&key).await;
            return Some(Found::Ended(
                "the session reached its absolute lifetime; log in again at /auth/login",
            ));
        }
        self.ended.get(&key).await.map(Found::Ended)
    }

    /// The live session a cookie's value names.
    pub async fn get(&self, id: &str) -> Option<Arc<Session>> {
        match self.find(id).await? {
            Found::Live(session) => Some(session),
            Found::Ended(_) => None,
        }
    }

    /// Puts a renewed session in place of the one it renews, unless that
    /// one has ended meanwhile.
    pub(super) async fn replace(&self, renewed: Session) {
        if self.held.contains_key(&renewed.key) {
            self.held.insert(renewed.key, Arc::new(renewed)).await;
        }
    }

    /// Ends the session a cookie's value names, by its owner; what it was.
    pub async fn end(&self, id: &str) -> Option<Arc<Session>> {
        self.held.remove(&digest(id)).await
    }

    /// Ends a session for a reason its owner is told at their next call.
    pub(super) async fn end_because(&self, key: [u8; 32], why: &'static str) {
        self.held.remove(&key).await;
        self.ended.insert(key, why).await;
    }

    /// Ends every session `matches` picks, for `why`; how many.
    pub(super) async fn end_where(
        &self,
        matches: impl Fn(&Person) -> bool,
        why: &'static str,
    ) -> usize {
        let keys: Vec<[u8; 32]> = self
            .held
            .iter()
            .filter(|(_, session)| matches(&session.person))
            .map(|(key, _)| *key)
            .collect();
        for key in &keys {
            self.end_because(*key, why).await;
        }
        keys.len()
    }

    /// The absolute lifetime, for the cookie's `Max-Age`.
    pub fn max(&self) -> Duration {
        self.max
    }
}
