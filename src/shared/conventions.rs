//! How the gateway uses Redis, for all five of its protocols in one place:
//! the keys they own, the clock they read, how their scripts are written.
//!
//! **Keys.** Every key is under `redis.key_prefix`, so several gateways can
//! share one Redis. Caller names and idempotency keys never appear as such.
//! The table leaves the prefix out.
//!
//! | key | protocol | what |
//! |---|---|---|
//! | `{rate:<hex(key name)>}` | rate limits | a key's GCRA theoretical arrival time (µs, Redis's clock) |
//! | `{idempotency:<sha256>}` | idempotency | a key's record: body fingerprint, holder, the answer once there is one |
//! | `{idempotency:<sha256>}:lease` | idempotency | held (value: the holder) while the first request runs; expires after the lease |
//! | `{cache}:gen` | cache | hash: the generation of every route a write has changed |
//! | `{cache}:entry:<route>:<variant>` | cache | hash: `body`, `etag`, `fetched_ms` (Redis's clock), `generation` (of its route, when stored) |
//! | `{cache}:lock:<route>:<generation>:<variant>` | cache | the instance loading a cold key |
//! | `{cache}:invalidations` | cache | channel: `<id> <route>=<generation> …` after a write |
//! | `{cache}:ack:<id>` | cache | how many instances have applied invalidation `id` |
//! | `{events}` | events | stream: the last `events.replay` events (`type`, `data`), for `Last-Event-ID` |
//! | `{events}:live` | events | channel: `<stream id> <type> <data>`, each event as it is added |
//! | `{events}:watcher` | events | the instance polling Slitz for the cluster (its token); expires unless renewed |
//! | `{session:<sha256>}` | sessions | hash: a person's session (who, the provider's tokens, `refresh_at`, `expires_at`), under the SHA-256 of its cookie; expires when idle |
//! | `{session:<sha256>}:ended` | sessions | why a session ended other than by its owner's logout |
//! | `{session:<sha256>}:renewing` | sessions | the instance renewing it (its token) |
//! | `{session-sid:<hex>}`, `{session-sub:<hex>}` | sessions | set: the sessions of a provider session, of a person (back-channel logout) |
//! | `{login:<sha256>}` | sessions | a login under way, by the SHA-256 of its `state`; taken once by the callback |
//! | `{logout-jti:<sha256>}` | sessions | a back-channel logout token's `jti`, taken once |
//!
//! **Scripts touch only their `KEYS`**, built here and nowhere else (a
//! script never derives a key name from another or from an argument), and
//! the keys one script touches share a hash tag (`{cache}`, `{events}`,
//! `{idempotency:…}`), so each script's keys live in one slot and the
//! scripts would run on a Redis Cluster. `tests/redis_scripts.rs` reads
//! every script and holds them to it. The prefix (`redis.key_prefix`) goes
//! in front of the tag and must hold no `{`.
//!
//! **One clock: Redis's.** Anything that expires or ages is measured by
//! Redis (`PX` on a key, or `TIME` inside a script through [`CLOCK`]'s
//! `now_us()` / `now_ms()`), never by an instance's own clock, so instances
//! whose clocks disagree still agree on every lease, limit and age.
//!
//! **Scripts** are built with [`script`], which puts [`CLOCK`] in front of
//! the body; redis-rs sends each by its SHA and loads it on `NOSCRIPT`.
//! A script that lets go of something held (a lock, a lease) compares the
//! holder's exact token, never a substring of a record.
//!
//! **Timeouts.** Every call goes through [`super::SharedRedis::call`],
//! bounded by `redis.timeout_ms` and counted by operation name.

use sha2::{Digest, Sha256};

/// Lua that every script starts with: Redis's clock.
pub const CLOCK: &str = "\
local function now_us()
    local t = redis.call('TIME')
    return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function now_ms()
    return math.floor(now_us() / 1000)
end
";

/// A script whose body may call `now_us()` and `now_ms()`.
pub fn script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{CLOCK}{body}"))
}

/// The names of the keys in the table above, under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    pub fn rate(&self, key_name: &str) -> String {
        format!(
            "{}{{rate:{}}}",
            self.prefix,
            hex::encode(key_name.as_bytes())
        )
    }

    /// The record and the lease of an idempotency key `scoped` to its caller.
    pub fn idempotency(&self, scoped: &str) -> (String, String) {
        let record = format!(
            "{}{{idempotency:{}}}",
            self.prefix,
            hex::encode(Sha256::digest(scoped.as_bytes()))
        );
        let lease = format!("{record}:lease");
        (record, lease)
    }

    pub fn cache_generations(&self) -> String {
        format!("{}{{cache}}:gen", self.prefix)
    }

    pub fn cache_entry(&self, route: &str, variant: &str) -> String {
        format!("{}{{cache}}:entry:{route}:{variant}", self.prefix)
    }

    pub fn cache_lock(&self, route: &str, generation: u64, variant: &str) -> String {
        format!(
            "{}{{cache}}:lock:{route}:{generation}:{variant}",
            self.prefix
        )
    }

    pub fn cache_invalidations(&self) -> String {
        format!("{}{{cache}}:invalidations", self.prefix)
    }

    pub fn cache_ack(&self, id: &str) -> String {
        format!("{}{{cache}}:ack:{id}", self.prefix)
    }

    pub fn events(&self) -> String {
        format!("{}{{events}}", self.prefix)
    }

    pub fn events_live(&self) -> String {
        format!("{}{{events}}:live", self.prefix)
    }

    pub fn events_watcher(&self) -> String {
        format!("{}{{events}}:watcher", self.prefix)
    }

    /// A session, by the hex SHA-256 of its cookie.
    pub fn session(&self, digest: &str) -> String {
        format!("{}{{session:{digest}}}", self.prefix)
    }

    pub fn session_ended(&self, digest: &str) -> String {
        format!("{}:ended", self.session(digest))
    }

    pub fn session_renewing(&self, digest: &str) -> String {
        format!("{}:renewing", self.session(digest))
    }

    /// A login under way, by the hex SHA-256 of its `state`.
    pub fn login(&self, state: &str) -> String {
        format!("{}{{login:{state}}}", self.prefix)
    }

    /// A logout token's `jti` (hex SHA-256).
    pub fn logout_jti(&self, jti: &str) -> String {
        format!("{}{{logout-jti:{jti}}}", self.prefix)
    }

    /// The sessions of a provider session (`sid`, hex).
    pub fn session_sid(&self, sid: &str) -> String {
        format!("{}{{session-sid:{sid}}}", self.prefix)
    }

    /// The sessions of a person (`sub`, hex).
    pub fn session_sub(&self, sub: &str) -> String {
        format!("{}{{session-sub:{sub}}}", self.prefix)
    }
}

/// The hash tag of a key, as Redis Cluster reads it: what is between the
/// first `{` and the `}` after it, when not empty; else the whole key.
pub fn hash_tag(key: &str) -> &str {
    key.split_once('{')
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(tag, _)| tag)
        .filter(|tag| !tag.is_empty())
        .unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_under_the_prefix_and_hides_what_callers_sent() {
        let keys = Keys::new("gw:");
        let (record, lease) = keys.idempotency("web\u{0}my-key");
        for key in [
            keys.rate("web"),
            record.clone(),
            lease.clone(),
            keys.cache_generations(),
            keys.cache_entry("account", "v"),
            keys.cache_lock("account", 3, "v"),
            keys.cache_invalidations(),
            keys.cache_ack("id"),
        ] {
            assert!(key.starts_with("gw:"), "{key}");
            assert!(!key.contains("my-key"), "{key}");
        }
        assert_eq!(lease, format!("{record}:lease"));
    }

    #[test]
    fn the_keys_one_script_touches_share_a_slot() {
        let keys = Keys::new("gw:");
        let (record, lease) = keys.idempotency("web\u{0}my-key");
        let together: [&[String]; 4] = [
            // An idempotency key's claim, answer and release.
            &[record, lease],
            // A cache read (generations and entry), write, invalidation.
            &[
                keys.cache_generations(),
                keys.cache_entry("invoice", "7"),
                keys.cache_lock("invoice", 2, "7"),
                keys.cache_invalidations(),
                keys.cache_ack("x"),
            ],
            // An event added and announced; the watcher lease.
            &[keys.events(), keys.events_live(), keys.events_watcher()],
            // A session, why it ended, who renews it.
            &[
                keys.session("ab"),
                keys.session_ended("ab"),
                keys.session_renewing("ab"),
            ],
        ];
        for group in together {
            let first = group.first().map(|k| hash_tag(k)).unwrap_or_default();
            for key in group {
                assert_eq!(hash_tag(key), first, "{key}");
                assert_ne!(hash_tag(key), key.as_str(), "{key} has a tag");
            }
        }
        assert_eq!(hash_tag("a{b}c{d}"), "b");
        assert_eq!(hash_tag("a{}b"), "a{}b");
    }
}
