//! A simulated identity provider under `/idp`, so a frontend developer can
//! try the gateway's login with nothing installed: OpenID discovery, a
//! JWKS, an authorization endpoint whose "login page" lists the sandbox's
//! people (no password), a token endpoint (authorization code with PKCE
//! S256, refresh token; client_secret_basic) and an end-session endpoint.
//! ID tokens are signed with a fixed Ed25519 key that is public knowledge:
//! it proves nothing outside the sandbox, where the gateway trusts it only
//! because sandbox mode points it here.
//!
//! The people ([`crate::data::PEOPLE`]): `alice` (gateway-readers), `bob`
//! (gateway-writers), `dana` (gateway-admins), `carol` (no group).

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::data::{self, Person};

/// The simulator's signing key (Ed25519, PKCS#8 DER in base64, the body
/// of its PEM): sandbox-only, published here.
const SIGNING_KEY: &str = "MC4CAQAwBQYDK2VwBCIEIO21SZzlN7L0pqKHux7h1XVHlQ1O0xH+7izw1PQbvZ1m";
/// Its public half, base64url (the JWK's `x`).
const PUBLIC_X: &str = "gTWlL5t8VOAd_RPAv1syKGdu4hJ6v_bWtVkd_4moFk8";
const KID: &str = "sandbox-ed25519";
/// Seconds an access token (and so a session between renewals) lives.
const ACCESS_TOKEN_SECONDS: i64 = 300;

/// A code or a refresh token handed out, and what it stands for.
#[derive(Clone)]
struct Grant {
    sub: &'static str,
    client_id: String,
    redirect_uri: String,
    nonce: Option<String>,
    challenge: Option<String>,
    sid: String,
}

#[derive(Default)]
pub(crate) struct IdpState {
    codes: Mutex<HashMap<String, Grant>>,
    refresh: Mutex<HashMap<String, Grant>>,
}

fn random() -> String {
    let bytes: [u8; 24] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn issuer(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}/idp", info.scheme(), info.host())
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/openid-configuration",
        web::get().to(discovery),
    )
    .route("/jwks", web::get().to(jwks))
    .route("/authorize", web::get().to(authorize))
    .route("/token", web::post().to(token))
    .route("/logout", web::get().to(logout));
}

async fn discovery(req: HttpRequest) -> HttpResponse {
    let issuer = issuer(&req);
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "end_session_endpoint": format!("{issuer}/logout"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "subject_types_supported": ["public"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
    }))
}

async fn jwks() -> HttpResponse {
    HttpResponse::Ok().json(json!({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "x": PUBLIC_X, "kid": KID, "alg": "EdDSA", "use": "sig",
    }]}))
}

#[derive(Deserialize)]
struct Authorize {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    /// Who logs in, once chosen on the page.
    login: Option<String>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Without `login`: a page listing the people, each a link that logs them
/// in. With it: back to the client with a code.
async fn authorize(
    req: HttpRequest,
    query: web::Query<Authorize>,
    state: web::Data<IdpState>,
) -> HttpResponse {
    let Authorize {
        client_id,
        redirect_uri,
        state: client_state,
        nonce,
        code_challenge,
        login,
    } = query.into_inner();
    let (Some(client_id), Some(redirect_uri)) = (client_id, redirect_uri) else {
        return HttpResponse::BadRequest().body("client_id and redirect_uri are required");
    };
    if client_id != data::IDP_CLIENT_ID {
        return HttpResponse::BadRequest().body("unknown client_id");
    }
    let Some(sub) = login else {
        let mut page = String::from(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Sandbox login</title></head>\
             <body><h1>Sandbox identity provider</h1><p>Log in as (no password in the sandbox):</p><ul>",
        );
        for person in data::PEOPLE {
            let mut link = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in req
                .query_string()
                .split('&')
                .filter_map(|p| p.split_once('='))
            {
                if name != "login" {
                    let value = url::form_urlencoded::parse(format!("v={value}").as_bytes())
                        .next()
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    link.append_pair(name, &value);
                }
            }
            link.append_pair("login", person.sub);
            page.push_str(&format!(
                "<li><a id=\"login-{sub}\" href=\"authorize?{href}\">{name}</a> ({groups})</li>",
                sub = person.sub,
                href = escape(&link.finish()),
                name = escape(person.name),
                groups = escape(&person.groups.join(", ")),
            ));
        }
        page.push_str("</ul></body></html>");
        return HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(page);
    };
    let Some(person) = data::PEOPLE.iter().find(|p| p.sub == sub) else {
        return HttpResponse::BadRequest().body("no such person");
    };
    let code = random();
    state
        .codes
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(
            code.clone(),
            Grant {
                sub: person.sub,
                client_id,
                redirect_uri: redirect_uri.clone(),
                nonce,
                challenge: code_challenge,
                sid: random(),
            },
        );
    let mut back = match url::Url::parse(&redirect_uri) {
        Ok(url) => url,
        Err(_) => return HttpResponse::BadRequest().body("redirect_uri is not a URL"),
    };
    back.query_pairs_mut().append_pair("code", &code);
    if let Some(client_state) = client_state {
        back.query_pairs_mut().append_pair("state", &client_state);
    }
    HttpResponse::Found()
        .insert_header((header::LOCATION, back.as_str()))
        .finish()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
}

fn oauth_error(error: &str) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": error}))
}

/// The client's id from its Basic credentials, if its secret is right.
fn client(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    (decode(id)?.as_str() == data::IDP_CLIENT_ID
        && decode(secret)?.as_str() == data::IDP_CLIENT_SECRET)
        .then(|| data::IDP_CLIENT_ID.to_owned())
}

async fn token(
    req: HttpRequest,
    form: web::Form<TokenForm>,
    state: web::Data<IdpState>,
) -> HttpResponse {
    let Some(client_id) = client(&req) else {
        return HttpResponse::Unauthorized().json(json!({"error": "invalid_client"}));
    };
    let grant = match form.grant_type.as_str() {
        "authorization_code" => {
            let taken = form.code.as_ref().and_then(|code| {
                state
                    .codes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(code)
            });
            let Some(grant) = taken else {
                return oauth_error("invalid_grant");
            };
            let verified = match (&grant.challenge, &form.code_verifier) {
                (Some(challenge), Some(verifier)) => {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(Sha256::digest(verifier.as_bytes()))
                        == *challenge
                }
                (None, None) => true,
                _ => false,
            };
            if !verified
                || grant.client_id != client_id
                || form.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str())
            {
                return oauth_error("invalid_grant");
            }
            grant
        }
        "refresh_token" => {
            let taken = form.refresh_token.as_ref().and_then(|token| {
                state
                    .refresh
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(token)
            });
            match taken {
                Some(grant) if grant.client_id == client_id => Grant {
                    nonce: None,
                    ..grant
                },
                _ => return oauth_error("invalid_grant"),
            }
        }
        _ => return oauth_error("unsupported_grant_type"),
    };
    let Some(person) = data::PEOPLE.iter().find(|p| p.sub == grant.sub) else {
        return oauth_error("invalid_grant");
    };
    let Some(id_token) = id_token(&issuer(&req), person, &grant) else {
        return HttpResponse::InternalServerError().json(json!({"error": "server_error"}));
    };
    let refresh_token = random();
    state
        .refresh
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(refresh_token.clone(), grant);
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "access_token": random(),
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
            "refresh_token": refresh_token,
            "id_token": id_token,
        }))
}

fn id_token(issuer: &str, person: &Person, grant: &Grant) -> Option<String> {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": issuer,
        "sub": person.sub,
        "aud": grant.client_id,
        "iat": now,
        "exp": now.checked_add(ACCESS_TOKEN_SECONDS)?,
        "name": person.name,
        "email": person.email,
        "groups": person.groups,
        "sid": grant.sid,
    });
    if let (Some(nonce), Some(object)) = (&grant.nonce, claims.as_object_mut()) {
        object.insert("nonce".into(), json!(nonce));
    }
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(KID.to_owned());
    let der = base64::engine::general_purpose::STANDARD
        .decode(SIGNING_KEY)
        .ok()?;
    let key = EncodingKey::from_ed_der(&der);
    encode(&header, &claims, &key).ok()
}

#[derive(Deserialize)]
struct Logout {
    post_logout_redirect_uri: Option<String>,
}

/// The provider's logout: the sandbox keeps no session of its own, so it
/// only says so (or goes where it was asked to).
async fn logout(query: web::Query<Logout>) -> HttpResponse {
    match &query.post_logout_redirect_uri {
        Some(to) if to.starts_with("http://127.0.0.1") || to.starts_with("http://localhost") => {
            HttpResponse::Found()
                .insert_header((header::LOCATION, to.as_str()))
                .finish()
        }
        _ => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body("<!DOCTYPE html><html><body><p>Logged out of the sandbox identity provider.</p></body></html>"),
    }
}
