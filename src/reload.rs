//! Configuration reload without a restart (SIGHUP): the API keys (their
//! scopes and rates) and the log filter are swapped at once; everything
//! else is read at start only, and a reload that changes it says a restart
//! is needed.

use actix_web::web;
use secrecy::ExposeSecret;

use crate::{
    auth::ApiKeys,
    configuration::{LogSettings, Settings, Upstream},
    telemetry,
};

/// Applies reloaded settings to a running gateway.
#[derive(Clone)]
pub struct Reloader {
    keys: web::Data<ApiKeys>,
    started: std::sync::Arc<Settings>,
}

/// What a reload did.
#[derive(Debug, Default)]
pub struct Reloaded {
    /// Keys of the configuration that changed but only take effect after a restart.
    pub restart_needed: Vec<&'static str>,
    /// Why the log filter stayed as it was, if it did.
    pub filter_kept: Option<String>,
}

impl Reloader {
    pub(crate) fn new(keys: web::Data<ApiKeys>, started: &Settings) -> Self {
        Self {
            keys,
            started: std::sync::Arc::new(started.clone()),
        }
    }

    /// Swaps in `settings`' API keys and log filter; reports what else
    /// changed since start and needs a restart.
    pub fn apply(&self, settings: &Settings) -> Reloaded {
        self.keys.replace(&settings.auth.api_keys);
        let filter_kept = telemetry::reload(&settings.log).err();
        Reloaded {
            restart_needed: restart_needed(&self.started, settings),
            filter_kept,
        }
    }
}

/// The sections (and secrets) that differ from the configuration the
/// gateway started with, other than the reloadable ones. Both settings are
/// taken apart whole: a new section does not compile until it is said here
/// whether it reloads.
fn restart_needed(old: &Settings, new: &Settings) -> Vec<&'static str> {
    // Debug shows every field but redacts secrets; secrets are compared apart.
    let same =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") == format!("{b:?}");
    let Settings {
        server,
        // Reloaded: the keys, their scopes and rates.
        auth: _,
        dna,
        slitz,
        cache,
        upstream: _,
        log:
            LogSettings {
                format,
                // Reloaded.
                filter: _,
                access: _,
            },
        idempotency,
        overview,
        events,
        identity,
        redis,
        registry,
    } = new;
    let sections: [(&'static str, bool); 13] = [
        ("server", same(&old.server, server)),
        ("dna", same(&old.dna, dna)),
        ("slitz", same(&old.slitz, slitz)),
        ("cache", same(&old.cache, cache)),
        // Each upstream's policy as it resolves: a change to [upstream]
        // names every upstream that inherits it.
        (
            "upstream.dna",
            old.upstream.of(Upstream::Dna) == new.upstream.of(Upstream::Dna),
        ),
        (
            "upstream.slitz",
            old.upstream.of(Upstream::Slitz) == new.upstream.of(Upstream::Slitz),
        ),
        ("idempotency", same(&old.idempotency, idempotency)),
        ("overview", same(&old.overview, overview)),
        ("events", same(&old.events, events)),
        ("identity", same(&old.identity, identity)),
        ("redis", same(&old.redis, redis)),
        ("registry", same(&old.registry, registry)),
        ("log.format", same(&old.log.format, format)),
    ];
    let mut changed: Vec<&'static str> = sections
        .into_iter()
        .filter(|(_, unchanged)| !unchanged)
        .map(|(name, _)| name)
        .collect();
    let secrets = [
        (
            "dna.client_secret",
            old.dna.client_secret.expose_secret() == dna.client_secret.expose_secret(),
        ),
        (
            "dna.password",
            old.dna.password.expose_secret() == dna.password.expose_secret(),
        ),
        (
            "slitz.password",
            old.slitz.password.expose_secret() == slitz.password.expose_secret(),
        ),
        (
            "identity.oidc.client_secret",
            old.identity
                .oidc
                .as_ref()
                .and_then(|o| o.client_secret.as_ref())
                .map(|s| s.expose_secret())
                == identity
                    .oidc
                    .as_ref()
                    .and_then(|o| o.client_secret.as_ref())
                    .map(|s| s.expose_secret()),
        ),
        (
            "registry.url",
            old.registry.url.expose_secret() == registry.url.expose_secret(),
        ),
        (
            "redis.url",
            old.redis.as_ref().map(|r| r.url.expose_secret())
                == redis.as_ref().map(|r| r.url.expose_secret()),
        ),
    ];
    for (name, unchanged) in secrets {
        if !unchanged && !changed.iter().any(|c| name.starts_with(c)) {
            changed.push(name);
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(env: &[(&str, &str)]) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(
            &path,
            r#"
[[auth.api_keys]]
name = "web"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
scopes = ["read"]
[dna]
base_url = "https://dna.example.com/api"
client_id = "3"
client_secret = "s"
username = "u"
password = "p"
[slitz]
base_url = "https://slitz.example.com/api"
username = "u"
password = "p"
"#,
        )
        .unwrap();
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        Settings::load(Some(&path), env).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_upstream_policy_change_names_each_upstream_it_reaches() {
        let started = settings(&[]);
        let slitz_only = settings(&[("GATEWAY__UPSTREAM__SLITZ__TIMEOUT_MS", "2000")]);
        assert_eq!(restart_needed(&started, &slitz_only), ["upstream.slitz"]);
        let both = settings(&[("GATEWAY__UPSTREAM__RETRIES", "0")]);
        assert_eq!(
            restart_needed(&started, &both),
            ["upstream.dna", "upstream.slitz"]
        );
        // Overridden for DNA, so a new default reaches Slitz only.
        let mut shielded = settings(&[("GATEWAY__UPSTREAM__DNA__RETRIES", "2")]);
        assert!(restart_needed(&started, &shielded).is_empty());
        shielded = settings(&[
            ("GATEWAY__UPSTREAM__DNA__RETRIES", "2"),
            ("GATEWAY__UPSTREAM__RETRIES", "0"),
        ]);
        assert_eq!(restart_needed(&started, &shielded), ["upstream.slitz"]);
    }

    #[test]
    fn an_events_change_needs_a_restart_and_says_so() {
        let started = settings(&[]);
        let events = settings(&[("GATEWAY__EVENTS__POLL_SECONDS", "7")]);
        assert_eq!(restart_needed(&started, &events), ["events"]);
        let filter = settings(&[("GATEWAY__LOG__FILTER", "debug")]);
        assert!(restart_needed(&started, &filter).is_empty());
    }
}
