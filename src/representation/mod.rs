//! How an answer is represented on the wire, after the handler made it:
//! cut to the fields asked for (`?fields=`, [`fields`]) and compressed as
//! the caller accepts (`Accept-Encoding`, [`encoding`]).
//!
//! One middleware, [`represent`], owns the wire: it alone does conditional
//! GET (weak comparison, a 304), the coding, the `ETag`'s weakness, `Vary`
//! and `Cache-Control`. Handlers answer whole, identity representations; the
//! cache's answers carry their entry ([`Kept`]: its ETag, the compressed
//! forms it keeps, how long it stays fresh). In this order:
//!
//! 1. `?fields=` on a read route is read against the route's fieldset; an
//!    unknown name is a 400 before the handler runs (nothing reaches an
//!    upstream).
//! 2. The answer is cut to the selection, gets an `ETag` of its own (a
//!    hash of the selected bytes), and a 304 when `If-None-Match` names it;
//!    it is sent as [`fields::PARTIAL_MEDIA_TYPE`], which the document
//!    describes with a schema whose members may all be left out.
//! 3. An answer of [`encoding::MIN_BYTES`] or more, of a text or JSON type,
//!    is compressed with the coding negotiated from `Accept-Encoding`,
//!    unless the handler already did (a cache hit sends the compressed form
//!    its entry keeps, compressed once). A compressed answer's `ETag` is
//!    the same tag made weak (`W/"…"`), as nginx does: the compressed and
//!    identity forms are the same content, `If-None-Match` compares weakly,
//!    so a caller revalidating either form gets its 304; a strong tag must
//!    name one exact byte sequence. Every answer but an event stream gets
//!    `Vary: Accept-Encoding`.
//!
//! An event stream, or any answer whose length is not known up front, goes
//! out as it is written: never held back to be compressed or cut.

pub mod encoding;
pub mod fields;

use actix_web::{
    ResponseError,
    body::{BodySize, BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        StatusCode,
        header::{self, HeaderMap, HeaderValue},
    },
    middleware::Next,
    web::{self, Bytes},
};
use futures_util::future::{Either, LocalBoxFuture, Ready, ready};
use sha2::{Digest, Sha256};

pub use encoding::{Coding, negotiate};
pub use fields::{Fieldsets, Selection};

use crate::error::ApiError;

/// The middleware: see the module's documentation.
pub async fn represent(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let coding = negotiate(req.headers());
    let selection = match selection_of(&req) {
        Ok(selection) => selection,
        Err(error) => {
            let response = error.error_response();
            return Ok(finish(req.into_response(response), coding).await);
        }
    };
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
    let mut response = next.call(req).await?.map_into_boxed_body();
    let kept = response.response_mut().extensions_mut().remove::<Kept>();
    let response = match (selection, kept) {
        // Boxed, as compressing below: rare paths whose futures every
        // answer's would otherwise carry and move.
        (Some((selection, list)), _) => {
            Box::pin(select(response, &selection, list, if_none_match.as_ref())).await
        }
        // Whole, from the cache: everything it needs was kept with it.
        (None, Some(kept)) => {
            return Ok(from_kept(response, &kept, if_none_match.as_ref(), coding));
        }
        (None, None) if response.response().extensions().contains::<Validate>() => {
            Box::pin(validate(response, if_none_match.as_ref())).await
        }
        (None, None) => response,
    };
    Ok(finish(response, coding).await)
}

/// On a handler's answer (in its extensions): tag it and answer
/// conditional GETs, though no cache keeps it (a registry read).
#[derive(Debug, Clone, Copy)]
pub struct Validate;

/// A `200` JSON answer of `body` that this layer tags with a strong `ETag`
/// (weak once compressed) and answers with a 304 when `If-None-Match` names
/// it, sent `Cache-Control: private, no-cache` (revalidated on every use).
pub fn validated<T: serde::Serialize>(body: &T) -> Result<actix_web::HttpResponse, ApiError> {
    let bytes = serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.into()))?;
    let mut response = actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(bytes);
    response.extensions_mut().insert(Validate);
    Ok(response)
}

/// An answer marked [`Validate`]: its ETag, a 304 when the caller holds it.
async fn validate(
    response: ServiceResponse<BoxBody>,
    if_none_match: Option<&HeaderValue>,
) -> ServiceResponse<BoxBody> {
    if response.status() != StatusCode::OK {
        return response;
    }
    let (req, response) = response.into_parts();
    let (head, body) = response.into_parts();
    let Ok(bytes) = actix_web::body::to_bytes(body).await else {
        return unreadable(req);
    };
    let etag = etag_of(&bytes);
    let mut response = if names(if_none_match, &etag) {
        not_modified_head(head)
    } else {
        head.set_body(BoxBody::new(bytes))
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Authorization"));
    ServiceResponse::new(req, response)
}

/// What the cache keeps of an answer, for the wire: its strong ETag (and
/// that as a header), and its body compressed with each coding that made it
/// smaller, made once with the entry.
pub trait KeptForms: Send + Sync {
    fn etag(&self) -> &str;
    /// The ETag as a header: made weak for a compressed form.
    fn etag_header(&self, weak: bool) -> Option<&HeaderValue>;
    fn form(&self, coding: Coding) -> Option<&Bytes>;
}

/// On a cache's answer (in its extensions): the entry it was made from, and
/// the seconds it stays fresh (0 when stale).
pub struct Kept {
    pub entry: std::sync::Arc<dyn KeptForms>,
    pub max_age: u64,
}

/// `private, max-age=N` for the ages a cache entry usually has, made once:
/// a hit formats no header.
static MAX_AGES: std::sync::LazyLock<Vec<HeaderValue>> = std::sync::LazyLock::new(|| {
    (0..=3_600_u32)
        .filter_map(|age| HeaderValue::from_str(&format!("private, max-age={age}")).ok())
        .collect()
});

fn cache_control(max_age: u64) -> HeaderValue {
    usize::try_from(max_age)
        .ok()
        .and_then(|age| MAX_AGES.get(age))
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&format!("private, max-age={max_age}"))
                .unwrap_or_else(|_| HeaderValue::from_static("private, max-age=0"))
        })
}

/// A cache's whole answer on the wire: its strong `ETag`; a 304 when
/// `If-None-Match` names it; else the kept form for the negotiated coding
/// (with the tag made weak), or the identity body; `Cache-Control` with
/// the time it stays fresh; `Vary` on the caller (answers differ by scope)
/// and the coding. Nothing is compressed here: the forms were made once.
fn from_kept(
    response: ServiceResponse<BoxBody>,
    kept: &Kept,
    if_none_match: Option<&HeaderValue>,
    coding: Option<Coding>,
) -> ServiceResponse<BoxBody> {
    let not_modified = names(if_none_match, kept.entry.etag());
    let packed = coding
        .filter(|_| !not_modified)
        .and_then(|coding| kept.entry.form(coding).map(|bytes| (coding, bytes.clone())));
    let (req, response) = response.into_parts();
    let mut response = if not_modified {
        not_modified_head(response)
    } else if let Some((_, bytes)) = &packed {
        response.set_body(BoxBody::new(bytes.clone()))
    } else {
        response
    };
    let headers = response.headers_mut();
    if let Some(etag) = kept.entry.etag_header(packed.is_some()) {
        headers.insert(header::ETAG, etag.clone());
    }
    headers.insert(header::CACHE_CONTROL, cache_control(kept.max_age));
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Authorization, Accept-Encoding"),
    );
    if let Some((coding, _)) = packed {
        // The weak tag is the entry's, made once: no formatting per hit.
        headers.insert(header::CONTENT_ENCODING, coding.header_value());
    }
    ServiceResponse::new(req, response)
}

/// The selection `?fields=` asks for, with whether the route answers a
/// list; `None` when there is none or the route has no fieldset.
fn selection_of(req: &ServiceRequest) -> Result<Option<(Selection, bool)>, ApiError> {
    if req.method() != actix_web::http::Method::GET {
        return Ok(None);
    }
    let mut raw: Option<String> = None;
    let mut repeated = false;
    for (name, value) in url::form_urlencoded::parse(req.query_string().as_bytes()) {
        if name == fields::PARAMETER {
            repeated |= raw.is_some();
            raw = Some(value.into_owned());
        }
    }
    let Some(raw) = raw else { return Ok(None) };
    let Some(set) = req
        .app_data::<web::Data<Fieldsets>>()
        .and_then(|sets| sets.find(req.path()))
    else {
        return Ok(None);
    };
    if repeated {
        return Err(ApiError::bad_field(
            fields::PARAMETER,
            "is given more than once; name every field in one, comma-separated",
        ));
    }
    Selection::parse(&raw, set)
        .map(|selection| Some((selection, set.list)))
        .map_err(|error| ApiError::bad_parameters(vec![error]))
}

/// A strong ETag of `body`: the first 16 bytes of its SHA-256, as the cache
/// tags whole answers.
pub fn etag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    format!("\"{}\"", hex::encode(digest.get(..16).unwrap_or_default()))
}

/// `If-None-Match` uses the weak comparison: `W/` prefixes are ignored, `*`
/// matches anything.
pub fn etag_matches(header: &str, etag: &str) -> bool {
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// Whether the request's `If-None-Match` names `etag` (weakly).
fn names(if_none_match: Option<&HeaderValue>, etag: &str) -> bool {
    if_none_match
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, etag))
}

/// The 304 for an answer whose validator the caller holds: its headers,
/// no body, no content type.
fn not_modified_head<B>(response: actix_web::HttpResponse<B>) -> actix_web::HttpResponse<BoxBody> {
    let mut head = response.set_body(BoxBody::new(()));
    *head.status_mut() = StatusCode::NOT_MODIFIED;
    head.headers_mut().remove(header::CONTENT_TYPE);
    head
}

/// A strong tag made weak; a weak one as it is.
pub fn weak(etag: &HeaderValue) -> HeaderValue {
    match etag.to_str() {
        Ok(text) if !text.starts_with("W/") => {
            HeaderValue::from_str(&format!("W/{text}")).unwrap_or_else(|_| etag.clone())
        }
        _ => etag.clone(),
    }
}

/// A 200 JSON answer cut to `selection`, with its own ETag (and a 304 when
/// `if_none_match` names it). Any other answer as it is.
async fn select(
    response: ServiceResponse<BoxBody>,
    selection: &Selection,
    list: bool,
    if_none_match: Option<&HeaderValue>,
) -> ServiceResponse<BoxBody> {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if response.status() != StatusCode::OK || !is_json {
        return response;
    }
    let (req, response) = response.into_parts();
    let (head, body) = response.into_parts();
    let Ok(bytes) = actix_web::body::to_bytes(body).await else {
        return unreadable(req);
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return ServiceResponse::new(req, head.set_body(BoxBody::new(bytes)));
    };
    let cut = serde_json::to_vec(&selection.apply(value, list)).unwrap_or_default();
    let etag = etag_of(&cut);
    let mut response = if names(if_none_match, &etag) {
        not_modified_head(head)
    } else {
        let mut cut = head.set_body(BoxBody::new(cut));
        cut.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(fields::PARTIAL_MEDIA_TYPE),
        );
        cut
    };
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    ServiceResponse::new(req, response)
}

/// Step 3: compresses when it should, and says the answer varies with
/// `Accept-Encoding`.
/// Only compressing waits (on the body), in a boxed future of its own: the
/// future every other answer builds and moves stays small.
fn finish(
    response: ServiceResponse<BoxBody>,
    coding: Option<Coding>,
) -> Either<Ready<ServiceResponse<BoxBody>>, LocalBoxFuture<'static, ServiceResponse<BoxBody>>> {
    // Decided on the borrowed headers, before the answer is taken apart: no
    // copy of its content type on every answer, and the media type is read
    // only for an answer that could be compressed at all.
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let size = response.response().body().size();
    if content_type.starts_with("text/event-stream") || matches!(size, BodySize::Stream) {
        return Either::Left(ready(response));
    }
    let coding = coding.filter(|_| {
        matches!(size, BodySize::Sized(n) if n >= encoding::MIN_BYTES as u64)
            && !response.headers().contains_key(header::CONTENT_ENCODING)
            && encoding::compressible(content_type)
    });
    let (req, mut response) = response.into_parts();
    vary_on_encoding(response.headers_mut());
    let Some(coding) = coding else {
        return Either::Left(ready(ServiceResponse::new(req, response)));
    };
    Either::Right(Box::pin(compress(req, response, coding)))
}

/// Compresses a handler's answer with `coding`, when that makes it smaller.
async fn compress(
    req: actix_web::HttpRequest,
    response: actix_web::HttpResponse,
    coding: Coding,
) -> ServiceResponse<BoxBody> {
    let (head, body) = response.into_parts();
    let Ok(bytes) = actix_web::body::to_bytes(body).await else {
        return unreadable(req);
    };
    let Some(packed) = coding.compress(&bytes) else {
        return ServiceResponse::new(req, head.set_body(BoxBody::new(bytes)));
    };
    let mut response = head.set_body(BoxBody::new(packed));
    mark_encoded(response.headers_mut(), coding);
    ServiceResponse::new(req, response)
}

/// A handler's body that could not be read back (only a body stream that
/// fails would): a 500 problem, as any other bug.
fn unreadable(req: actix_web::HttpRequest) -> ServiceResponse<BoxBody> {
    let response = ApiError::internal("an answer's body could not be read").error_response();
    ServiceResponse::new(req, response)
}

/// The headers of an answer sent with `coding`: `Content-Encoding`, and a
/// weak `ETag`.
pub fn mark_encoded(headers: &mut HeaderMap, coding: Coding) {
    headers.insert(header::CONTENT_ENCODING, coding.header_value());
    if let Some(etag) = headers.get(header::ETAG).map(weak) {
        headers.insert(header::ETAG, etag);
    }
}

/// Adds `Accept-Encoding` to `Vary`, once.
pub fn vary_on_encoding(headers: &mut HeaderMap) {
    let present = headers.get_all(header::VARY).any(|v| {
        v.to_str().is_ok_and(|t| {
            t.split(',')
                .any(|n| n.trim().eq_ignore_ascii_case("accept-encoding") || n.trim() == "*")
        })
    });
    if !present {
        headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}
