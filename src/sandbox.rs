//! Sandbox mode: the gateway in front of the simulated upstreams of the
//! `gateway-sandbox` crate (re-exported here), with settings that point at
//! them. `gateway` without a configuration file runs this way.

use std::net::SocketAddr;

pub use gateway_sandbox::*;

use crate::configuration::{
    ApiKeySettings, AuthSettings, DnaSettings, Scope, ServerSettings, Settings, SlitzSettings,
};

/// Gateway settings for `sandbox`'s simulators: their URLs, their
/// credentials, and the well-known key [`SANDBOX_API_KEY`] with every scope,
/// no rate limit (load tests and fuzzers run against the sandbox) and CORS
/// open to any origin (a frontend on its own dev server may call it).
pub fn settings(sandbox: &Sandbox, listen: SocketAddr) -> Settings {
    Settings {
        server: ServerSettings {
            listen,
            cors_allowed_origins: vec!["*".to_owned()],
            ..ServerSettings::default()
        },
        auth: AuthSettings {
            api_keys: vec![ApiKeySettings {
                name: "sandbox".to_owned(),
                sha256: crate::auth::sha256_hex(SANDBOX_API_KEY),
                scopes: [Scope::Read, Scope::Write, Scope::Secrets].into(),
                rate_per_second: 0,
                burst: 0,
            }],
        },
        dna: DnaSettings::new(
            sandbox.dna_base_url(),
            data::DNA_CLIENT_ID.to_owned(),
            data::DNA_CLIENT_SECRET.into(),
            data::DNA_USERNAME.to_owned(),
            data::DNA_PASSWORD.into(),
            data::DNA_SCOPE.to_owned(),
        ),
        slitz: SlitzSettings::new(
            sandbox.slitz_base_url(),
            data::SLITZ_EMAIL.to_owned(),
            data::SLITZ_PASSWORD.into(),
            data::ZONE,
            "SEK".to_owned(),
        ),
        cache: Default::default(),
        upstream: Default::default(),
        log: Default::default(),
        idempotency: Default::default(),
        overview: Default::default(),
        events: Default::default(),
        redis: None,
    }
}
