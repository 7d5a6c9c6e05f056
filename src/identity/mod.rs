//! Callers the company's identity provider vouches for: people logged in
//! through the gateway (`login`, `session`: a session cookie), and services
//! presenting the provider's JWT access tokens (RFC 9068), validated here;
//! admission (`auth`) asks [`ServiceTokens::authenticate`] for any bearer
//! credential shaped like a JWT, and [`Identity::login`]'s sessions for the
//! session cookie.
//!
//! Service tokens:
//! A token is accepted only when all of these hold:
//! - its header's `typ` is `at+jwt` (RFC 9068 §4: an ID token or another
//!   JWT is not an access token), its `alg` is an asymmetric one in
//!   [`ALLOWED`] (never `none`, never HMAC, whose "secret" would be the
//!   published key) and one the key it names (`kid`) may sign with;
//! - the signature verifies with that key, from the issuer's JWKS
//!   (`jwks`: cached; an unknown `kid` refetches at most once per interval);
//! - `iss` is the configured issuer, `aud` names the configured audience,
//!   `exp` is in the future and `nbf` (if any) in the past, with the leeway.
//!
//! Its scopes are those its groups map to (`[identity.groups]`, from the
//! configured groups claim) and the gateway scopes its `scope` claim names.

mod jwks;
pub mod login;
mod person;
pub mod session;
mod shared_sessions;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde::Deserialize;

use crate::configuration::{IdentitySettings, Scope};

/// The algorithms a service token may be signed with.
pub const ALLOWED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// How long one fetch of discovery or the JWKS may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A service the provider vouched for.
#[derive(Debug, Clone)]
pub struct Service {
    /// Its client id (`client_id`, else `azp`, else `sub`).
    pub client_id: Arc<str>,
    pub scopes: BTreeSet<Scope>,
}

/// Why a token was refused: for the log, never shown to the caller (who
/// gets one 401 for all of them, as for an unknown API key).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("not a JWT: {0}")]
    Malformed(String),
    #[error("the token's type is {0:?}, not at+jwt")]
    NotAnAccessToken(Option<String>),
    #[error("algorithm {0:?} is not allowed")]
    Algorithm(Algorithm),
    #[error("the token names no key (kid)")]
    NoKeyId,
    #[error("the provider has no key {0:?}")]
    UnknownKey(String),
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("the token names no client")]
    NoClient,
}

/// What the gateway knows of the identity provider: its keys (shared), and
/// what it accepts from it.
#[derive(Default)]
pub struct Identity {
    /// With `[identity.jwt]`: services' access tokens.
    pub services: Option<ServiceTokens>,
    /// With `[identity.oidc]`'s client: people's logins and sessions.
    pub login: Option<login::Login>,
    jwks: Option<Arc<jwks::Jwks>>,
}

impl Identity {
    /// With `redis`, people's sessions and logins under way are shared by
    /// every instance.
    pub fn new(
        settings: &IdentitySettings,
        redis: Option<&Arc<crate::shared::SharedRedis>>,
    ) -> anyhow::Result<Self> {
        let Some(oidc) = &settings.oidc else {
            return Ok(Self::default());
        };
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let refetch = settings
            .jwt
            .as_ref()
            .map_or(60, |jwt| jwt.jwks_refetch_seconds);
        let jwks = Arc::new(jwks::Jwks::new(
            http,
            oidc.issuer.clone(),
            Duration::from_secs(refetch),
        ));
        Ok(Self {
            services: ServiceTokens::new(Arc::clone(&jwks), settings),
            login: login::Login::new(Arc::clone(&jwks), oidc, &settings.groups, redis),
            jwks: Some(jwks),
        })
    }

    /// Fetches the provider's keys and endpoints ahead of the first caller.
    pub async fn warm(&self) {
        if let Some(jwks) = &self.jwks {
            jwks.warm().await;
        }
    }
}

/// Validates the provider's access tokens for services.
pub struct ServiceTokens {
    jwks: Arc<jwks::Jwks>,
    validation: Validation,
    groups_claim: String,
    groups: BTreeMap<String, BTreeSet<Scope>>,
}

#[derive(Deserialize)]
struct Claims {
    client_id: Option<String>,
    azp: Option<String>,
    sub: Option<String>,
    scope: Option<String>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

impl ServiceTokens {
    /// Service tokens as `settings` say; `None` when they are not accepted
    /// (no `[identity.jwt]`).
    fn new(jwks: Arc<jwks::Jwks>, settings: &IdentitySettings) -> Option<Self> {
        let (oidc, jwt) = settings.service_tokens()?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = jwt.leeway_seconds;
        validation.validate_nbf = true;
        validation.set_audience(&[&jwt.audience]);
        // Both spellings of the issuer identifier, with and without the
        // trailing slash `url` adds to a bare host.
        let issuer = oidc.issuer.as_str();
        validation.set_issuer(&[issuer, issuer.trim_end_matches('/')]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        Some(Self {
            jwks,
            validation,
            groups_claim: oidc.groups_claim.clone(),
            groups: settings.groups.clone(),
        })
    }

    /// The service `token` vouches for.
    pub async fn authenticate(&self, token: &str) -> Result<Service, Refusal> {
        let header = decode_header(token).map_err(|e| Refusal::Malformed(e.to_string()))?;
        let typ = header.typ.as_deref();
        if !matches!(
            typ.map(str::to_ascii_lowercase).as_deref(),
            Some("at+jwt" | "application/at+jwt")
        ) {
            return Err(Refusal::NotAnAccessToken(header.typ));
        }
        if !ALLOWED.contains(&header.alg) {
            return Err(Refusal::Algorithm(header.alg));
        }
        let kid = header.kid.ok_or(Refusal::NoKeyId)?;
        let key = self.jwks.key(&kid).await.ok_or(Refusal::UnknownKey(kid))?;
        if !key.algorithms.contains(&header.alg) {
            return Err(Refusal::Algorithm(header.alg));
        }
        // The one algorithm the header names, checked above against the
        // allow-list and the key (the library wants every algorithm it is
        // given to be of the key's family).
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let claims = decode::<Claims>(token, &key.decoding, &validation)
            .map_err(|e| Refusal::Invalid(e.to_string()))?
            .claims;
        let mut scopes = BTreeSet::new();
        if let Some(serde_json::Value::Array(groups)) = claims.rest.get(&self.groups_claim) {
            for group in groups.iter().filter_map(serde_json::Value::as_str) {
                if let Some(granted) = self.groups.get(group) {
                    scopes.extend(granted.iter().copied());
                }
            }
        }
        for value in claims
            .scope
            .as_deref()
            .unwrap_or("")
            .split_ascii_whitespace()
        {
            if let Some(scope) = Scope::named(value) {
                scopes.insert(scope);
            }
        }
        let client_id = claims
            .client_id
            .or(claims.azp)
            .or(claims.sub)
            .filter(|id| !id.is_empty())
            .ok_or(Refusal::NoClient)?;
        Ok(Service {
            client_id: client_id.into(),
            scopes,
        })
    }
}

/// Whether a bearer credential is shaped like a JWT (three base64url parts,
/// the first a JSON object's encoding): such a credential is only ever
/// validated as a token, never looked up as an API key.
pub fn looks_like_jwt(credential: &str) -> bool {
    let mut parts = credential.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let base64url = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    // `{"` encodes to `eyJ`.
    header.starts_with("eyJ") && base64url(header) && base64url(payload) && base64url(signature)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn jwts_are_told_from_keys() {
        assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
        for key in [
            "sandbox-key",
            "",
            "a.b.c",
            "eyJ.b",
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.",
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln.d",
            "eyJh bGc.eyJ.c2ln",
        ] {
            assert!(!looks_like_jwt(key), "{key:?}");
        }
    }

    proptest! {
        /// Any bearer value at all, arbitrary Unicode included, is judged
        /// without a panic, and one with a non-ASCII byte is never a JWT.
        #[test]
        fn any_credential_is_judged(credential in any::<String>()) {
            let jwt = looks_like_jwt(&credential);
            prop_assert!(!jwt || credential.is_ascii());
            // The header parser meets whatever a caller sends, too.
            let _ = decode_header(&credential);
        }
    }
}
