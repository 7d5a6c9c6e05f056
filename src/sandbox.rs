//! Sandbox mode: the gateway in front of the simulated upstreams of the
//! `gateway-sandbox` crate (re-exported here), with settings that point at
//! them. `gateway` without a configuration file runs this way.

use std::net::SocketAddr;

pub use gateway_sandbox::*;

use crate::configuration::{
    ApiKeySettings, AuthSettings, DnaSettings, IdentitySettings, OidcSettings, Scope,
    ServerSettings, Settings, SlitzSettings,
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
                scopes: [Scope::Read, Scope::Write, Scope::Secrets, Scope::Audit].into(),
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
        identity: login(sandbox, listen),
        redis: None,
        registry: Default::default(),
    }
}

/// People log in at the sandbox's simulated identity provider (its people
/// are [`data::PEOPLE`]), when the gateway's own address is known: the
/// provider sends the browser back to it. On a random port (tests), nobody
/// logs in.
fn login(sandbox: &Sandbox, listen: SocketAddr) -> IdentitySettings {
    if listen.port() == 0 {
        return IdentitySettings::default();
    }
    let host = if listen.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], listen.port()))
    } else {
        listen
    };
    let Ok(redirect) = format!("http://{host}/auth/callback").parse() else {
        return IdentitySettings::default();
    };
    let mut oidc = OidcSettings::issuer(sandbox.idp_issuer());
    oidc.client_id = Some(data::IDP_CLIENT_ID.to_owned());
    oidc.client_secret = Some(data::IDP_CLIENT_SECRET.into());
    oidc.redirect_url = Some(redirect);
    IdentitySettings {
        oidc: Some(oidc),
        jwt: None,
        groups: [
            ("gateway-readers", &[Scope::Read][..]),
            ("gateway-writers", &[Scope::Read, Scope::Write][..]),
            (
                "gateway-admins",
                &[Scope::Read, Scope::Write, Scope::Secrets, Scope::Audit][..],
            ),
        ]
        .into_iter()
        .map(|(group, scopes)| (group.to_owned(), scopes.iter().copied().collect()))
        .collect(),
        ..IdentitySettings::default()
    }
}

/// A configuration file for a gateway in front of `sandbox`'s simulators,
/// as `gateway sandbox-upstreams --config-out` writes it: their URLs and
/// credentials, the key [`SANDBOX_API_KEY`] with every scope, a random
/// loopback port, JSON logs. Everything else at its default, so
/// `GATEWAY__*` variables and `--listen` adjust it as any configuration.
pub fn config_toml(sandbox: &Sandbox) -> String {
    format!(
        r#"# Written by `gateway sandbox-upstreams --config-out`: a gateway in front of
# the simulated upstreams. Not for production: the key is well known.
[server]
listen = "127.0.0.1:0"
cors_allowed_origins = ["*"]

[[auth.api_keys]]
name = "sandbox"
sha256 = "{key}"
scopes = ["read", "write", "secrets", "audit"]

[dna]
base_url = "{dna}"
client_id = "{client_id}"
client_secret = "{client_secret}"
username = "{dna_user}"
password = "{dna_password}"
scope = "{dna_scope}"

[slitz]
base_url = "{slitz}"
username = "{slitz_user}"
password = "{slitz_password}"
timezone = "{zone}"
currency = "SEK"

[log]
format = "json"
"#,
        key = crate::auth::sha256_hex(SANDBOX_API_KEY),
        dna = sandbox.dna_base_url(),
        client_id = data::DNA_CLIENT_ID,
        client_secret = data::DNA_CLIENT_SECRET,
        dna_user = data::DNA_USERNAME,
        dna_password = data::DNA_PASSWORD,
        dna_scope = data::DNA_SCOPE,
        slitz = sandbox.slitz_base_url(),
        slitz_user = data::SLITZ_EMAIL,
        slitz_password = data::SLITZ_PASSWORD,
        zone = data::ZONE.name(),
    )
}
