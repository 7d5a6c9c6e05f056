//! People logging in: the gateway is a confidential OpenID Connect client
//! of the provider (authorization code with PKCE S256, `state`, `nonce`)
//! and keeps what it learns server-side; the browser gets one opaque
//! session cookie (RFC 10017's backend-for-frontend).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use base64::Engine;
use jsonwebtoken::{Validation, decode, decode_header};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;

use super::{
    jwks::Jwks,
    session::{Person, Session, Sessions, random_token},
};
use crate::configuration::{OidcSettings, Scope};

/// How long a login may take between `/auth/login` and the callback.
const PENDING_FOR: Duration = Duration::from_secs(600);
const MAX_PENDING: u64 = 100_000;

/// Why a login did not start or finish: each a problem for the caller.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("return_to must be a path on this site, such as /app/customers")]
    ReturnTo,
    #[error("the identity provider cannot be reached; try again shortly")]
    ProviderUnavailable,
    #[error("the identity provider refused the login: {0}")]
    Refused(String),
    #[error("this login is unknown, already used or too old; start again at /auth/login")]
    UnknownState,
    #[error("the login could not be completed: {0}")]
    Failed(String),
}

struct Pending {
    verifier: String,
    nonce: String,
    return_to: String,
}

/// What the provider sends back to `/auth/callback`.
#[derive(Debug, Deserialize)]
pub struct Callback {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

pub struct Login {
    jwks: Arc<Jwks>,
    issuer: Url,
    client_id: String,
    client_secret: SecretString,
    redirect_url: Url,
    groups_claim: String,
    groups: BTreeMap<String, BTreeSet<Scope>>,
    pending: moka::future::Cache<String, Arc<Pending>>,
    pub sessions: Sessions,
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: String,
}

#[derive(Deserialize)]
struct IdClaims {
    sub: String,
    nonce: Option<String>,
    azp: Option<String>,
    #[serde(default)]
    aud: Audience,
    name: Option<String>,
    email: Option<String>,
    sid: Option<String>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Audience {
    One(serde::de::IgnoredAny),
    Many(Vec<serde::de::IgnoredAny>),
    #[default]
    None,
}

/// A path on this site: `/` and then anything but a second `/` or `\` (which
/// browsers read as another host), no control characters or spaces.
pub fn same_origin_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && path.len() <= 2048
        && !path.contains('\\')
        && path.chars().all(|c| !c.is_control() && !c.is_whitespace())
}

impl Login {
    pub(super) fn new(
        jwks: Arc<Jwks>,
        oidc: &OidcSettings,
        groups: &BTreeMap<String, BTreeSet<Scope>>,
    ) -> Option<Self> {
        let (client_id, client_secret, redirect_url) = oidc.login()?;
        Some(Self {
            jwks,
            issuer: oidc.issuer.clone(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.clone(),
            redirect_url: redirect_url.clone(),
            groups_claim: oidc.groups_claim.clone(),
            groups: groups.clone(),
            pending: moka::future::Cache::builder()
                .max_capacity(MAX_PENDING)
                .time_to_live(PENDING_FOR)
                .build(),
            sessions: Sessions::new(
                Duration::from_secs(oidc.session_idle_seconds),
                Duration::from_secs(oidc.session_max_seconds),
            ),
        })
    }

    /// Where to send the browser to log in, coming back to `return_to`.
    pub async fn begin(&self, return_to: Option<&str>) -> Result<Url, LoginError> {
        let return_to = return_to.unwrap_or("/");
        if !same_origin_path(return_to) {
            return Err(LoginError::ReturnTo);
        }
        let endpoints = self
            .jwks
            .endpoints()
            .await
            .ok_or(LoginError::ProviderUnavailable)?;
        let (state, nonce, verifier) = (random_token(), random_token(), random_token());
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        let mut url = endpoints.authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", self.redirect_url.as_str())
            .append_pair("scope", "openid profile email")
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        self.pending
            .insert(
                state,
                Arc::new(Pending {
                    verifier,
                    nonce,
                    return_to: return_to.to_owned(),
                }),
            )
            .await;
        Ok(url)
    }

    /// Completes a login from the provider's answer: the new session's
    /// cookie value, the session, and where to send the browser.
    pub async fn finish(
        &self,
        callback: &Callback,
    ) -> Result<(String, Arc<Session>, String), LoginError> {
        // A state is good once, whatever comes with it.
        let pending = match &callback.state {
            Some(state) => self.pending.remove(state).await,
            None => None,
        };
        if let Some(error) = &callback.error {
            let description = callback.error_description.as_deref().unwrap_or("");
            return Err(LoginError::Refused(
                format!("{error} {description}").trim().to_owned(),
            ));
        }
        let pending = pending.ok_or(LoginError::UnknownState)?;
        let code = callback
            .code
            .as_deref()
            .ok_or_else(|| LoginError::Failed("the provider sent no code".into()))?;
        let id_token = self.exchange(code, &pending.verifier).await?;
        let person = self.validate(&id_token, &pending.nonce).await?;
        let (cookie, session) = self
            .sessions
            .start(person, SecretString::from(id_token))
            .await;
        Ok((cookie, session, pending.return_to.clone()))
    }

    /// The code for tokens at the token endpoint; the ID token.
    async fn exchange(&self, code: &str, verifier: &str) -> Result<String, LoginError> {
        let endpoints = self
            .jwks
            .endpoints()
            .await
            .ok_or(LoginError::ProviderUnavailable)?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_url.as_str()),
            ("code_verifier", verifier),
        ];
        let methods = &endpoints.token_endpoint_auth_methods_supported;
        // Basic unless the provider says it takes only the form (RFC 8414:
        // an absent list means client_secret_basic).
        let post_only = !methods.is_empty()
            && !methods.iter().any(|m| m == "client_secret_basic")
            && methods.iter().any(|m| m == "client_secret_post");
        let secret = self.client_secret.expose_secret();
        let mut request = self.jwks.http().post(endpoints.token_endpoint.clone());
        if post_only {
            form.push(("client_id", &self.client_id));
            form.push(("client_secret", secret));
        } else {
            // RFC 6749 §2.3.1: both form-encoded before Basic.
            let encode =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request = request.basic_auth(encode(&self.client_id), Some(encode(secret)));
        }
        let answer = request
            .form(&form)
            .send()
            .await
            .map_err(|_| LoginError::ProviderUnavailable)?;
        if !answer.status().is_success() {
            let status = answer.status();
            let body: serde_json::Value = answer.json().await.unwrap_or_default();
            let error = body
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("error");
            return Err(LoginError::Failed(format!(
                "the token endpoint answered {status} ({error})"
            )));
        }
        let tokens: TokenAnswer = answer
            .json()
            .await
            .map_err(|_| LoginError::Failed("the token endpoint sent no ID token".into()))?;
        Ok(tokens.id_token)
    }

    /// OpenID Connect Core 3.1.3.7: signature by the provider's key, `iss`,
    /// `aud` naming this client, `azp` when present (required with several
    /// audiences), `exp`, and the login's `nonce`.
    async fn validate(&self, id_token: &str, nonce: &str) -> Result<Person, LoginError> {
        let invalid = |why: &str| LoginError::Failed(format!("the ID token {why}"));
        let header = decode_header(id_token).map_err(|_| invalid("is not a JWT"))?;
        if !super::ALLOWED.contains(&header.alg) {
            return Err(invalid("is signed with an algorithm not allowed"));
        }
        let kid = header.kid.ok_or_else(|| invalid("names no key"))?;
        let key = self
            .jwks
            .key(&kid)
            .await
            .ok_or_else(|| invalid("is signed with a key the provider does not publish"))?;
        if !key.algorithms.contains(&header.alg) {
            return Err(invalid("is signed with an algorithm its key may not use"));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = 30;
        validation.set_audience(&[&self.client_id]);
        let issuer = self.issuer.as_str();
        validation.set_issuer(&[issuer, issuer.trim_end_matches('/')]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = decode::<IdClaims>(id_token, &key.decoding, &validation)
            .map_err(|e| LoginError::Failed(format!("the ID token is not valid: {e}")))?
            .claims;
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(invalid("does not carry this login's nonce"));
        }
        let several = matches!(&claims.aud, Audience::Many(v) if v.len() > 1);
        match claims.azp.as_deref() {
            Some(azp) if azp != self.client_id => {
                return Err(invalid("was issued to another client"));
            }
            None if several => return Err(invalid("names several audiences and no azp")),
            _ => {}
        }
        let mut scopes = BTreeSet::new();
        if let Some(serde_json::Value::Array(groups)) = claims.rest.get(&self.groups_claim) {
            for group in groups.iter().filter_map(serde_json::Value::as_str) {
                if let Some(granted) = self.groups.get(group) {
                    scopes.extend(granted.iter().copied());
                }
            }
        }
        Ok(Person {
            sub: claims.sub,
            name: claims.name,
            email: claims.email,
            scopes,
            sid: claims.sid,
        })
    }

    /// Ends the session; where the browser may go to end the provider's too
    /// (RP-initiated logout with `id_token_hint`), if the provider has one.
    pub async fn logout(&self, cookie: &str) -> Option<Url> {
        let session = self.sessions.end(cookie).await?;
        let endpoints = self.jwks.endpoints().await?;
        let mut url = endpoints.end_session_endpoint.clone()?;
        url.query_pairs_mut()
            .append_pair("id_token_hint", session.id_token.expose_secret())
            .append_pair("client_id", &self.client_id);
        Some(url)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn only_paths_on_this_site_are_returned_to() {
        for good in ["/", "/app", "/app/customers?id=7#top", "/a/b/../c"] {
            assert!(same_origin_path(good), "{good}");
        }
        for bad in [
            "",
            "app",
            "//evil.example",
            "/\\evil.example",
            "https://evil.example/",
            "/a\\b",
            "/a b",
            "/a\nb",
            "javascript:alert(1)",
        ] {
            assert!(!same_origin_path(bad), "{bad:?}");
        }
    }

    proptest! {
        /// Whatever a caller sends, accepted paths never leave this site.
        #[test]
        fn an_accepted_return_to_stays_on_this_site(path in any::<String>()) {
            if same_origin_path(&path) {
                let base = Url::parse("https://app.example/").unwrap();
                let joined = base.join(&path).unwrap();
                prop_assert_eq!(joined.host_str(), Some("app.example"));
                prop_assert_eq!(joined.scheme(), "https");
            }
        }
    }
}
