//! `[identity]`: callers the company's identity provider vouches for, next
//! to the API keys of `[auth]`. Today: services presenting the provider's
//! JWT access tokens (`[identity.jwt]`), validated against the keys the
//! provider publishes (found by OpenID discovery at `[identity.oidc]
//! issuer`), their scopes mapped from groups (`[identity.groups]`).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::{ConfigError, Scope, bad, load::within};

/// The prefix of a service principal's name (`service:<client id>`), which
/// no API key's name may take.
pub const SERVICE_PREFIX: &str = "service:";

/// The prefix of a person's principal name (`person:<sub>`), which no API
/// key's name may take either.
pub const PERSON_PREFIX: &str = "person:";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySettings {
    /// The provider; needed by `[identity.jwt]`.
    pub oidc: Option<OidcSettings>,
    /// Bearer JWTs for services; absent: such tokens are refused.
    pub jwt: Option<JwtSettings>,
    /// Group (as the provider names it) -> the gateway scopes it grants.
    #[serde(default)]
    pub groups: BTreeMap<String, BTreeSet<Scope>>,
    /// Requests a second each person and each service may make, counted
    /// for each of them separately as for an API key (with `[redis]`, for
    /// all instances together); 0: no limit.
    #[serde(default)]
    pub rate_per_second: u32,
    /// Requests each may make at once; 0: `rate_per_second`.
    #[serde(default)]
    pub burst: u32,
}

/// `[identity.oidc]`: the OpenID Provider, and the gateway as its client
/// for people's logins (all three of `client_id`, `client_secret` and
/// `redirect_url`, or none: no login).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// Its issuer identifier; discovery is at
    /// `{issuer}/.well-known/openid-configuration`.
    pub issuer: Url,
    /// The claim that lists a caller's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// The gateway's client id at the provider (a confidential client).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Its secret (also as `client_secret_file`).
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    #[serde(default, rename = "client_secret_file")]
    _client_secret_file: Option<PathBuf>,
    /// Where the provider sends people back: the gateway's
    /// `/auth/callback`, as the browser reaches it.
    #[serde(default)]
    pub redirect_url: Option<Url>,
    /// What a login asks the provider for; `openid` must be among them,
    /// `offline_access` asks for the refresh token that lets the gateway
    /// renew a session (and see a person's groups change) without them.
    #[serde(default = "default_login_scopes")]
    pub scopes: Vec<String>,
    /// A session nobody used for this long ends.
    #[serde(default = "default_session_idle_seconds")]
    pub session_idle_seconds: u64,
    /// A session ends this long after the login, used or not.
    #[serde(default = "default_session_max_seconds")]
    pub session_max_seconds: u64,
}

impl OidcSettings {
    /// The provider at `issuer`, without a login client.
    pub fn issuer(issuer: Url) -> Self {
        Self {
            issuer,
            groups_claim: default_groups_claim(),
            client_id: None,
            client_secret: None,
            _client_secret_file: None,
            redirect_url: None,
            scopes: default_login_scopes(),
            session_idle_seconds: default_session_idle_seconds(),
            session_max_seconds: default_session_max_seconds(),
        }
    }

    /// The login client, when people may log in.
    pub fn login(&self) -> Option<(&str, &SecretString, &Url)> {
        Some((
            self.client_id.as_deref()?,
            self.client_secret.as_ref()?,
            self.redirect_url.as_ref()?,
        ))
    }
}

fn default_login_scopes() -> Vec<String> {
    ["openid", "profile", "email", "offline_access"]
        .map(String::from)
        .to_vec()
}

fn default_session_idle_seconds() -> u64 {
    3600
}

fn default_session_max_seconds() -> u64 {
    12 * 3600
}

fn default_groups_claim() -> String {
    "groups".into()
}

/// `[identity.jwt]`: access tokens the provider issued for the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// The `aud` a token must name (the gateway's resource indicator).
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway_seconds")]
    pub leeway_seconds: u64,
    /// At most one fetch of the provider's keys per this many seconds
    /// (a token naming an unknown `kid` asks for one).
    #[serde(default = "default_jwks_refetch_seconds")]
    pub jwks_refetch_seconds: u64,
}

fn default_leeway_seconds() -> u64 {
    30
}

fn default_jwks_refetch_seconds() -> u64 {
    60
}

impl IdentitySettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        within(
            "identity.rate_per_second",
            self.rate_per_second.into(),
            0,
            1_000_000,
        )?;
        within("identity.burst", self.burst.into(), 0, 1_000_000)?;
        if let Some(oidc) = &self.oidc {
            let issuer = &oidc.issuer;
            let loopback = matches!(
                issuer.host(),
                Some(url::Host::Ipv4(ip)) if ip.is_loopback()
            ) || matches!(issuer.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
                || issuer.host_str() == Some("localhost");
            let secure = issuer.scheme() == "https" || (issuer.scheme() == "http" && loopback);
            if !secure || issuer.query().is_some() || issuer.fragment().is_some() {
                return Err(bad(
                    "identity.oidc.issuer",
                    format!(
                        "`{issuer}` is not an issuer: an https URL without query or fragment (http only on loopback)"
                    ),
                ));
            }
            if oidc.groups_claim.trim().is_empty() {
                return Err(bad("identity.oidc.groups_claim", "must not be empty"));
            }
            let given = [
                oidc.client_id.is_some(),
                oidc.client_secret.is_some(),
                oidc.redirect_url.is_some(),
            ];
            if given.contains(&true) && given.contains(&false) {
                return Err(bad(
                    "identity.oidc",
                    "people log in only with all of client_id, client_secret and redirect_url; one is missing",
                ));
            }
            if let Some(url) = &oidc.redirect_url
                && (!matches!(url.scheme(), "http" | "https")
                    || !url.path().ends_with("/auth/callback")
                    || url.query().is_some())
            {
                return Err(bad(
                    "identity.oidc.redirect_url",
                    format!(
                        "`{url}` is not the gateway's callback, such as https://app.example.com/auth/callback"
                    ),
                ));
            }
            if !oidc.scopes.iter().any(|s| s == "openid") {
                return Err(bad(
                    "identity.oidc.scopes",
                    "must include \"openid\": without it there is no ID token to say who logged in",
                ));
            }
            if let Some(bad_scope) = oidc.scopes.iter().find(|s| {
                s.is_empty()
                    || s.chars()
                        .any(|c| c == '"' || c == '\\' || !c.is_ascii_graphic())
            }) {
                return Err(bad(
                    "identity.oidc.scopes",
                    format!(
                        "{bad_scope:?} is not a scope (RFC 6749 §3.3: printable ASCII, no space, quote or backslash)"
                    ),
                ));
            }
            within(
                "identity.oidc.session_idle_seconds",
                oidc.session_idle_seconds,
                60,
                86_400,
            )?;
            within(
                "identity.oidc.session_max_seconds",
                oidc.session_max_seconds,
                60,
                30 * 86_400,
            )?;
        }
        if let Some(jwt) = &self.jwt {
            if self.oidc.is_none() {
                return Err(bad(
                    "identity.jwt",
                    "needs [identity.oidc] issuer: the tokens' keys are found by its discovery",
                ));
            }
            if jwt.audience.trim().is_empty() {
                return Err(bad("identity.jwt.audience", "must not be empty"));
            }
            within("identity.jwt.leeway_seconds", jwt.leeway_seconds, 0, 300)?;
            within(
                "identity.jwt.jwks_refetch_seconds",
                jwt.jwks_refetch_seconds,
                1,
                86_400,
            )?;
        }
        for (group, scopes) in &self.groups {
            if group.is_empty() {
                return Err(bad("identity.groups", "a group name must not be empty"));
            }
            if scopes.is_empty() {
                return Err(bad(
                    &format!("identity.groups.{group}"),
                    "must name at least one of read, write, secrets, audit",
                ));
            }
        }
        Ok(())
    }

    /// The issuer and the token settings, when service tokens are accepted.
    pub fn service_tokens(&self) -> Option<(&OidcSettings, &JwtSettings)> {
        Some((self.oidc.as_ref()?, self.jwt.as_ref()?))
    }
}
