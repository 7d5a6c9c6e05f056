//! The Nexogy DNA API: OAuth2 password grant with 20-minute bearer tokens
//! (Laravel Passport), and the residential client routes.
//!
//! The token lives here and nowhere else. One mutex guards it, so however
//! many requests need a token, one token request is in flight; it is
//! refreshed ahead of expiry with the refresh grant (rotating refresh tokens),
//! falling back to the password grant; a 401 on a call drops it, and the
//! call is re-authenticated and retried once.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;
use tokio::sync::Mutex;

use super::{
    Answer, Upstream, UpstreamError, breaker::Breakers, drift::Watch, exchange, http_client,
    operation::DnaOperation, policy::Policy,
};
use crate::configuration::{DnaSettings, UpstreamSettings};

const UPSTREAM: Upstream = Upstream::Dna;

/// Refresh this long before expiry (or a fifth of the lifetime, if shorter),
/// so a token never expires between being handed out and being used.
const REFRESH_AHEAD: Duration = Duration::from_secs(60);

/// A token is kept at most this long, whatever `expires_in` says.
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

struct Token {
    access: SecretString,
    refresh: Option<SecretString>,
    refresh_after: Instant,
    /// Tells a token apart from the one that replaced it.
    generation: u64,
}

#[derive(Default)]
struct TokenState {
    current: Option<Token>,
    generation: u64,
}

pub struct DnaClient {
    policy: Policy<DnaOperation>,
    http: reqwest::Client,
    base_url: String,
    settings: DnaSettings,
    timeout: Duration,
    token: Mutex<TokenState>,
    /// When the held token expires, readable without waiting for `token`.
    expires_at: std::sync::Mutex<Option<Instant>>,
    credentials_rejected: Arc<AtomicBool>,
    drift: Watch<DnaOperation>,
}

/// The token endpoint's answer: documented as a one-element array, sent by
/// Laravel Passport as a plain object. Both are accepted.
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenAnswer {
    Wrapped(Vec<TokenBody>),
    Plain(TokenBody),
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: SecretString,
    #[serde(default)]
    refresh_token: Option<SecretString>,
    #[serde(default)]
    expires_in: Option<f64>,
    #[serde(default)]
    token_type: Option<String>,
}

/// `POST /residential/client` as DNA wants it (booleans as 1/0).
pub struct NewClient<'a> {
    pub start_billing_date: &'a str,
    pub customer_id: &'a str,
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub address: &'a str,
    pub zipcode: &'a str,
    pub billing: Option<(&'a str, &'a str)>,
    pub subreseller_id: Option<&'a str>,
}

impl NewClient<'_> {
    fn form(&self) -> Vec<(&'static str, String)> {
        let flag = |b: bool| if b { "1" } else { "0" }.to_owned();
        let mut form = vec![
            ("start_billing_date", self.start_billing_date.to_owned()),
            ("customer_id", self.customer_id.to_owned()),
            ("email", self.email.to_owned()),
            ("first_name", self.first_name.to_owned()),
            ("last_name", self.last_name.to_owned()),
            ("address", self.address.to_owned()),
            ("zipcode", self.zipcode.to_owned()),
            ("same_billing_address", flag(self.billing.is_none())),
            ("has_subreseller_id", flag(self.subreseller_id.is_some())),
        ];
        if let Some((address, zipcode)) = self.billing {
            form.push(("billing_address", address.to_owned()));
            form.push(("billing_zipcode", zipcode.to_owned()));
        }
        if let Some(id) = self.subreseller_id {
            form.push(("subreseller_id", id.to_owned()));
        }
        form
    }
}

/// What DNA answers to a create.
#[derive(Debug, Deserialize)]
pub struct CreatedClient {
    #[serde(deserialize_with = "integer")]
    pub id: i64,
    pub ns_domain: String,
}

#[derive(Deserialize)]
struct CreateBody {
    client: CreatedClient,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CreateAnswer {
    Wrapped(Vec<CreateBody>),
    Plain(CreateBody),
}

#[derive(Deserialize)]
struct StatusAnswer {
    #[serde(deserialize_with = "integer")]
    timestamp: i64,
}

/// An integer DNA documents as a JSON number, also read from a numeric
/// string: a retyped field is drift to report, not a write to fail.
fn integer<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let raw = crate::normalize::Loose::deserialize(deserializer)?;
    raw.int("integer")
        .ok()
        .flatten()
        .ok_or_else(|| serde::de::Error::custom("expected an integer"))
}

/// DNA refused a request's data: Laravel's field errors, by upstream name.
#[derive(Debug)]
pub struct DnaValidation {
    pub message: String,
    pub errors: Vec<(String, String)>,
}

/// Failures of a DNA call: the upstream's, or its validation of our data.
#[derive(Debug)]
pub enum DnaError {
    Upstream(UpstreamError),
    Invalid(DnaValidation),
}

impl From<UpstreamError> for DnaError {
    fn from(e: UpstreamError) -> Self {
        Self::Upstream(e)
    }
}

/// Whether a request may be sent again after a failure: only when DNA
/// provably did not process it.
enum Attempt {
    Done(Answer),
    Unauthenticated,
}

impl DnaClient {
    pub fn new(settings: &DnaSettings, upstream: &UpstreamSettings) -> anyhow::Result<Self> {
        Ok(Self {
            policy: Policy::new(upstream),
            http: http_client(upstream)?,
            base_url: settings.base_url.as_str().trim_end_matches('/').to_owned(),
            settings: settings.clone(),
            timeout: Duration::from_millis(upstream.timeout_ms),
            token: Mutex::new(TokenState::default()),
            expires_at: std::sync::Mutex::new(None),
            credentials_rejected: Arc::new(AtomicBool::new(false)),
            drift: Watch::default(),
        })
    }

    /// The circuit breakers: the whole upstream's and each operation's.
    pub fn breakers(&self) -> &Breakers<DnaOperation> {
        self.policy.breakers()
    }

    /// The calls allowed in flight now (`max_concurrency`, or the adaptive limit under it).
    pub fn concurrency_limit(&self) -> usize {
        self.policy.concurrency_limit()
    }

    /// How long the held token stays valid (zero once expired); `None`
    /// before the first token.
    pub fn token_expires_in(&self) -> Option<Duration> {
        let expires_at = *self
            .expires_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        expires_at.map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// True while the token endpoint rejects the gateway's credentials.
    pub fn credentials_rejected(&self) -> bool {
        self.credentials_rejected.load(Ordering::Relaxed)
    }

    /// Makes sure a token can be had, for readiness checks.
    pub async fn check_credentials(&self) -> Result<(), UpstreamError> {
        self.token(None).await.map(|_| ())
    }

    /// `POST /residential/client`. Sent again only after a 401 (re-authenticated)
    /// or a refused connection, when DNA provably did not process it.
    pub async fn create_client(&self, client: &NewClient<'_>) -> Result<CreatedClient, DnaError> {
        let form = client.form();
        let body = success(
            self.call(
                DnaOperation::CreateClient,
                "/residential/client",
                Some(&form),
            )
            .await?,
        )?;
        match self.read::<CreateAnswer>(DnaOperation::CreateClient, &body)? {
            CreateAnswer::Plain(b) => Ok(b.client),
            CreateAnswer::Wrapped(v) => v
                .into_iter()
                .next()
                .map(|b| b.client)
                .ok_or_else(|| UpstreamError::malformed(UPSTREAM, "empty create answer").into()),
        }
    }

    /// `POST /residential/client/{id}/activate` or `/suspend`; the answer's
    /// Unix timestamp.
    pub async fn change_status(&self, id: i64, action: &str) -> Result<i64, DnaError> {
        let operation = DnaOperation::ChangeStatus;
        let answer = self
            .call(
                operation,
                &format!("/residential/client/{id}/{action}"),
                None,
            )
            .await?;
        let status: StatusAnswer = self.read(operation, &success(answer)?)?;
        Ok(status.timestamp)
    }

    /// A successful answer of `operation`, compared with its documented
    /// shape before it is read.
    fn read<T: DeserializeOwned>(
        &self,
        operation: DnaOperation,
        body: &[u8],
    ) -> Result<T, UpstreamError> {
        let answer: Value = parse(body)?;
        self.drift.check(operation, unwrapped(&answer));
        serde_json::from_value(answer)
            .map_err(|e| UpstreamError::malformed(UPSTREAM, format!("unexpected answer: {e}")))
    }

    /// One DNA call with a valid token: on a 401 the token is dropped, a new
    /// one fetched and the call sent once more; a refused connection is also
    /// retried once, since nothing was sent.
    async fn call(
        &self,
        operation: DnaOperation,
        path: &str,
        form: Option<&[(&'static str, String)]>,
    ) -> Result<Answer, UpstreamError> {
        let mut reauthenticated = false;
        let mut reconnected = false;
        let mut stale: Option<u64> = None;
        loop {
            let (access, generation) = self.token(stale).await?;
            // Writes: never retried by the policy; only the two cases below.
            let result = self
                .policy
                .run(operation, false, || self.attempt(path, form, &access))
                .await;
            match result {
                Ok(Attempt::Done(answer)) => return Ok(answer),
                Ok(Attempt::Unauthenticated) if !reauthenticated => {
                    tracing::info!("dna answered 401; re-authenticating once");
                    reauthenticated = true;
                    stale = Some(generation);
                }
                Ok(Attempt::Unauthenticated) => {
                    return Err(UpstreamError::CredentialsRejected {
                        upstream: UPSTREAM,
                        detail: "a fresh token was refused with 401".into(),
                    });
                }
                Err(UpstreamError::Unreachable { refused: true, .. }) if !reconnected => {
                    tracing::info!("dna refused the connection; trying once more");
                    reconnected = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn attempt(
        &self,
        path: &str,
        form: Option<&[(&'static str, String)]>,
        access: &SecretString,
    ) -> Result<Attempt, UpstreamError> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(access.expose_secret());
        if let Some(form) = form {
            request = request.form(form);
        }
        // A cut answer may have been processed: an error, never resent.
        match exchange(UPSTREAM, self.timeout, request).await? {
            Answer::Unauthenticated(_) => Ok(Attempt::Unauthenticated),
            answer => Ok(Attempt::Done(answer)),
        }
    }

    /// A valid access token: the current one, or a new one fetched under the
    /// lock. `stale` names a token generation a caller saw refused.
    async fn token(&self, stale: Option<u64>) -> Result<(SecretString, u64), UpstreamError> {
        let mut state = self.token.lock().await;
        if let Some(token) = &state.current {
            let refused = stale == Some(token.generation);
            if !refused && Instant::now() < token.refresh_after {
                return Ok((token.access.clone(), token.generation));
            }
        }
        let previous = state.current.take();
        let refreshed = match previous.as_ref().and_then(|t| t.refresh.as_ref()) {
            Some(refresh) => match self
                .grant(&[("grant_type", "refresh_token")], Some(refresh))
                .await
            {
                Ok(body) => Some(body),
                Err(e) => {
                    tracing::info!(error = %e, "dna refresh grant failed; using the password grant");
                    None
                }
            },
            None => None,
        };
        let body = match refreshed {
            Some(body) => body,
            None => self.grant(&[("grant_type", "password")], None).await?,
        };
        state.generation = state.generation.wrapping_add(1);
        // Whatever number DNA sends: a huge or infinite one is capped, a
        // negative one means "refresh before the next use".
        let lifetime = crate::checked::seconds(body.expires_in.unwrap_or(1200.0), MAX_LIFETIME);
        let ahead = REFRESH_AHEAD.min(lifetime.checked_div(5).unwrap_or_default());
        let token = Token {
            access: body.access_token,
            refresh: body.refresh_token,
            refresh_after: crate::checked::later(Instant::now(), lifetime.saturating_sub(ahead)),
            generation: state.generation,
        };
        let handed = (token.access.clone(), token.generation);
        state.current = Some(token);
        *self
            .expires_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(crate::checked::later(Instant::now(), lifetime));
        tracing::debug!(lifetime_s = lifetime.as_secs_f64(), "dna token obtained");
        Ok(handed)
    }

    /// One token request, counted by grant and outcome.
    async fn grant(
        &self,
        grant: &[(&str, &str)],
        refresh: Option<&SecretString>,
    ) -> Result<TokenBody, UpstreamError> {
        let result = self.request_grant(grant, refresh).await;
        metrics::counter!(
            "gateway_dna_token_requests_total",
            "grant" => if refresh.is_some() { "refresh" } else { "password" },
            "outcome" => if result.is_ok() { "ok" } else { "error" },
        )
        .increment(1);
        result
    }

    /// One token request. Credentials rejected here are an operator problem:
    /// logged as an error and shown by `/readyz` until a grant succeeds.
    async fn request_grant(
        &self,
        grant: &[(&str, &str)],
        refresh: Option<&SecretString>,
    ) -> Result<TokenBody, UpstreamError> {
        let s = &self.settings;
        let mut form: Vec<(&str, &str)> = grant.to_vec();
        form.push(("client_id", &s.client_id));
        form.push(("client_secret", s.client_secret.expose_secret()));
        match refresh {
            Some(token) => form.push(("refresh_token", token.expose_secret())),
            None => {
                form.push(("username", &s.username));
                form.push(("password", s.password.expose_secret()));
                form.push(("scope", &s.scope));
            }
        }
        let url = format!("{}/oauth/token", self.base_url);
        let answer = self
            .policy
            .run(DnaOperation::Token, false, || async {
                // 429 is "slow down" (a fault the breaker counts), never "bad credentials".
                exchange(UPSTREAM, self.timeout, self.http.post(&url).form(&form)).await
            })
            .await?;
        let detail = match answer {
            Answer::Success(body) => {
                let token = match self.read::<TokenAnswer>(DnaOperation::Token, &body)? {
                    TokenAnswer::Plain(t) => t,
                    TokenAnswer::Wrapped(v) => v
                        .into_iter()
                        .next()
                        .ok_or_else(|| UpstreamError::malformed(UPSTREAM, "empty token answer"))?,
                };
                if token
                    .token_type
                    .as_deref()
                    .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
                {
                    return Err(UpstreamError::malformed(
                        UPSTREAM,
                        "token type is not Bearer",
                    ));
                }
                self.credentials_rejected.store(false, Ordering::Relaxed);
                return Ok(token);
            }
            Answer::Invalid { message, .. }
            | Answer::Unauthenticated(message)
            | Answer::Forbidden(message)
            | Answer::NotFound(message)
            | Answer::Refused { message, .. } => message,
        };
        // A refused refresh token is routine (rotation, revocation); the
        // password grant that follows decides whether credentials are bad.
        if refresh.is_none() {
            self.credentials_rejected.store(true, Ordering::Relaxed);
        }
        Err(UpstreamError::CredentialsRejected {
            upstream: UPSTREAM,
            detail: format!("token endpoint refused the grant: {detail}"),
        })
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, UpstreamError> {
    serde_json::from_slice(body)
        .map_err(|e| UpstreamError::malformed(UPSTREAM, format!("unexpected answer: {e}")))
}

/// The answer itself, documented or not inside a one-element array.
fn unwrapped(answer: &Value) -> &Value {
    match answer.as_array().map(Vec::as_slice) {
        Some([only]) => only,
        _ => answer,
    }
}

/// The body of a successful DNA answer, or what its failure means.
fn success(answer: Answer) -> Result<Vec<u8>, DnaError> {
    match answer {
        Answer::Success(body) => Ok(body),
        Answer::NotFound(_) => Err(DnaError::Upstream(UpstreamError::NotFound {
            upstream: UPSTREAM,
            detail: "dna has no such customer".into(),
        })),
        Answer::Invalid { message, fields } => Err(DnaError::Invalid(DnaValidation {
            message,
            errors: fields,
        })),
        Answer::Forbidden(_) => Err(DnaError::Upstream(UpstreamError::CredentialsRejected {
            upstream: UPSTREAM,
            detail: "HTTP 403: the API user may not do this".into(),
        })),
        // A fresh token refused twice: handled by `call`, never seen here.
        Answer::Unauthenticated(detail) => {
            Err(DnaError::Upstream(UpstreamError::CredentialsRejected {
                upstream: UPSTREAM,
                detail,
            }))
        }
        Answer::Refused { status, message } => Err(DnaError::Upstream(UpstreamError::Rejected {
            upstream: UPSTREAM,
            message: format!("HTTP {status}: {message}"),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::classify;

    #[test]
    fn token_answers_are_accepted_wrapped_or_plain() {
        let wrapped =
            r#"[{"token_type":"Bearer","expires_in":1200,"access_token":"a","refresh_token":"r"}]"#;
        let plain =
            r#"{"token_type":"Bearer","expires_in":1200,"access_token":"a","refresh_token":"r"}"#;
        for body in [wrapped, plain] {
            let token = match serde_json::from_str::<TokenAnswer>(body).unwrap() {
                TokenAnswer::Plain(t) => t,
                TokenAnswer::Wrapped(mut v) => v.remove(0),
            };
            assert_eq!(token.access_token.expose_secret(), "a");
            assert_eq!(token.expires_in, Some(1200.0));
        }
    }

    #[test]
    fn create_answers_are_accepted_wrapped_or_plain() {
        for body in [
            r#"[{"result":"OK","client":{"id":6519,"ns_domain":"ironmaiden.com"}}]"#,
            r#"{"result":"OK","client":{"id":6519,"ns_domain":"ironmaiden.com"}}"#,
        ] {
            let client = match serde_json::from_str::<CreateAnswer>(body).unwrap() {
                CreateAnswer::Plain(b) => b.client,
                CreateAnswer::Wrapped(mut v) => v.remove(0).client,
            };
            assert_eq!(
                (client.id, client.ns_domain.as_str()),
                (6519, "ironmaiden.com")
            );
        }
    }

    #[test]
    fn booleans_go_upstream_as_1_and_0_and_flags_are_derived() {
        let same = NewClient {
            start_billing_date: "2026-12-01",
            customer_id: "C1",
            email: "a@b.se",
            first_name: "A",
            last_name: "B",
            address: "X 1",
            zipcode: "123",
            billing: None,
            subreseller_id: None,
        };
        let form = same.form();
        assert!(form.contains(&("same_billing_address", "1".into())));
        assert!(form.contains(&("has_subreseller_id", "0".into())));
        assert!(
            !form
                .iter()
                .any(|(k, _)| *k == "billing_address" || *k == "subreseller_id")
        );
        let other = NewClient {
            billing: Some(("Y 2", "456")),
            subreseller_id: Some("77"),
            ..same
        };
        let form = other.form();
        assert!(form.contains(&("same_billing_address", "0".into())));
        assert!(form.contains(&("billing_zipcode", "456".into())));
        assert!(form.contains(&("has_subreseller_id", "1".into())));
        assert!(form.contains(&("subreseller_id", "77".into())));
    }

    #[test]
    fn documented_integers_are_read_from_numeric_strings_too() {
        let answer: StatusAnswer = serde_json::from_str(r#"{"timestamp":"1494597810"}"#).unwrap();
        assert_eq!(answer.timestamp, 1494597810);
        let answer: StatusAnswer = serde_json::from_str(r#"{"timestamp":1494597810}"#).unwrap();
        assert_eq!(answer.timestamp, 1494597810);
        for bad in [
            r#"{"timestamp":"soon"}"#,
            r#"{"timestamp":null}"#,
            r#"{"timestamp":[1]}"#,
        ] {
            assert!(serde_json::from_str::<StatusAnswer>(bad).is_err(), "{bad}");
        }
        let created: CreateBody =
            serde_json::from_str(r#"{"client":{"id":"6519","ns_domain":"x.example"}}"#).unwrap();
        assert_eq!(created.client.id, 6519);
    }

    #[test]
    fn laravel_validation_errors_are_read_field_by_field() {
        let body = br#"{"message":"The given data was invalid.","errors":{"customer_id":["The customer id has already been taken."]}}"#;
        let answer = classify(
            UPSTREAM,
            422,
            &reqwest::header::HeaderMap::new(),
            body.to_vec(),
        )
        .unwrap();
        match success(answer) {
            Err(DnaError::Invalid(v)) => {
                assert_eq!(
                    v.errors,
                    vec![(
                        "customer_id".into(),
                        "The customer id has already been taken.".into()
                    )]
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
