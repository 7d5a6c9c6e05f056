//! Admission: who is calling, and whether the route lets them. A caller
//! presents `Authorization: Bearer <credential>`: an API key, checked
//! against configured SHA-256 hashes in constant time, with the key's
//! scopes; or, with `[identity.jwt]`, the identity provider's JWT access
//! token for a service (`identity`), with the scopes its groups and
//! `scope` map to. A credential shaped like a JWT is only ever validated as
//! one, never looked up as a key.

mod keys;

use std::{collections::BTreeSet, sync::Arc};

use actix_web::{
    FromRequest, HttpMessage, HttpRequest, ResponseError,
    body::{BoxBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{Method, header},
    middleware::Next,
    web,
};
use sha2::{Digest, Sha256};

use crate::{error::ApiError, identity::session::Found, route_table::RouteSpec};

pub use crate::configuration::Scope;
use keys::KeyEntry;
pub use keys::{ApiKeys, Budget, Refused};

pub fn sha256_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Who is calling, as admission found them: an API key, known by its
/// configured name, or a service the identity provider vouched for, known
/// as `service:<client id>` (a prefix no key name may take). Admission puts
/// it on the request; a handler that needs it takes it as an extractor,
/// which only reads what admission left. Its name is what the access line,
/// Idempotency-Keys and event subscriptions are kept under.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: Arc<str>,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// The key's entry as it was when the request came: its scopes and
    /// budget, unchanged by a reload while the request runs.
    Key(Arc<KeyEntry>),
    Service(Arc<BTreeSet<Scope>>),
    /// A person, by their session cookie.
    Person(Arc<crate::identity::session::Session>),
}

pub use crate::configuration::{PERSON_PREFIX, SERVICE_PREFIX};

/// The kinds of caller, as metrics label them.
const KEY: &str = "key";
const SERVICE: &str = "service";
const PERSON: &str = "person";

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        match &self.kind {
            Kind::Key(key) => key.scopes.contains(&scope),
            Kind::Service(scopes) => scopes.contains(&scope),
            Kind::Person(session) => session.person.scopes.contains(&scope),
        }
    }

    /// The kind of caller: `key` or `service` (a metrics label).
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Key(_) => KEY,
            Kind::Service(_) => SERVICE,
            Kind::Person(_) => PERSON,
        }
    }

    fn person(session: Arc<crate::identity::session::Session>) -> Self {
        Self {
            name: format!("{PERSON_PREFIX}{}", session.person.sub).into(),
            kind: Kind::Person(session),
        }
    }

    fn service(service: crate::identity::Service) -> Self {
        Self {
            name: format!("{SERVICE_PREFIX}{}", service.client_id).into(),
            kind: Kind::Service(Arc::new(service.scopes)),
        }
    }

    fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(scope))
        }
    }
}

/// What admission found out about a request, for its metrics and access
/// line: the route (resolved once, by the router) and the caller's name
/// (even when refused). The request middleware puts one on the request
/// before serving and reads it after, also when the request panicked.
#[derive(Debug, Default)]
pub struct Seen {
    route: std::cell::Cell<Option<&'static RouteSpec>>,
    caller: std::cell::RefCell<Option<Arc<str>>>,
}

impl Seen {
    pub fn route(&self) -> Option<&'static RouteSpec> {
        self.route.get()
    }

    pub fn caller(&self) -> Option<Arc<str>> {
        self.caller.borrow().clone()
    }
}

/// The [`Seen`] of a request, shared between the request middleware and admission.
#[derive(Debug, Clone, Default)]
pub struct SeenSlot(pub std::rc::Rc<Seen>);

/// Admission, the middleware every declared route is wrapped in
/// (`routes::endpoint`): a public route passes; a keyed one needs a valid
/// key (401), within its rate (429), with every scope the route declares
/// (403), before anything of the handler runs, extractors included. What it
/// admits, the [`Principal`] and the route (in [`Seen`]), rides on the
/// request; the key's `RateLimit` fields go on whatever the answer is.
pub async fn admit<B: MessageBody + 'static>(
    spec: &'static RouteSpec,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if let Some(seen) = req.extensions().get::<SeenSlot>() {
        seen.0.route.set(Some(spec));
    }
    if !spec.keyed() {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let keys = req.app_data::<web::Data<ApiKeys>>().cloned();
    let (budget, admitted) = match &keys {
        Some(keys) => {
            let (budget, admitted) = admit_key(keys, spec, req.request()).await;
            if let Ok(principal) = &admitted {
                keys.count_admission(principal);
            }
            (budget, admitted)
        }
        None => (
            None,
            Err(ApiError::internal("API keys are not configured in the app")),
        ),
    };
    let mut response = match admitted {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.call(req).await?.map_into_boxed_body()
        }
        Err(error) => req.into_response(error.error_response()),
    };
    if let Some(budget) = budget {
        budget.write(response.headers_mut());
    }
    Ok(response)
}

/// The principal a request's credential makes, and the budget to show:
/// 401, 429 or 403 when it makes none.
async fn admit_key(
    keys: &ApiKeys,
    spec: &RouteSpec,
    req: &HttpRequest,
) -> (Option<Budget>, Result<Principal, ApiError>) {
    let principal = match authenticate(req, keys).await {
        Ok(principal) => principal,
        Err(error) => return (None, Err(error)),
    };
    // Named in the access line even when refused below.
    if let Some(seen) = req.extensions().get::<SeenSlot>() {
        *seen.0.caller.borrow_mut() = Some(Arc::clone(&principal.name));
    }
    let budget = match keys.admit(&principal).await {
        Ok(budget) => budget,
        Err(refused) => return (Some(refused.budget), Err(refused.error)),
    };
    // RFC 10017's custom-header defence: a cross-site form or script cannot
    // send it without a CORS preflight the gateway answers only for the
    // configured origins.
    if matches!(principal.kind, Kind::Person(_))
        && !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        && req
            .headers()
            .get("x-csrf")
            .is_none_or(|v| v.as_bytes() != b"1")
    {
        return (budget, Err(ApiError::CsrfHeaderMissing));
    }
    let allowed = spec
        .scopes
        .iter()
        .try_for_each(|scope| principal.require(*scope));
    (budget, allowed.map(|()| principal))
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    /// What admission found. A handler of a public route has none: asking
    /// for one there is refused as unauthenticated, never served.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(req.extensions().get::<Principal>().cloned().ok_or(
            ApiError::Unauthenticated {
                key_presented: false,
            },
        ))
    }
}

async fn authenticate(req: &HttpRequest, keys: &ApiKeys) -> Result<Principal, ApiError> {
    let identity = req.app_data::<web::Data<crate::identity::Identity>>();
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        // Boxed: a session's lookup (Redis) is a large future, and every
        // admission's future, a key's included, would otherwise carry it
        // and move it into a box on every request.
        return Box::pin(by_session(req, identity)).await;
    };
    let presented = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .filter(|key| !key.is_empty());
    let refused = ApiError::Unauthenticated {
        key_presented: true,
    };
    let Some(presented) = presented else {
        return Err(refused);
    };
    if !crate::identity::looks_like_jwt(presented) {
        return keys.authenticate(presented).ok_or(refused);
    }
    let Some(tokens) = identity.and_then(|i| i.services.as_ref()) else {
        return Err(refused);
    };
    match Box::pin(tokens.authenticate(presented)).await {
        Ok(service) => Ok(Principal::service(service)),
        Err(refusal) => {
            // Why, for ops; never the token.
            tracing::info!(reason = %refusal, "a bearer token was refused");
            Err(refused)
        }
    }
}

/// The person a request's session cookie names, where people log in.
async fn by_session(
    req: &HttpRequest,
    identity: Option<&web::Data<crate::identity::Identity>>,
) -> Result<Principal, ApiError> {
    let no_credential = ApiError::Unauthenticated {
        key_presented: false,
    };
    let Some(login) = identity.and_then(|i| i.login.as_ref()) else {
        return Err(no_credential);
    };
    let Some(cookie) = session_cookie(req) else {
        return Err(no_credential);
    };
    let found = login.sessions.find(cookie).await.map_err(|error| {
        ApiError::StateUnavailable(format!("people's sessions cannot be read: {error}"))
    })?;
    match found {
        Some(Found::Live(session)) => {
            // Renewed in the background when due: this request goes on with
            // what the session holds; a refusal reaches the next one.
            if session.take_renewal(crate::identity::session::now_unix())
                && let Some(identity) = identity.cloned()
            {
                let session = Arc::clone(&session);
                actix_web::rt::spawn(async move {
                    if let Some(login) = &identity.login {
                        login.renew(session).await;
                    }
                });
            }
            Ok(Principal::person(session))
        }
        Some(Found::Ended(why)) => Err(ApiError::SignedOut(why)),
        None => Err(ApiError::SignedOut(
            "the session has ended (logged out, expired or unknown here); log in again at /auth/login",
        )),
    }
}

/// The value of the session cookie, if the request carries it.
pub fn session_cookie(req: &HttpRequest) -> Option<&str> {
    let name = crate::identity::session::COOKIE;
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| !value.is_empty())
}
