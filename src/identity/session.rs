//! People's sessions, on this instance: an opaque id in one cookie, the
//! rest (who, their scopes, the provider's ID token for logging out) kept
//! here, never in the cookie. A session ends when unused for the idle
//! lifetime, at its absolute lifetime, or at logout.

use std::{
    collections::BTreeSet,
    sync::Arc,
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

pub struct Session {
    pub person: Person,
    /// For RP-initiated logout's `id_token_hint`.
    pub id_token: SecretString,
    /// Unix seconds.
    pub expires_at: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("person", &self.person)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

pub struct Sessions {
    /// By the SHA-256 of the cookie's value: a lookup's timing says nothing
    /// about live ids, and a dump of memory holds no usable cookie.
    held: moka::future::Cache<[u8; 32], Arc<Session>>,
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
                .time_to_live(max)
                .build(),
            max,
        }
    }

    /// Starts a session for `person`; the cookie's value.
    pub async fn start(&self, person: Person, id_token: SecretString) -> (String, Arc<Session>) {
        let id = random_token();
        let session = Arc::new(Session {
            person,
            id_token,
            expires_at: now_unix().saturating_add(self.max.as_secs()),
        });
        self.held.insert(digest(&id), Arc::clone(&session)).await;
        (id, session)
    }

    /// The live session a cookie's value names (and marks it used).
    pub async fn get(&self, id: &str) -> Option<Arc<Session>> {
        let session = self.held.get(&digest(id)).await?;
        (session.expires_at > now_unix()).then_some(session)
    }

    /// Ends the session a cookie's value names; what it was.
    pub async fn end(&self, id: &str) -> Option<Arc<Session>> {
        self.held.remove(&digest(id)).await
    }

    /// The absolute lifetime, for the cookie's `Max-Age`.
    pub fn max(&self) -> Duration {
        self.max
    }
}
