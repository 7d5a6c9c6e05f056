//! Sessions on Redis (with `[redis]`), so a person logged in through one
//! instance is logged in on all of them, and a logout, a back-channel logout
//! or a refused renewal on one ends the session on all. Keys (see
//! `shared::conventions`):
//!
//! | key | what |
//! |---|---|
//! | `{session:<hex>}` | hash: `person` (JSON), `id_token`, `refresh_token`, `refresh_at`, `expires_at` (Unix s); expires after the idle lifetime, renewed at each use, never past `expires_at` |
//! | `{session:<hex>}:ended` | why a session ended other than by its owner's logout, for its next call; expires with the absolute lifetime |
//! | `{session:<hex>}:renewing` | the instance renewing it (its token), so one does for the cluster |
//! | `{session-sid:<hex>}`, `{session-sub:<hex>}` | set: the sessions of a provider session, of a person, for back-channel logout |
//! | `{login:<sha256>}` | a login under way (PKCE verifier, nonce, `return_to`), by its `state`: the callback may reach another instance; taken once |
//! | `{logout-jti:<sha256>}` | a logout token's `jti`, taken once |
//!
//! `<hex>` is the SHA-256 of the cookie's value: Redis never holds a
//! cookie. It does hold the provider's tokens: protect it as the gateway's
//! other shared state (AUTH, TLS, a private network). Lifetimes are
//! measured by Redis's clock.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use redis::AsyncCommands;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use super::person::{Person, Tokens, random_token};
use crate::{
    configuration::Scope,
    shared::{RedisUnavailable, SharedRedis, conventions::script},
};

/// How long one instance may take to renew a session before another may.
const RENEWAL_LEASE: Duration = Duration::from_secs(15);

#[derive(Serialize, Deserialize)]
struct StoredPerson {
    sub: String,
    name: Option<String>,
    email: Option<String>,
    scopes: Vec<String>,
    sid: Option<String>,
}

impl From<&Person> for StoredPerson {
    fn from(p: &Person) -> Self {
        Self {
            sub: p.sub.clone(),
            name: p.name.clone(),
            email: p.email.clone(),
            scopes: p.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            sid: p.sid.clone(),
        }
    }
}

impl From<StoredPerson> for Person {
    fn from(p: StoredPerson) -> Self {
        Self {
            sub: p.sub,
            name: p.name,
            email: p.email,
            scopes: p
                .scopes
                .iter()
                .filter_map(|s| Scope::named(s))
                .collect::<BTreeSet<_>>(),
            sid: p.sid,
        }
    }
}

/// What a session's hash holds, as read.
pub struct Stored {
    pub person: Person,
    pub tokens: Tokens,
    pub expires_at: u64,
}

/// What a lookup finds.
pub enum Lookup {
    Live(Stored),
    Ended(String),
}

/// Starts a session: its fields, its idle expiry, its absolute end by
/// Redis's clock (returned, Unix s), its refresh time from now.
/// KEYS: session. ARGV: person, id_token, refresh_token, refresh_in_s ('' for
/// none), max_ms, idle_ms.
const START: &str = r"
local now = now_ms()
local expires = now + tonumber(ARGV[5])
local refresh_at = ''
if ARGV[4] ~= '' then refresh_at = tostring(math.floor(now / 1000) + tonumber(ARGV[4])) end
redis.call('HSET', KEYS[1], 'person', ARGV[1], 'id_token', ARGV[2], 'refresh_token', ARGV[3],
    'refresh_at', refresh_at, 'expires_at', tostring(math.floor(expires / 1000)))
redis.call('PEXPIRE', KEYS[1], math.min(tonumber(ARGV[6]), tonumber(ARGV[5])))
return math.floor(expires / 1000)
";

/// Finds a session and marks it used; past its absolute end it ends.
/// KEYS: session, ended. ARGV: idle_ms, ended_ttl_ms.
const FIND: &str = r"
local v = redis.call('HMGET', KEYS[1], 'person', 'id_token', 'refresh_token', 'refresh_at', 'expires_at')
if v[1] and v[5] then
    local now = now_ms()
    local expires = tonumber(v[5]) * 1000
    if now >= expires then
        redis.call('DEL', KEYS[1])
        redis.call('SET', KEYS[2], 'absolute', 'PX', ARGV[2])
        return {'ended', 'absolute'}
    end
    redis.call('PEXPIRE', KEYS[1], math.min(tonumber(ARGV[1]), expires - now))
    return {'live', v[1], v[2], v[3], v[4], v[5]}
end
local why = redis.call('GET', KEYS[2])
if why then return {'ended', why} end
return false
";

/// Puts what a renewal brought, if the session is still there.
/// KEYS: session. ARGV: person, id_token, refresh_token, refresh_in_s.
const UPDATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local refresh_at = tostring(math.floor(now_ms() / 1000) + tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], 'person', ARGV[1], 'id_token', ARGV[2], 'refresh_token', ARGV[3],
    'refresh_at', refresh_at)
return 1
";

/// Ends a session for a reason its owner is told.
/// KEYS: session, ended. ARGV: why, ttl_ms.
const END_BECAUSE: &str = r"
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
";

/// Lets go of a renewal lease, only by its holder.
/// KEYS: renewing. ARGV: token.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

pub struct SharedSessions {
    redis: Arc<SharedRedis>,
    idle: Duration,
    max: Duration,
    start: redis::Script,
    find: redis::Script,
    update: redis::Script,
    end_because: redis::Script,
    release: redis::Script,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl SharedSessions {
    pub fn new(redis: Arc<SharedRedis>, idle: Duration, max: Duration) -> Self {
        Self {
            redis,
            idle,
            max,
            start: script(START),
            find: script(FIND),
            update: script(UPDATE),
            end_because: script(END_BECAUSE),
            release: script(RELEASE),
        }
    }

    fn key(&self, digest: &[u8; 32]) -> String {
        self.redis.keys().session(&hex::encode(digest))
    }

    /// Starts a session under `digest`; its absolute end (Unix s).
    pub async fn start(
        &self,
        digest: &[u8; 32],
        person: &Person,
        tokens: &Tokens,
        refresh_in: Option<u64>,
    ) -> Result<u64, RedisUnavailable> {
        let key = self.key(digest);
        let stored = serde_json::to_string(&StoredPerson::from(person)).unwrap_or_default();
        let refresh_token = tokens
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
            .unwrap_or_default();
        let id_token = tokens.id_token.expose_secret().to_owned();
        let refresh_in = refresh_in.map(|s| s.to_string()).unwrap_or_default();
        let (max, idle) = (millis(self.max), millis(self.idle));
        let expires_at: u64 = self
            .redis
            .call("session_start", |mut c| {
                let start = &self.start;
                async move {
                    start
                        .key(&key)
                        .arg(stored)
                        .arg(id_token)
                        .arg(refresh_token)
                        .arg(refresh_in)
                        .arg(max)
                        .arg(idle)
                        .invoke_async(&mut c)
                        .await
                }
            })
            .await?;
        let mut indexes = vec![self.redis.keys().session_sub(&hex::encode(&person.sub))];
        if let Some(sid) = &person.sid {
            indexes.push(self.redis.keys().session_sid(&hex::encode(sid)));
        }
        let member = hex::encode(digest);
        for index in indexes {
            let member = member.clone();
            self.redis
                .call("session_index", |mut c| async move {
                    redis::pipe()
                        .sadd(&index, member)
                        .ignore()
                        .pexpire(&index, i64::try_from(max).unwrap_or(i64::MAX))
                        .ignore()
                        .query_async::<()>(&mut c)
                        .await
                })
                .await?;
        }
        Ok(expires_at)
    }

    /// The session under `digest`, marking it used.
    pub async fn find(&self, digest: &[u8; 32]) -> Result<Option<Lookup>, RedisUnavailable> {
        let key = self.key(digest);
        let ended = self.redis.keys().session_ended(&hex::encode(digest));
        let (idle, max) = (millis(self.idle), millis(self.max));
        let found: Option<Vec<String>> = self
            .redis
            .call("session_find", |mut c| {
                let find = &self.find;
                async move {
                    find.key(&key)
                        .key(&ended)
                        .arg(idle)
                        .arg(max)
                        .invoke_async(&mut c)
                        .await
                }
            })
            .await?;
        let Some(found) = found else {
            return Ok(None);
        };
        match found.as_slice() {
            [kind, why] if kind == "ended" => Ok(Some(Lookup::Ended(why.clone()))),
            [
                kind,
                person,
                id_token,
                refresh_token,
                refresh_at,
                expires_at,
            ] if kind == "live" => {
                let Ok(person) = serde_json::from_str::<StoredPerson>(person) else {
                    return Ok(None);
                };
                let refresh_token =
                    (!refresh_token.is_empty()).then(|| SecretString::from(refresh_token.clone()));
                Ok(Some(Lookup::Live(Stored {
                    person: person.into(),
                    tokens: Tokens {
                        id_token: SecretString::from(id_token.clone()),
                        refresh_at: refresh_at.parse().ok().filter(|_| refresh_token.is_some()),
                        refresh_token,
                    },
                    expires_at: expires_at.parse().unwrap_or(0),
                })))
            }
            _ => Ok(None),
        }
    }

    /// Takes the renewal of a session for this instance, if no other holds
    /// it: the token to release it with.
    pub async fn take_renewal(
        &self,
        digest: &[u8; 32],
    ) -> Result<Option<String>, RedisUnavailable> {
        let key = self.redis.keys().session_renewing(&hex::encode(digest));
        let token = random_token();
        let lease = millis(RENEWAL_LEASE);
        let held: Option<String> = self
            .redis
            .call("session_renewal", |mut c| {
                let token = token.clone();
                async move {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(token)
                        .arg("NX")
                        .arg("PX")
                        .arg(lease)
                        .query_async(&mut c)
                        .await
                }
            })
            .await?;
        Ok(held.map(|_| token))
    }

    pub async fn release_renewal(&self, digest: &[u8; 32], token: &str) {
        let key = self.redis.keys().session_renewing(&hex::encode(digest));
        let _ = self
            .redis
            .call("session_renewal", |mut c| {
                let release = &self.release;
                async move {
                    release
                        .key(&key)
                        .arg(token)
                        .invoke_async::<i64>(&mut c)
                        .await
                }
            })
            .await;
    }

    /// Puts what a renewal brought, next renewal in `refresh_in` seconds.
    pub async fn update(
        &self,
        digest: &[u8; 32],
        person: &Person,
        tokens: &Tokens,
        refresh_in: u64,
    ) -> Result<(), RedisUnavailable> {
        let key = self.key(digest);
        let stored = serde_json::to_string(&StoredPerson::from(person)).unwrap_or_default();
        let id_token = tokens.id_token.expose_secret().to_owned();
        let refresh_token = tokens
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
            .unwrap_or_default();
        self.redis
            .call("session_update", |mut c| {
                let update = &self.update;
                async move {
                    update
                        .key(&key)
                        .arg(stored)
                        .arg(id_token)
                        .arg(refresh_token)
                        .arg(refresh_in)
                        .invoke_async::<i64>(&mut c)
                        .await
                }
            })
            .await
            .map(|_| ())
    }

    /// Ends a session by its owner (logout).
    pub async fn end(&self, digest: &[u8; 32]) -> Result<(), RedisUnavailable> {
        let key = self.key(digest);
        self.redis
            .call(
                "session_end",
                |mut c| async move { c.del::<_, i64>(&key).await },
            )
            .await
            .map(|_| ())
    }

    /// Ends a session for `why` (a reason code), told at its next call.
    pub async fn end_because(&self, digest: &[u8; 32], why: &str) -> Result<(), RedisUnavailable> {
        let key = self.key(digest);
        let ended = self.redis.keys().session_ended(&hex::encode(digest));
        let ttl = millis(self.max);
        self.redis
            .call("session_end", |mut c| {
                let end = &self.end_because;
                async move {
                    end.key(&key)
                        .key(&ended)
                        .arg(why)
                        .arg(ttl)
                        .invoke_async::<i64>(&mut c)
                        .await
                }
            })
            .await
            .map(|_| ())
    }

    /// The sessions of a provider session (`sid`) or of a person (`sub`).
    pub async fn indexed(
        &self,
        sid: Option<&str>,
        sub: Option<&str>,
    ) -> Result<Vec<[u8; 32]>, RedisUnavailable> {
        let index = match (sid, sub) {
            (Some(sid), _) => self.redis.keys().session_sid(&hex::encode(sid)),
            (None, Some(sub)) => self.redis.keys().session_sub(&hex::encode(sub)),
            (None, None) => return Ok(Vec::new()),
        };
        let members: Vec<String> = self
            .redis
            .call(
                "session_index",
                |mut c| async move { c.smembers(&index).await },
            )
            .await?;
        Ok(members
            .iter()
            .filter_map(|m| hex::decode(m).ok()?.try_into().ok())
            .collect())
    }

    /// Keeps a login under way for `ttl`, by its state.
    pub async fn put_pending(
        &self,
        state: &str,
        pending: String,
        ttl: Duration,
    ) -> Result<(), RedisUnavailable> {
        let key = self
            .redis
            .keys()
            .login(&hex::encode(sha2::Sha256::digest(state)));
        let ttl = millis(ttl);
        self.redis
            .call("login_pending", |mut c| async move {
                c.pset_ex::<_, _, ()>(&key, pending, ttl).await
            })
            .await
    }

    /// Takes a login under way by its state: once, on any instance.
    pub async fn take_pending(&self, state: &str) -> Result<Option<String>, RedisUnavailable> {
        let key = self
            .redis
            .keys()
            .login(&hex::encode(sha2::Sha256::digest(state)));
        self.redis
            .call("login_pending", |mut c| async move {
                redis::cmd("GETDEL").arg(&key).query_async(&mut c).await
            })
            .await
    }

    /// Whether this is the first use of a logout token's `jti` (kept `ttl`).
    pub async fn first_use(&self, jti: &str, ttl: Duration) -> Result<bool, RedisUnavailable> {
        let key = self
            .redis
            .keys()
            .logout_jti(&hex::encode(sha2::Sha256::digest(jti)));
        let ttl = millis(ttl);
        let set: Option<String> = self
            .redis
            .call("logout_jti", |mut c| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }
}
