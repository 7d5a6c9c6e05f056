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
    session::{Ended, Found, Person, Session, Sessions, Tokens, now_unix, random_token},
    shared_sessions::SharedSessions,
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
    #[error("the session could not be stored where every instance finds it; try again shortly")]
    StateUnavailable,
}

#[derive(serde::Serialize, Deserialize)]
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
    /// What the login asks for (`scope`), space-separated.
    scopes: String,
    pending: moka::future::Cache<String, Arc<Pending>>,
    /// Logout tokens' `jti`s already taken (a replay is refused).
    seen_logouts: moka::future::Cache<String, ()>,
    pub sessions: Sessions,
    /// With `[redis]`: logins under way and logout tokens seen, for every
    /// instance (the callback may reach another one than the login).
    shared: Option<Arc<SharedSessions>>,
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
    /// Only for UserInfo, when the ID token leaves the person's claims there.
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<u64>,
}

/// Why a JWT from the provider was not taken.
enum Unsigned {
    /// Its key is unknown and the provider cannot be asked.
    Unavailable,
    Invalid(String),
}

/// Which of the person's claims the ID token carried.
#[derive(Clone, Copy)]
struct Claimed {
    groups: bool,
    profile: bool,
}

/// Why the token endpoint gave nothing.
enum TokenError {
    /// It could not be reached or failed itself: try again later.
    Unavailable,
    /// It answered with an OAuth error (`invalid_grant`, ...).
    Refused(String),
}

/// The `events` member a logout token carries (Back-Channel Logout 1.0 §2.4).
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Why a logout token was not taken: the 400 problem's detail.
#[derive(Debug, thiserror::Error)]
pub enum LogoutTokenError {
    #[error("the request has no logout_token")]
    Missing,
    #[error("the identity provider's keys cannot be fetched; try again shortly")]
    ProviderUnavailable,
    #[error("the logout_token {0}")]
    Invalid(String),
    #[error("the sessions could not be ended where every instance finds them; try again shortly")]
    StateUnavailable,
}

#[derive(Deserialize)]
struct LogoutClaims {
    sub: Option<String>,
    sid: Option<String>,
    iat: Option<u64>,
    jti: Option<String>,
    events: Option<serde_json::Map<String, serde_json::Value>>,
    nonce: Option<serde::de::IgnoredAny>,
}

/// How long to wait before trying a renewal again when the provider could
/// not be reached: the session keeps working meanwhile.
const RETRY_RENEWAL: u64 = 30;

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
        redis: Option<&Arc<crate::shared::SharedRedis>>,
    ) -> Option<Self> {
        let (client_id, client_secret, redirect_url) = oidc.login()?;
        let idle = Duration::from_secs(oidc.session_idle_seconds);
        let max = Duration::from_secs(oidc.session_max_seconds);
        let shared = redis.map(|redis| Arc::new(SharedSessions::new(Arc::clone(redis), idle, max)));
        Some(Self {
            jwks,
            issuer: oidc.issuer.clone(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.clone(),
            redirect_url: redirect_url.clone(),
            groups_claim: oidc.groups_claim.clone(),
            groups: groups.clone(),
            scopes: oidc.scopes.join(" "),
            pending: moka::future::Cache::builder()
                .max_capacity(MAX_PENDING)
                .time_to_live(PENDING_FOR)
                .build(),
            seen_logouts: moka::future::Cache::builder()
                .max_capacity(MAX_PENDING)
                .time_to_live(PENDING_FOR)
                .build(),
            sessions: Sessions::new(idle, max, shared.clone()),
            shared,
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
            .append_pair("scope", &self.scopes)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let pending = Pending {
            verifier,
            nonce,
            return_to: return_to.to_owned(),
        };
        match &self.shared {
            Some(shared) => shared
                .put_pending(
                    &state,
                    serde_json::to_string(&pending).unwrap_or_default(),
                    PENDING_FOR,
                )
                .await
                .map_err(|_| LoginError::StateUnavailable)?,
            None => self.pending.insert(state, Arc::new(pending)).await,
        }
        Ok(url)
    }

    /// Completes a login from the provider's answer: the new session's
    /// cookie value, the session, and where to send the browser.
    pub async fn finish(
        &self,
        callback: &Callback,
    ) -> Result<(String, Arc<Session>, String), LoginError> {
        // A state is good once, whatever comes with it.
        let pending = match (&callback.state, &self.shared) {
            (Some(state), Some(shared)) => shared
                .take_pending(state)
                .await
                .map_err(|_| LoginError::StateUnavailable)?
                .and_then(|json| serde_json::from_str::<Pending>(&json).ok())
                .map(Arc::new),
            (Some(state), None) => self.pending.remove(state).await,
            (None, _) => None,
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
        let answer = self
            .token_request(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", self.redirect_url.as_str()),
                ("code_verifier", &pending.verifier),
            ])
            .await
            .map_err(|error| match error {
                TokenError::Unavailable => LoginError::ProviderUnavailable,
                TokenError::Refused(why) => {
                    LoginError::Failed(format!("the token endpoint refused the code ({why})"))
                }
            })?;
        let id_token = answer
            .id_token
            .clone()
            .ok_or_else(|| LoginError::Failed("the token endpoint sent no ID token".into()))?;
        let (mut person, claimed) = self.validate(&id_token, Some(&pending.nonce)).await?;
        self.complete(&mut person, claimed, answer.access_token.as_deref())
            .await
            .map_err(LoginError::Failed)?;
        let tokens = tokens(id_token, &answer, None);
        let (cookie, session) = self
            .sessions
            .start(person, tokens)
            .await
            .map_err(|_| LoginError::StateUnavailable)?;
        Ok((cookie, session, pending.return_to.clone()))
    }

    /// Renews a session due for it (its caller took the renewal): the
    /// provider's answer brings a new ID token, whose groups give the
    /// person's scopes from now on. A refusal ends the session, and the
    /// person's next call is told why; a provider that cannot be reached
    /// is tried again later, the session working meanwhile.
    pub async fn renew(&self, session: Arc<Session>) {
        // With [redis], one instance renews for the cluster: whoever holds
        // the lease, then only if the session is still due (another
        // instance may have renewed it since this one read it).
        let lease = match self.sessions.take_renewal(session.key).await {
            Ok(Some(lease)) => lease,
            Ok(None) | Err(_) => return,
        };
        let session = if lease.is_some() {
            match self.sessions.find_key(session.key).await {
                Ok(Some(Found::Live(now)))
                    if now.tokens.refresh_at.is_some_and(|at| at <= now_unix()) =>
                {
                    now
                }
                _ => {
                    self.sessions.release_renewal(session.key, lease).await;
                    return;
                }
            }
        } else {
            session
        };
        self.renew_held(&session).await;
        self.sessions.release_renewal(session.key, lease).await;
    }

    async fn renew_held(&self, session: &Arc<Session>) {
        let Some(refresh_token) = &session.tokens.refresh_token else {
            return;
        };
        let answer = self
            .token_request(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose_secret()),
            ])
            .await;
        let outcome = match answer {
            Ok(answer) => self.renewed(session, &answer).await,
            Err(TokenError::Refused(why)) => Err(why),
            Err(TokenError::Unavailable) => {
                tracing::warn!(sub = %session.person.sub, "the identity provider could not renew a session; trying again later");
                let mut tokens = session.tokens.clone();
                tokens.refresh_at = Some(now_unix().saturating_add(RETRY_RENEWAL));
                let person = session.person.clone();
                self.sessions.replace(session.renewed(person, tokens)).await;
                metrics::counter!("gateway_session_renewals_total", "outcome" => "unavailable")
                    .increment(1);
                return;
            }
        };
        match outcome {
            Ok((person, tokens)) => {
                metrics::counter!("gateway_session_renewals_total", "outcome" => "renewed")
                    .increment(1);
                self.sessions.replace(session.renewed(person, tokens)).await;
            }
            Err(why) => {
                tracing::info!(sub = %session.person.sub, reason = %why, "a session's renewal was refused; it ends");
                metrics::counter!("gateway_session_renewals_total", "outcome" => "refused")
                    .increment(1);
                if let Err(error) = self
                    .sessions
                    .end_because(session.key, Ended::RenewalRefused)
                    .await
                {
                    tracing::warn!(error = %error, "a session whose renewal was refused could not be ended on Redis; it is tried again at its next use");
                }
            }
        }
    }

    /// The person and tokens a renewal's answer makes (OpenID Connect Core
    /// 12.2: a new ID token is checked as at login, for the same `sub`).
    async fn renewed(
        &self,
        session: &Session,
        answer: &TokenAnswer,
    ) -> Result<(Person, Tokens), String> {
        let Some(id_token) = &answer.id_token else {
            let tokens = tokens(
                session.tokens.id_token.expose_secret().to_owned(),
                answer,
                session.tokens.refresh_token.as_ref(),
            );
            return Ok((session.person.clone(), tokens));
        };
        let (mut person, claimed) = self
            .validate(id_token, None)
            .await
            .map_err(|e| e.to_string())?;
        if person.sub != session.person.sub {
            return Err("the renewed ID token names another person".into());
        }
        if let Err(why) = self
            .complete(&mut person, claimed, answer.access_token.as_deref())
            .await
        {
            // UserInfo down is no reason to end a session: what it said last holds.
            tracing::warn!(reason = %why, "a renewal could not read UserInfo; the person's scopes stay as they were");
            person.scopes.clone_from(&session.person.scopes);
            if person.name.is_none() {
                person.name.clone_from(&session.person.name);
            }
            if person.email.is_none() {
                person.email.clone_from(&session.person.email);
            }
        }
        if person.sid.is_none() {
            person.sid.clone_from(&session.person.sid);
        }
        let tokens = tokens(
            id_token.clone(),
            answer,
            session.tokens.refresh_token.as_ref(),
        );
        Ok((person, tokens))
    }

    /// A request to the token endpoint as this confidential client.
    async fn token_request(&self, form: &[(&str, &str)]) -> Result<TokenAnswer, TokenError> {
        let endpoints = self.jwks.endpoints().await.ok_or(TokenError::Unavailable)?;
        let mut form = form.to_vec();
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
            .map_err(|_| TokenError::Unavailable)?;
        let status = answer.status();
        if status.is_server_error() {
            return Err(TokenError::Unavailable);
        }
        if !status.is_success() {
            let body: serde_json::Value = answer.json().await.unwrap_or_default();
            let error = body
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("error");
            return Err(TokenError::Refused(format!("{status}, {error}")));
        }
        answer
            .json()
            .await
            .map_err(|_| TokenError::Refused("an answer that is not a token response".into()))
    }

    /// OpenID Connect Core 3.1.3.7: signature by the provider's key, `iss`,
    /// `aud` naming this client, `azp` when present (required with several
    /// audiences), `exp`, and the login's `nonce`.
    async fn validate(
        &self,
        id_token: &str,
        nonce: Option<&str>,
    ) -> Result<(Person, Claimed), LoginError> {
        let invalid = |why: &str| LoginError::Failed(format!("the ID token {why}"));
        let claims: IdClaims = self
            .signed_claims(id_token, &["exp", "iss", "aud", "sub"])
            .await
            .map_err(|e| match e {
                Unsigned::Unavailable => {
                    invalid("is signed with a key the provider does not publish")
                }
                Unsigned::Invalid(why) => invalid(&why),
            })?;
        if nonce.is_some() && claims.nonce.as_deref() != nonce {
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
        let groups = claims.rest.get(&self.groups_claim);
        let claimed = Claimed {
            groups: groups.is_some(),
            profile: claims.name.is_some() || claims.email.is_some(),
        };
        Ok((
            Person {
                scopes: self.scopes_of(groups),
                sub: claims.sub,
                name: claims.name,
                email: claims.email,
                sid: claims.sid,
            },
            claimed,
        ))
    }

    /// The claims of a JWT the provider signed for this client: an allowed
    /// algorithm the key it names may use, that key from the provider's
    /// JWKS, the signature, `iss` the provider, `aud` this client, `exp`
    /// (when present, or required) with a leeway, and `required` present.
    async fn signed_claims<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        required: &[&str],
    ) -> Result<T, Unsigned> {
        let invalid = |why: &str| Unsigned::Invalid(why.to_owned());
        let header = decode_header(token).map_err(|_| invalid("is not a JWT"))?;
        if !super::ALLOWED.contains(&header.alg) {
            return Err(invalid("is signed with an algorithm not allowed"));
        }
        let kid = header.kid.ok_or_else(|| invalid("names no key"))?;
        let Some(key) = self.jwks.key(&kid).await else {
            return Err(if self.jwks.endpoints().await.is_some() {
                invalid("is signed with a key the provider does not publish")
            } else {
                Unsigned::Unavailable
            });
        };
        if !key.algorithms.contains(&header.alg) {
            return Err(invalid("is signed with an algorithm its key may not use"));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = 30;
        validation.set_audience(&[&self.client_id]);
        let issuer = self.issuer.as_str();
        validation.set_issuer(&[issuer, issuer.trim_end_matches('/')]);
        validation.set_required_spec_claims(required);
        validation.validate_exp = true;
        decode::<T>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| Unsigned::Invalid(format!("is not valid: {e}")))
    }

    /// The gateway scopes a groups claim's value grants.
    fn scopes_of(&self, groups: Option<&serde_json::Value>) -> BTreeSet<Scope> {
        let mut scopes = BTreeSet::new();
        if let Some(serde_json::Value::Array(groups)) = groups {
            for group in groups.iter().filter_map(serde_json::Value::as_str) {
                if let Some(granted) = self.groups.get(group) {
                    scopes.extend(granted.iter().copied());
                }
            }
        }
        scopes
    }

    /// Fills in from UserInfo (OpenID Connect Core 5.3) what the ID token
    /// left out (a provider that keeps claims out of ID tokens): the groups,
    /// the name and email. Its `sub` must be the ID token's.
    async fn complete(
        &self,
        person: &mut Person,
        claimed: Claimed,
        access_token: Option<&str>,
    ) -> Result<(), String> {
        if claimed.groups && claimed.profile {
            return Ok(());
        }
        let Some(endpoint) = self
            .jwks
            .endpoints()
            .await
            .and_then(|e| e.userinfo_endpoint.clone())
        else {
            return Ok(());
        };
        let Some(access_token) = access_token else {
            return Ok(());
        };
        let answer = self
            .jwks
            .http()
            .get(endpoint)
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|_| "UserInfo cannot be reached".to_owned())?;
        if !answer.status().is_success() {
            return Err(format!("UserInfo answered {}", answer.status()));
        }
        let info: serde_json::Map<String, serde_json::Value> = answer
            .json()
            .await
            .map_err(|_| "UserInfo's answer is not a JSON object".to_owned())?;
        if info.get("sub").and_then(serde_json::Value::as_str) != Some(person.sub.as_str()) {
            return Err("UserInfo names another person".into());
        }
        if !claimed.groups {
            person.scopes = self.scopes_of(info.get(&self.groups_claim));
        }
        let text = |name: &str| info.get(name).and_then(|v| v.as_str()).map(String::from);
        if person.name.is_none() {
            person.name = text("name");
        }
        if person.email.is_none() {
            person.email = text("email");
        }
        Ok(())
    }

    /// Ends the session; where the browser may go to end the provider's too
    /// (RP-initiated logout with `id_token_hint`), if the provider has one.
    pub async fn logout(&self, cookie: &str) -> Result<Option<Url>, LoginError> {
        let session = self
            .sessions
            .end(cookie)
            .await
            .map_err(|_| LoginError::StateUnavailable)?;
        let Some(session) = session else {
            return Ok(None);
        };
        let Some(endpoints) = self.jwks.endpoints().await else {
            return Ok(None);
        };
        let Some(mut url) = endpoints.end_session_endpoint.clone() else {
            return Ok(None);
        };
        url.query_pairs_mut()
            .append_pair("id_token_hint", session.tokens.id_token.expose_secret())
            .append_pair("client_id", &self.client_id);
        Ok(Some(url))
    }
}

impl Login {
    /// OpenID Connect Back-Channel Logout 1.0 §2.6: takes a logout token
    /// from the provider and ends the sessions it names (by `sid`, else by
    /// `sub`); how many. The token is checked like an ID token (signature by
    /// the provider's key, algorithm, `iss`, `aud` naming this client, `exp`
    /// when present) and must carry `iat`, `jti` (used once), the
    /// back-channel `events` member, `sid` and/or `sub`, and no `nonce`.
    pub async fn backchannel_logout(&self, token: &str) -> Result<usize, LogoutTokenError> {
        let invalid = |why: &str| LogoutTokenError::Invalid(why.to_owned());
        let claims: LogoutClaims =
            self.signed_claims(token, &["iss", "aud"])
                .await
                .map_err(|e| match e {
                    Unsigned::Unavailable => LogoutTokenError::ProviderUnavailable,
                    Unsigned::Invalid(why) => invalid(&why),
                })?;
        let Some(iat) = claims.iat else {
            return Err(invalid("has no iat"));
        };
        // Its jti is remembered as long as a token may be this old.
        if iat.saturating_add(PENDING_FOR.as_secs()) < now_unix() {
            return Err(invalid("is too old (iat more than ten minutes ago)"));
        }
        if claims.nonce.is_some() {
            return Err(invalid("carries a nonce (it may be an ID token)"));
        }
        let is_logout = claims
            .events
            .as_ref()
            .and_then(|events| events.get(BACKCHANNEL_EVENT))
            .is_some_and(serde_json::Value::is_object);
        if !is_logout {
            return Err(invalid("has no back-channel logout event"));
        }
        if claims.sid.is_none() && claims.sub.is_none() {
            return Err(invalid("names neither sid nor sub"));
        }
        let jti = claims.jti.ok_or_else(|| invalid("has no jti"))?;
        // Taken once: a replay within the tokens' life is refused.
        let first = match &self.shared {
            Some(shared) => shared
                .first_use(&jti, PENDING_FOR)
                .await
                .map_err(|_| LogoutTokenError::StateUnavailable)?,
            None => {
                let first = !self.seen_logouts.contains_key(&jti);
                self.seen_logouts.insert(jti, ()).await;
                first
            }
        };
        if !first {
            return Err(invalid("was already used"));
        }
        let ended = self
            .sessions
            .end_for(
                claims.sid.as_deref(),
                claims.sub.as_deref(),
                Ended::ProviderLogout,
            )
            .await
            .map_err(|_| LogoutTokenError::StateUnavailable)?;
        Ok(ended)
    }
}

/// The tokens a token endpoint's answer gives, keeping the refresh token
/// held when it sends no new one.
fn tokens(id_token: String, answer: &TokenAnswer, held: Option<&SecretString>) -> Tokens {
    let refresh_token = answer
        .refresh_token
        .clone()
        .map(SecretString::from)
        .or_else(|| held.cloned());
    // Three quarters into the access token's life (at least a second).
    let life = answer.expires_in.unwrap_or(300);
    let refresh_at = refresh_token
        .is_some()
        .then(|| now_unix().saturating_add((life.saturating_mul(3) / 4).max(1)));
    Tokens {
        id_token: SecretString::from(id_token),
        refresh_token,
        refresh_at,
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
