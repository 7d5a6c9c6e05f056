//! Content codings: which one a caller accepts (`Accept-Encoding`, RFC 9110
//! §12.5.3) and compressing a body with it.

use std::io::Write;

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::web::Bytes;

/// Answers smaller than this go out as they are: compressing a few hundred
/// bytes saves less than it costs.
pub const MIN_BYTES: usize = 256;

/// The codings the gateway compresses with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    Br,
    Zstd,
    Gzip,
}

impl Coding {
    /// In the gateway's order of preference when a caller accepts several
    /// equally: the smallest answers first.
    pub const ALL: [Coding; 3] = [Coding::Br, Coding::Zstd, Coding::Gzip];

    pub fn token(self) -> &'static str {
        match self {
            Self::Br => "br",
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
        }
    }

    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.token())
    }

    /// `body` compressed, if it is at least [`MIN_BYTES`] and compressing
    /// makes it smaller.
    pub fn compress(self, body: &[u8]) -> Option<Bytes> {
        if body.len() < MIN_BYTES {
            return None;
        }
        let compressed = match self {
            // Quality 5 and a 4 MiB window: most of brotli's gain on JSON
            // at a small part of the cost of its top qualities.
            Self::Br => {
                let mut out = Vec::with_capacity(body.len() / 4);
                {
                    let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                    writer.write_all(body).ok()?;
                }
                out
            }
            Self::Gzip => {
                let mut writer = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 4),
                    flate2::Compression::new(6),
                );
                writer.write_all(body).ok()?;
                writer.finish().ok()?
            }
            Self::Zstd => zstd::bulk::compress(body, 3).ok()?,
        };
        (compressed.len() < body.len()).then(|| Bytes::from(compressed))
    }
}

/// The coding to answer with, given the request's `Accept-Encoding`:
/// the accepted coding with the highest q-value, the gateway's order of
/// preference among equals; `None` for the body as it is (`identity`).
///
/// No header, or one naming nothing the gateway compresses with, is
/// `identity`. `identity` wins when it has a higher q-value than every
/// coding the gateway has. `*` gives its q-value to every coding (and to
/// `identity`) not named. A q-value of 0 refuses a coding. Should a caller
/// refuse `identity` and every coding the gateway has, the answer still
/// goes out as it is rather than as a 406: every HTTP client reads it.
pub fn negotiate(headers: &HeaderMap) -> Option<Coding> {
    let mut named: Vec<(String, u16)> = Vec::new();
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            if let Some(parsed) = parse_item(item) {
                named.push(parsed);
            }
        }
    }
    let q_of = |token: &str| -> Option<u16> {
        named
            .iter()
            .find(|(name, _)| name == token || (token == "gzip" && name == "x-gzip"))
            .map(|(_, q)| *q)
    };
    let star = q_of("*");
    // `identity` is acceptable unless refused by name or by `*;q=0`.
    let identity = q_of("identity").or(star).unwrap_or(1);
    let mut best: Option<(Coding, u16)> = None;
    for coding in Coding::ALL {
        let q = q_of(coding.token()).or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, best_q)| q > best_q) {
            best = Some((coding, q));
        }
    }
    best.filter(|(_, q)| *q >= identity)
        .map(|(coding, _)| coding)
}

/// One member of `Accept-Encoding`: a coding (lower-cased) and its q-value
/// in thousandths. A member that does not parse is left out.
fn parse_item(item: &str) -> Option<(String, u16)> {
    let mut parts = item.split(';');
    let name = parts.next()?.trim();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let mut q = 1000;
    for parameter in parts {
        let (key, value) = parameter.split_once('=')?;
        if key.trim().eq_ignore_ascii_case("q") {
            q = parse_q(value.trim())?;
        }
    }
    Some((name.to_ascii_lowercase(), q))
}

/// A q-value (`0`, `0.5`, `1.000`), in thousandths.
fn parse_q(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0_u16, |n, b| {
            n.saturating_mul(10)
                .saturating_add(u16::from(b.saturating_sub(b'0')))
        });
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Whether answers of this media type are worth compressing: text and
/// JSON, never an event stream (it must reach the caller as it is written).
pub fn compressible(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media != "text/event-stream"
        && (media.starts_with("text/")
            || media == "application/json"
            || media.ends_with("+json")
            || media == "application/javascript"
            || media == "image/svg+xml")
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderName;
    use proptest::prelude::*;

    use super::*;

    fn accepting(value: &str) -> Option<Coding> {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(header::ACCEPT_ENCODING, value);
        }
        negotiate(&headers)
    }

    #[test]
    fn q_values_and_identity_are_honoured() {
        assert_eq!(negotiate(&HeaderMap::new()), None);
        assert_eq!(accepting(""), None);
        assert_eq!(accepting("gzip"), Some(Coding::Gzip));
        assert_eq!(accepting("x-gzip"), Some(Coding::Gzip));
        assert_eq!(accepting("gzip, deflate, br, zstd"), Some(Coding::Br));
        assert_eq!(accepting("br;q=0.5, gzip;q=0.8"), Some(Coding::Gzip));
        assert_eq!(accepting("br;q=0, gzip"), Some(Coding::Gzip));
        assert_eq!(accepting("zstd, br;q=0.9"), Some(Coding::Zstd));
        assert_eq!(accepting("GZIP;Q=1.0"), Some(Coding::Gzip));
        assert_eq!(accepting("identity"), None);
        assert_eq!(accepting("identity;q=1, gzip;q=0.5"), None);
        assert_eq!(accepting("identity;q=0.5, gzip;q=0.5"), Some(Coding::Gzip));
        assert_eq!(accepting("*"), Some(Coding::Br));
        assert_eq!(accepting("*;q=0.1, identity"), None);
        assert_eq!(accepting("*;q=0"), None);
        assert_eq!(accepting("deflate, compress"), None);
        assert_eq!(
            accepting("gzip;q=2"),
            None,
            "an invalid q leaves the member out"
        );
        assert_eq!(accepting("gzip;q=0.0001"), None);
        assert_eq!(accepting("gzip;q=0.001"), Some(Coding::Gzip));
    }

    #[test]
    fn several_header_lines_are_read_together() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0.5"),
        );
        headers.append(header::ACCEPT_ENCODING, HeaderValue::from_static("zstd"));
        assert_eq!(negotiate(&headers), Some(Coding::Zstd));
        let _ = HeaderName::from_static("accept-encoding");
    }

    #[test]
    fn small_or_incompressible_bodies_stay_as_they_are() {
        for coding in Coding::ALL {
            assert!(coding.compress(&[b'a'; MIN_BYTES - 1]).is_none());
            let json = br#"{"id":1,"name":"a name"},"#.repeat(40);
            let packed = coding.compress(&json).unwrap();
            assert!(
                packed.len() < json.len() / 3,
                "{coding:?}: {}",
                packed.len()
            );
        }
        let random: Vec<u8> = (0..4096_u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert!(Coding::Gzip.compress(&random).is_none() || random.len() > 4000);
    }

    #[test]
    fn every_coding_round_trips() {
        let json = br#"{"items":[{"id":1,"status":"unpaid"}],"total":1}"#.repeat(20);
        let br = Coding::Br.compress(&json).unwrap();
        let mut out = Vec::new();
        brotli::BrotliDecompress(&mut &br[..], &mut out).unwrap();
        assert_eq!(out, json);
        let gz = Coding::Gzip.compress(&json).unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out).unwrap();
        assert_eq!(out, json);
        let zs = Coding::Zstd.compress(&json).unwrap();
        assert_eq!(zstd::stream::decode_all(&zs[..]).unwrap(), json);
    }

    #[test]
    fn event_streams_are_never_compressed() {
        assert!(!compressible("text/event-stream"));
        assert!(!compressible("Text/Event-Stream; charset=utf-8"));
        assert!(compressible("application/json"));
        assert!(compressible("application/problem+json"));
        assert!(compressible("text/plain; version=0.0.4"));
        assert!(!compressible("image/png"));
    }

    proptest! {
        /// Any text at all in `Accept-Encoding`: an answer, never a panic,
        /// and only a coding the header names (or `*` covers).
        #[test]
        fn any_accept_encoding_negotiates_without_panicking(raw in ".{0,200}") {
            let chosen = accepting(&raw);
            if let Some(coding) = chosen {
                let lower = raw.to_ascii_lowercase();
                prop_assert!(lower.contains(coding.token()) || lower.contains('*') || lower.contains("x-gzip"));
            }
        }

        #[test]
        fn any_q_value_text_parses_or_is_refused(raw in ".{0,12}") {
            if let Some(q) = parse_q(&raw) {
                prop_assert!(q <= 1000);
            }
        }
    }
}
