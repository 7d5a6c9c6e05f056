//! People logging in (RFC 10017's backend-for-frontend): `/auth/login`
//! sends the browser to the identity provider, `/auth/callback` starts a
//! session and sets its cookie, `/auth/session` says who is logged in,
//! `/auth/logout` ends it. Every answer is `no-store`; an API call without a
//! session gets a 401 problem, never a redirect.

use std::{collections::BTreeSet, sync::Arc};

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    configuration::Scope,
    error::{ApiError, Problem},
    identity::{
        Identity,
        login::{Callback, Login, LoginError, LogoutTokenError},
        session::{COOKIE, Found, Session},
    },
};

/// Who is logged in.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"sub": "alice", "name": "Alice Andersson", "email": "alice@example.com",
    "scopes": ["read"], "expires_at": "2026-12-03T20:00:00Z", "refresh_at": "2026-12-03T08:45:00Z"}))]
pub struct SessionInfo {
    /// The person's id at the identity provider.
    pub sub: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// The gateway scopes their groups grant.
    pub scopes: BTreeSet<&'static str>,
    /// When the session ends at the latest, used or not (RFC 3339).
    pub expires_at: String,
    /// When the gateway next renews it with the provider (RFC 3339), which
    /// also brings the person's groups up to date; `null` when the
    /// provider gave no refresh token (the session then lasts as it is).
    pub refresh_at: Option<String>,
}

/// What the identity provider posts to `/auth/backchannel-logout`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the form; the handler reads it from the body
pub struct LogoutTokenForm {
    /// The provider's logout token (a JWT, Back-Channel Logout 1.0 §2.4).
    pub logout_token: String,
}

/// Where to end the provider's session too.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedOut {
    /// The provider's end-session URL (with `id_token_hint`) for the page to
    /// visit, or `null` when the provider has none or there was no session.
    pub end_session_url: Option<String>,
}

fn login(identity: &Identity) -> Result<&Login, ApiError> {
    identity.login.as_ref().ok_or_else(|| {
        ApiError::NotFound("people do not log in here (no [identity.oidc] client)".into())
    })
}

fn query(req: &HttpRequest, name: &str) -> Option<String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn no_store(mut response: HttpResponse) -> HttpResponse {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

fn problem(error: LoginError) -> ApiError {
    match error {
        LoginError::ReturnTo => ApiError::bad_field("return_to", error.to_string()),
        LoginError::UnknownState => ApiError::bad_field("state", error.to_string()),
        LoginError::ProviderUnavailable => ApiError::NotReady(error.to_string()),
        LoginError::StateUnavailable => ApiError::StateUnavailable(error.to_string()),
        LoginError::Refused(_) | LoginError::Failed(_) => ApiError::SignedOut(login_failed(&error)),
    }
}

/// A login that did not finish: the reason is logged, the page told plainly.
fn login_failed(error: &LoginError) -> &'static str {
    tracing::info!(reason = %error, "a login did not finish");
    match error {
        LoginError::Refused(_) => "the identity provider refused the login; no session was started",
        _ => "the login could not be completed; no session was started; start again at /auth/login",
    }
}

fn cookie(value: &str, max_age: u64) -> header::HeaderValue {
    header::HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| header::HeaderValue::from_static(""))
}

fn rfc3339(unix: u64) -> Option<String> {
    chrono::DateTime::from_timestamp(i64::try_from(unix).ok()?, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn info(session: &Session) -> SessionInfo {
    SessionInfo {
        sub: session.person.sub.clone(),
        name: session.person.name.clone(),
        email: session.person.email.clone(),
        scopes: session
            .person
            .scopes
            .iter()
            .map(|s: &Scope| s.as_str())
            .collect(),
        expires_at: rfc3339(session.expires_at).unwrap_or_default(),
        refresh_at: session.tokens.refresh_at.and_then(rfc3339),
    }
}

crate::endpoint! {
    /// Log in
    ///
    /// Sends the browser to the identity provider (authorization code with
    /// PKCE); it comes back to `/auth/callback`, then to `return_to`.
    #[route(get "/auth/login", public)]
    #[openapi(tag = "auth", params(("return_to" = Option<String>, Query,
        description = "A path on this site to land on after logging in (default `/`).")),)]
    #[responses((status = 302, description = "To the identity provider's login."),
        (status = 400, description = "`return_to` is not a path on this site.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "People do not log in here.", body = Problem, content_type = "application/problem+json"))]
    pub(crate) async fn begin_login(
        req: HttpRequest,
        identity: web::Data<Identity>,
    ) -> Result<HttpResponse, ApiError> {
        let login = login(&identity)?;
        let to = login
            .begin(query(&req, "return_to").as_deref())
            .await
            .map_err(problem)?;
        Ok(no_store(
            HttpResponse::Found()
                .insert_header((header::LOCATION, to.as_str()))
                .finish(),
        ))
    }
}

crate::endpoint! {
    /// Login callback
    ///
    /// Where the identity provider sends the browser back: starts a session,
    /// sets its cookie and redirects to the login's `return_to`.
    #[route(get "/auth/callback", public)]
    #[openapi(tag = "auth", params(("code" = Option<String>, Query), ("state" = Option<String>, Query),
        ("error" = Option<String>, Query)),)]
    #[responses((status = 302, description = "Logged in: to `return_to`, with the session cookie."),
        (status = 400, description = "An unknown, used or expired `state`.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "The provider refused the login, or its answer did not check out.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "People do not log in here.", body = Problem, content_type = "application/problem+json"))]
    pub(crate) async fn finish_login(
        req: HttpRequest,
        identity: web::Data<Identity>,
    ) -> Result<HttpResponse, ApiError> {
        let login = login(&identity)?;
        let callback = Callback {
            state: query(&req, "state"),
            code: query(&req, "code"),
            error: query(&req, "error"),
            error_description: query(&req, "error_description"),
        };
        let (value, _, return_to) = login.finish(&callback).await.map_err(problem)?;
        Ok(no_store(
            HttpResponse::Found()
                .insert_header((header::LOCATION, return_to))
                .insert_header((header::SET_COOKIE, cookie(&value, login.sessions.max().as_secs())))
                .finish(),
        ))
    }
}

crate::endpoint! {
    /// Who is logged in
    ///
    /// The person of the session cookie, their scopes and when the session
    /// ends; a 401 problem without a live session.
    #[route(get "/auth/session", public, ok = (SessionInfo, "The person logged in."))]
    #[openapi(tag = "auth",)]
    #[responses((status = 401, description = "No live session.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "People do not log in here.", body = Problem, content_type = "application/problem+json"))]
    pub(crate) async fn get_session(
        req: HttpRequest,
        identity: web::Data<Identity>,
    ) -> Result<HttpResponse, ApiError> {
        let login = login(&identity)?;
        let session: Arc<Session> = match crate::auth::session_cookie(&req) {
            Some(value) => match login.sessions.find(value).await.map_err(|error| {
                ApiError::StateUnavailable(format!("people's sessions cannot be read: {error}"))
            })? {
                Some(Found::Live(session)) => session,
                Some(Found::Ended(why)) => return Err(ApiError::SignedOut(why)),
                None => return Err(ApiError::SignedOut("no live session; log in at /auth/login")),
            },
            None => return Err(ApiError::SignedOut("no live session; log in at /auth/login")),
        };
        Ok(no_store(HttpResponse::Ok().json(info(&session))))
    }
}

crate::endpoint! {
    /// Log out
    ///
    /// Ends the session and clears its cookie; answers the provider's
    /// end-session URL for the page to visit. Needs `X-CSRF: 1`.
    #[route(post "/auth/logout", public, ok = (LoggedOut, "Logged out."))]
    #[openapi(tag = "auth",)]
    #[responses((status = 403, description = "No `X-CSRF: 1` header.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "People do not log in here.", body = Problem, content_type = "application/problem+json"))]
    pub(crate) async fn logout(
        req: HttpRequest,
        identity: web::Data<Identity>,
    ) -> Result<HttpResponse, ApiError> {
        let login = login(&identity)?;
        if req.headers().get("x-csrf").is_none_or(|v| v.as_bytes() != b"1") {
            return Err(ApiError::CsrfHeaderMissing);
        }
        let end_session_url = match crate::auth::session_cookie(&req) {
            Some(value) => login.logout(value).await.map_err(problem)?.map(String::from),
            None => None,
        };
        Ok(no_store(
            HttpResponse::Ok()
                .insert_header((header::SET_COOKIE, cookie("", 0)))
                .json(LoggedOut { end_session_url }),
        ))
    }
}

crate::endpoint! {
    /// Back-channel logout
    ///
    /// For the identity provider (OpenID Connect Back-Channel Logout 1.0):
    /// a form with a `logout_token`, signed by the provider, naming the
    /// provider's session (`sid`) or person (`sub`) whose sessions here end.
    /// Their owners' next call is a 401 problem saying so.
    #[route(post "/auth/backchannel-logout", public)]
    #[openapi(tag = "auth", request_body(content = LogoutTokenForm,
        content_type = "application/x-www-form-urlencoded"),)]
    #[responses((status = 200, description = "The sessions it names have ended (or there were none)."),
        (status = 400, description = "No `logout_token`, or one that does not check out.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "People do not log in here.", body = Problem, content_type = "application/problem+json"))]
    pub(crate) async fn backchannel_logout(
        body: web::Bytes,
        identity: web::Data<Identity>,
    ) -> Result<HttpResponse, ApiError> {
        let login = login(&identity)?;
        let token = url::form_urlencoded::parse(&body)
            .find(|(key, _)| key == "logout_token")
            .map(|(_, value)| value.into_owned());
        let ended = match token {
            Some(token) => login.backchannel_logout(&token).await,
            None => Err(LogoutTokenError::Missing),
        };
        match ended {
            Ok(count) => {
                tracing::info!(sessions = count, "the identity provider ended sessions");
                Ok(no_store(HttpResponse::Ok().finish()))
            }
            Err(LogoutTokenError::ProviderUnavailable) => {
                Err(ApiError::NotReady(LogoutTokenError::ProviderUnavailable.to_string()))
            }
            Err(LogoutTokenError::StateUnavailable) => Err(ApiError::StateUnavailable(
                LogoutTokenError::StateUnavailable.to_string(),
            )),
            Err(error) => {
                tracing::info!(reason = %error, "a logout token was refused");
                Err(ApiError::bad_field("logout_token", error.to_string()))
            }
        }
    }
}
