//! Configuration reload without a restart (SIGHUP): the API keys (their
//! scopes and rates) and the log filter are swapped at once; everything
//! else is read at start only, and a reload that changes it says a restart
//! is needed.

use actix_web::web;
use secrecy::ExposeSecret;

use crate::{auth::ApiKeys, configuration::Settings, telemetry};

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
        let filter_kept = telemetry::reload_filter(&settings.log.filter).err();
        Reloaded {
            restart_needed: restart_needed(&self.started, settings),
            filter_kept,
        }
    }
}

/// The sections (and secrets) that differ from the configuration the
/// gateway started with, other than the reloadable ones.
fn restart_needed(old: &Settings, new: &Settings) -> Vec<&'static str> {
    // Debug shows every field but redacts secrets; secrets are compared apart.
    let same =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") == format!("{b:?}");
    let mut changed = Vec::new();
    let sections: [(&'static str, bool); 9] = [
        ("server", same(&old.server, &new.server)),
        ("dna", same(&old.dna, &new.dna)),
        ("slitz", same(&old.slitz, &new.slitz)),
        ("cache", same(&old.cache, &new.cache)),
        ("upstream", same(&old.upstream, &new.upstream)),
        ("idempotency", same(&old.idempotency, &new.idempotency)),
        ("overview", same(&old.overview, &new.overview)),
        ("redis", same(&old.redis, &new.redis)),
        ("log.format", same(&old.log.format, &new.log.format)),
    ];
    for (name, unchanged) in sections {
        if !unchanged {
            changed.push(name);
        }
    }
    let secrets = [
        (
            "dna.client_secret",
            old.dna.client_secret.expose_secret() == new.dna.client_secret.expose_secret(),
        ),
        (
            "dna.password",
            old.dna.password.expose_secret() == new.dna.password.expose_secret(),
        ),
        (
            "slitz.password",
            old.slitz.password.expose_secret() == new.slitz.password.expose_secret(),
        ),
        (
            "redis.url",
            old.redis.as_ref().map(|r| r.url.expose_secret())
                == new.redis.as_ref().map(|r| r.url.expose_secret()),
        ),
    ];
    for (name, unchanged) in secrets {
        if !unchanged && !changed.iter().any(|c| name.starts_with(c)) {
            changed.push(name);
        }
    }
    changed
}
