//! What the cache keeps and how it answers from it: the key, the entry
//! (body, ETag, compressed forms, age), and the HTTP answer for an entry.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::{HttpResponse, http::header, web::Bytes};

use super::Route;
use crate::representation::{self, Coding};

/// A route and what distinguishes one answer of it from another: path and
/// query parameters, and the caller's view where answers differ by scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub route: Route,
    pub variant: String,
}

impl CacheKey {
    pub fn new(route: Route, variant: impl Into<String>) -> Self {
        Self {
            route,
            variant: variant.into(),
        }
    }
}

/// Under which generation of its route, and which epoch of this instance's
/// subscription to invalidations, an answer was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tag {
    pub(super) generation: u64,
    pub(super) epoch: u64,
}

/// Where an answer came from, for `X-Cache` when it is first served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Origin {
    /// Fetched from Slitz by this request.
    Upstream,
    /// Read from the cache the instances share.
    Shared,
}

/// A serialized answer and how old it is.
#[derive(Debug)]
pub struct Cached {
    pub body: Bytes,
    pub etag: String,
    /// `etag` as a header value, made once for every answer sent from it.
    pub(super) etag_header: Option<EtagHeaders>,
    /// The body compressed, once, with each coding that makes it smaller.
    pub(super) forms: Forms,
    /// When this instance got it, and how old it was then (an answer read
    /// from Redis was fetched earlier, maybe by another instance).
    pub(super) received: Instant,
    pub(super) age_on_receipt: Duration,
    pub(super) ttl: Duration,
    pub(super) tag: Tag,
    pub(super) origin: Origin,
}

impl Cached {
    pub(super) fn new(body: Vec<u8>, ttl: Duration, tag: Tag) -> Self {
        let etag = representation::etag_of(&body);
        Self {
            forms: Forms::of(&body),
            etag_header: etag_header(&etag),
            etag,
            body: Bytes::from(body),
            received: Instant::now(),
            age_on_receipt: Duration::ZERO,
            ttl,
            tag,
            origin: Origin::Upstream,
        }
    }

    pub(super) fn age(&self) -> Duration {
        self.age_on_receipt.saturating_add(self.received.elapsed())
    }

    pub(super) fn remaining(&self) -> Duration {
        self.ttl.saturating_sub(self.age())
    }

    pub(super) fn is_fresh(&self) -> bool {
        self.age() < self.ttl
    }
}

/// A cached body in each content coding that makes it smaller: made when
/// the entry is, so a hit never compresses, and weighed with it.
#[derive(Debug, Default)]
pub(crate) struct Forms(Vec<(Coding, Bytes)>);

impl Forms {
    pub(crate) fn of(body: &[u8]) -> Self {
        Self(
            Coding::ALL
                .into_iter()
                .filter_map(|coding| coding.compress(body).map(|packed| (coding, packed)))
                .collect(),
        )
    }

    pub(super) fn get(&self, coding: Coding) -> Option<&Bytes> {
        self.0.iter().find(|(c, _)| *c == coding).map(|(_, b)| b)
    }

    pub(super) fn bytes(&self) -> usize {
        self.0.iter().map(|(_, b)| b.len()).sum()
    }
}

/// How an answer was served, for `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "UPPERCASE")]
pub enum CacheStatus {
    Hit,
    Miss,
    Stale,
}

impl CacheStatus {
    pub(super) fn as_str(self) -> &'static str {
        self.into()
    }
}

/// `etag` as a header value; `None` for one a header cannot carry (only an
/// entry read from a tampered Redis could have one), sent without `ETag`.
pub(super) fn etag_header(etag: &str) -> Option<EtagHeaders> {
    Some(EtagHeaders {
        strong: header::HeaderValue::from_str(etag).ok()?,
        weak: header::HeaderValue::from_str(&format!("W/{etag}")).ok()?,
    })
}

/// An entry's ETag as headers, made once: as it is (the identity form), and
/// made weak (a compressed form).
#[derive(Debug)]
pub(crate) struct EtagHeaders {
    strong: header::HeaderValue,
    weak: header::HeaderValue,
}

/// The answer for a cached entry: 200 with its body as it is and
/// `X-Cache`, carrying the entry and its freshness for the wire layer
/// (`representation`), which alone does conditional GET (a 304), the
/// coding (from the forms the entry keeps), `ETag`, `Cache-Control` and
/// `Vary`. The cache never reads the request's headers.
pub fn respond(entry: &Arc<Cached>, status: CacheStatus) -> HttpResponse {
    let max_age = match status {
        CacheStatus::Stale => 0,
        _ => entry.remaining().as_secs(),
    };
    let mut response = HttpResponse::Ok()
        .insert_header((
            header::HeaderName::from_static("x-cache"),
            header::HeaderValue::from_static(status.as_str()),
        ))
        .insert_header((
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        ))
        .body(entry.body.clone());
    let kept: Arc<dyn representation::KeptForms> = Arc::clone(entry) as _;
    response.extensions_mut().insert(representation::Kept {
        entry: kept,
        max_age,
    });
    response
}

impl representation::KeptForms for Cached {
    fn etag(&self) -> &str {
        &self.etag
    }

    fn etag_header(&self, weak: bool) -> Option<&header::HeaderValue> {
        self.etag_header
            .as_ref()
            .map(|h| if weak { &h.weak } else { &h.strong })
    }

    fn form(&self, coding: Coding) -> Option<&Bytes> {
        self.forms.get(coding)
    }
}
