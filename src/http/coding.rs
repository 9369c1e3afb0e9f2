//! Content codings (RFC 9110 section 8.4.1): choosing one by `Accept-Encoding` (section
//! 12.5.3), deciding what is worth compressing, and compressing it with gzip or brotli.
//!
//! The choice is pure: [`AcceptEncoding::parse`] reads the request's fields once, and
//! [`AcceptEncoding::choose`] picks among the codings a response is available in.

use super::fields::{is_tchar, trim_ows};
use super::{Body, Response, StatusCode};
use std::io::Write;

/// A content coding margay can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// No coding: the bytes as they are.
    Identity,
    /// `br` (RFC 7932).
    Brotli,
    /// `zstd` (RFC 8878), served only from `.zst` sidecar files.
    Zstd,
    /// `gzip` (RFC 1952).
    Gzip,
}

impl Coding {
    /// The codings other than identity, most preferred first: at equal weight the smallest
    /// output wins.
    pub const ENCODED: [Coding; 3] = [Coding::Brotli, Coding::Zstd, Coding::Gzip];

    /// The token in `Content-Encoding` and `Accept-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    /// The file name suffix of a precompressed sidecar (`app.js.br`), and of the entity-tag
    /// of an encoded representation (`"...-br"`).
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Identity => "",
            Coding::Brotli => "br",
            Coding::Zstd => "zst",
            Coding::Gzip => "gz",
        }
    }

    /// Its place in [`Coding::ENCODED`] (identity has none).
    pub fn index(self) -> Option<usize> {
        match self {
            Coding::Identity => None,
            Coding::Brotli => Some(0),
            Coding::Zstd => Some(1),
            Coding::Gzip => Some(2),
        }
    }

    /// Whether margay can produce it itself (zstd only comes from sidecars).
    pub fn can_compress(self) -> bool {
        matches!(self, Coding::Brotli | Coding::Gzip)
    }
}

/// A weight in thousandths: `q=0.5` is 500, `q=1` is 1000.
type Weight = u16;

/// What a request's `Accept-Encoding` says, reduced to the codings margay knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AcceptEncoding {
    /// The field was present with a valid value.
    present: bool,
    /// Explicit weights of br, zstd and gzip, in [`Coding::ENCODED`] order.
    codings: [Option<Weight>; 3],
    identity: Option<Weight>,
    any: Option<Weight>,
}

impl AcceptEncoding {
    /// Parses every `Accept-Encoding` field of a request, as one list. A value that breaks
    /// the grammar makes the whole field ignored (as if absent): identity is sent.
    pub fn parse<'a>(values: impl Iterator<Item = &'a [u8]>) -> AcceptEncoding {
        let mut accept = AcceptEncoding::default();
        for value in values {
            accept.present = true;
            for member in value.split(|&b| b == b',') {
                if accept.add(member).is_none() {
                    return AcceptEncoding::default();
                }
            }
        }
        accept
    }

    /// Adds one list member (`gzip;q=0.5`); `None` on a grammar error.
    fn add(&mut self, member: &[u8]) -> Option<()> {
        let mut pieces = member.split(|&b| b == b';');
        let name = trim_ows(pieces.next()?);
        // Empty list members are allowed and ignored (RFC 9110 section 5.6.1).
        if name.is_empty() {
            return pieces.next().is_none().then_some(());
        }
        if !name.iter().all(|&b| is_tchar(b)) {
            return None;
        }
        let weight = match (pieces.next(), pieces.next()) {
            (None, _) => 1000,
            (Some(param), None) => parse_weight(trim_ows(param))?,
            (Some(_), Some(_)) => return None,
        };
        let slot = if name.eq_ignore_ascii_case(b"br") {
            &mut self.codings[0]
        } else if name.eq_ignore_ascii_case(b"zstd") {
            &mut self.codings[1]
        } else if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
            &mut self.codings[2]
        } else if name.eq_ignore_ascii_case(b"identity") {
            &mut self.identity
        } else if name == b"*" {
            &mut self.any
        } else {
            return Some(());
        };
        // The first mention of a coding counts.
        slot.get_or_insert(weight);
        Some(())
    }

    /// The coding to send, among identity and the encoded codings `available` offers.
    ///
    /// - No field (or an invalid one): identity. RFC 9110 allows any coding then, but a
    ///   client that says nothing may not decode one.
    /// - Otherwise the acceptable coding (weight above 0, named or matched by `*`) with the
    ///   highest weight; at equal weight br, then zstd, then gzip, then identity.
    /// - Identity is acceptable unless `identity;q=0`, or `*;q=0` without an `identity`
    ///   entry, excludes it; unnamed, it comes last.
    /// - Nothing acceptable: identity all the same (section 12.5.3: the server SHOULD then
    ///   send the response without a coding), never `406`.
    pub fn choose(&self, available: impl Fn(Coding) -> bool) -> Coding {
        if !self.present {
            return Coding::Identity;
        }
        let mut best = Coding::Identity;
        // An unnamed identity ranks below every named coding.
        let mut best_weight: i32 = match self.identity.or(self.any) {
            Some(w) if w > 0 => i32::from(w),
            Some(_) => -1,
            None => 0,
        };
        for (i, coding) in Coding::ENCODED.into_iter().enumerate() {
            let Some(weight) = self.codings[i].or(self.any) else {
                continue;
            };
            // ENCODED is in preference order, so a later coding must weigh strictly more;
            // identity (compared with >=) loses ties.
            let better = match best {
                Coding::Identity => i32::from(weight) >= best_weight,
                _ => i32::from(weight) > best_weight,
            };
            if weight > 0 && better && available(coding) {
                best = coding;
                best_weight = i32::from(weight);
            }
        }
        best
    }
}

/// `q=` followed by a qvalue (RFC 9110 section 12.4.2): `0`, `0.5`, `1`, `1.000`; at most
/// three decimals, never above 1. `None` for anything else.
pub(super) fn parse_weight(param: &[u8]) -> Option<Weight> {
    let (name, value) = param.split_at_checked(2)?;
    if !name.eq_ignore_ascii_case(b"q=") {
        return None;
    }
    let (whole, fraction) = match value.split_first()? {
        (b'0', rest) => (0, rest),
        (b'1', rest) => (1000, rest),
        _ => return None,
    };
    let digits = match fraction {
        [] => return Some(whole),
        [b'.', digits @ ..] if digits.len() <= 3 => digits,
        _ => return None,
    };
    let mut thousandths: Weight = 0;
    for (i, &digit) in digits.iter().enumerate() {
        if !digit.is_ascii_digit() {
            return None;
        }
        thousandths += Weight::from(digit - b'0') * [100, 10, 1][i];
    }
    if whole == 1000 && thousandths > 0 {
        return None;
    }
    Some(whole + thousandths)
}

/// Bodies smaller than this are never compressed: the coding's own overhead and the work
/// buy nearly nothing under a kilobyte.
pub const MIN_COMPRESS: usize = 1024;

/// gzip level for compressed copies: zlib's default, most of level 9's ratio at a fraction of
/// its time.
pub const GZIP_LEVEL: u32 = 6;
/// brotli quality for compressed copies: already smaller than gzip -9 on text, about a
/// millisecond for a 64 KiB file; 10 and 11 take tens of milliseconds, blocking the loop.
pub const BROTLI_QUALITY: u32 = 5;
/// brotli window (log2 of bytes): 4 MiB, more than any file kept in memory.
const BROTLI_WINDOW: u32 = 22;

/// Whether a body of this `Content-Type` is worth compressing: text, JavaScript, JSON, XML,
/// SVG and WebAssembly. Images, audio, video, fonts and archives are already compressed.
pub fn is_compressible(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+xml")
        || essence.ends_with("+json")
        || matches!(
            essence.as_str(),
            "application/javascript"
                | "application/x-javascript"
                | "application/ecmascript"
                | "application/json"
                | "application/xml"
                | "application/wasm"
                | "application/manifest+json"
        )
}

/// Largest handler body compressed on the event loop: 64 KiB takes about a millisecond at
/// [`BROTLI_QUALITY`].
pub const MAX_ON_LOOP_COMPRESS: usize = 64 * 1024;
/// Largest handler body compressed off the event loop (a blocking handler's, on the worker
/// pool or its connection's thread): a few tens of milliseconds of one pool thread.
pub const MAX_OFF_LOOP_COMPRESS: usize = 4 * 1024 * 1024;

/// Compresses a handler's [`Response::compressible`] body, of at most `max` bytes, for a
/// client that accepts gzip or brotli, in place: `Content-Encoding` added, a strong `ETag`
/// marked with the coding. Every such response gets `Vary: Accept-Encoding`, since its body
/// may differ by it. Clears the mark, so a response is looked at once.
pub fn compress_response(response: &mut Response, accept: &AcceptEncoding, max: usize) {
    if !std::mem::take(&mut response.compress) {
        return;
    }
    if !response.status.allows_body() || response.status == StatusCode::PARTIAL_CONTENT {
        return;
    }
    // Only bodies held whole can be compressed: a stream or a file window never differs.
    if !matches!(response.body, Body::Bytes(_) | Body::Shared(_)) {
        return;
    }
    response
        .headers
        .push(("Vary".into(), "Accept-Encoding".into()));
    if response.header_value("content-encoding").is_some() {
        return;
    }
    let bytes: &[u8] = match &response.body {
        Body::Bytes(bytes) => bytes,
        Body::Shared(bytes) => bytes,
        _ => return,
    };
    if !(MIN_COMPRESS..=max).contains(&bytes.len()) {
        return;
    }
    let coding = accept.choose(Coding::can_compress);
    let Some(out) = compress(coding, bytes) else {
        return;
    };
    response.body = Body::Bytes(out);
    for (name, value) in &mut response.headers {
        if name.eq_ignore_ascii_case("etag") && value.ends_with('"') && !value.starts_with("W/") {
            let mut marked = value.to_string();
            marked.pop();
            marked.push('-');
            marked.push_str(coding.suffix());
            marked.push('"');
            *value = marked.into();
        }
    }
    response
        .headers
        .push(("Content-Encoding".into(), coding.token().into()));
}

/// `bytes` compressed with `coding` (gzip or brotli); `None` for a coding margay does not
/// produce, or when the result would not be smaller.
pub fn compress(coding: Coding, bytes: &[u8]) -> Option<Vec<u8>> {
    let out = match coding {
        Coding::Gzip => on_its_own_stack(|| {
            let level = flate2::Compression::new(GZIP_LEVEL);
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 3), level);
            encoder.write_all(bytes).ok()?;
            encoder.finish().ok()
        })?,
        Coding::Brotli => on_its_own_stack(|| {
            let mut out = Vec::with_capacity(bytes.len() / 3);
            let params = brotli::enc::BrotliEncoderParams {
                quality: BROTLI_QUALITY as i32,
                lgwin: BROTLI_WINDOW as i32,
                size_hint: bytes.len(),
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &bytes[..], &mut out, &params).ok()?;
            Some(out)
        })?,
        Coding::Identity | Coding::Zstd => return None,
    };
    (out.len() < bytes.len()).then_some(out)
}

/// Stack for an encoder: they need up to 128 KiB optimised and over 256 KiB in a debug
/// build, more than a thread of the thread model has (256 KiB, partly in use).
const ENCODER_STACK: usize = 1024 * 1024;

/// Runs an encoder on a short-lived thread with a stack of its own, so the caller's stack
/// size does not matter. The thread costs tens of microseconds, against about a millisecond
/// of compressing, once per cached file.
fn on_its_own_stack<T: Send>(encode: impl FnOnce() -> Option<T> + Send) -> Option<T> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("margay-compress".into())
            .stack_size(ENCODER_STACK)
            .spawn_scoped(scope, encode)
            .ok()?
            .join()
            .ok()?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn choose(fields: &[&str], available: &[Coding]) -> Coding {
        AcceptEncoding::parse(fields.iter().map(|f| f.as_bytes()))
            .choose(|c| available.contains(&c))
    }

    #[test]
    fn negotiation_table() {
        use Coding::*;
        let all = &[Brotli, Zstd, Gzip][..];
        let gzip_only = &[Gzip][..];
        // (Accept-Encoding fields, codings available besides identity, coding sent)
        let rows: &[(&[&str], &[Coding], Coding)] = &[
            // No field, or an empty one: identity (RFC 9110 section 12.5.3).
            (&[], all, Identity),
            (&[""], all, Identity),
            (&["gzip"], all, Gzip),
            (&["GZIP"], all, Gzip),
            (&["x-gzip"], all, Gzip),
            (&["gzip, deflate, br"], all, Brotli),
            (&["gzip, deflate, br, zstd"], all, Brotli),
            (&["gzip, zstd"], all, Zstd),
            (&["gzip", "br"], all, Brotli),
            (&["br;q=0.5, gzip"], all, Gzip),
            (&["br;q=0.5, gzip;q=0.8"], all, Gzip),
            (&["br;q=1.0, gzip;q=0.999"], all, Brotli),
            (&["br;Q=0.9 , gzip ; q=0.8"], all, Brotli),
            (&["gzip;q=0"], all, Identity),
            (&["br"], gzip_only, Identity),
            (&["br, gzip;q=0.1"], gzip_only, Gzip),
            (&["deflate"], all, Identity),
            // An unnamed identity comes after any named coding, however light.
            (&["gzip;q=0.001"], all, Gzip),
            // A named identity competes by weight and loses ties.
            (&["identity, gzip"], all, Gzip),
            (&["identity;q=1, gzip;q=0.5"], all, Identity),
            // `*` covers what is not named.
            (&["*"], all, Brotli),
            (&["*"], &[], Identity),
            (&["*;q=0.5, br;q=0"], all, Zstd),
            (&["*;q=0, gzip"], all, Gzip),
            // Identity excluded, nothing else acceptable: identity all the same, not 406.
            (&["identity;q=0"], &[], Identity),
            (&["identity;q=0, gzip"], all, Gzip),
            (&["*;q=0"], all, Identity),
            (&["*;q=0, identity"], gzip_only, Identity),
            // The first mention counts.
            (&["gzip;q=0, gzip"], gzip_only, Identity),
            // Empty list members are allowed.
            (&[", gzip ,,"], gzip_only, Gzip),
            // Grammar errors: the field is ignored, identity is sent.
            (&["gzip;q=1.5"], gzip_only, Identity),
            (&["gzip;q=1.001"], gzip_only, Identity),
            (&["gzip;q=0.1234"], gzip_only, Identity),
            (&["gzip;q=.5"], gzip_only, Identity),
            (&["gzip;q=2"], gzip_only, Identity),
            (&["gzip;q="], gzip_only, Identity),
            (&["gzip;q=0.5x"], gzip_only, Identity),
            (&["gzip;level=1"], gzip_only, Identity),
            (&["gzip;q=0.5;q=0.6"], gzip_only, Identity),
            (&["gz ip"], gzip_only, Identity),
            (&["gzip", "br;q=x"], all, Identity),
            (&["gzip;"], gzip_only, Identity),
        ];
        for (fields, available, expected) in rows {
            assert_eq!(
                choose(fields, available),
                *expected,
                "Accept-Encoding {fields:?}, available {available:?}"
            );
        }
    }

    #[test]
    fn handler_responses() {
        let text = "a line of JSON, more or less {\"k\": 1}\n"
            .repeat(60)
            .into_bytes();
        let accept = AcceptEncoding::parse(std::iter::once(&b"gzip"[..]));
        let file = std::sync::Arc::new(tempfile::tempfile().unwrap());
        let make = |body: Body| Response::ok().with_body(body).compressible();
        // (response, Content-Encoding afterwards, Vary afterwards)
        let rows: Vec<(Response, Option<&str>, bool)> = vec![
            (make(Body::Bytes(text.clone())), Some("gzip"), true),
            (make(Body::Shared(text.clone().into())), Some("gzip"), true),
            (make(Body::Bytes(b"short".to_vec())), None, true),
            (
                make(Body::Bytes(text.clone())).header("Content-Encoding", "br"),
                Some("br"),
                true,
            ),
            (
                make(Body::File {
                    file,
                    offset: 0,
                    len: 0,
                }),
                None,
                false,
            ),
            (
                make(Body::Bytes(text.clone())).with_status(StatusCode::PARTIAL_CONTENT),
                None,
                false,
            ),
            (
                Response::ok().with_body(Body::Bytes(text.clone())),
                None,
                false,
            ),
        ];
        for (i, (mut response, coding, vary)) in rows.into_iter().enumerate() {
            compress_response(&mut response, &accept, MAX_ON_LOOP_COMPRESS);
            assert_eq!(response.header_value("content-encoding"), coding, "row {i}");
            assert_eq!(response.header_value("vary").is_some(), vary, "row {i}");
            assert!(!response.compress, "row {i}: looked at once");
        }
        let tagged = Response::ok()
            .header("ETag", "\"v1\"")
            .with_body(Body::Bytes(text.clone()))
            .compressible();
        let weak = Response::ok()
            .header("ETag", "W/\"v1\"")
            .with_body(Body::Bytes(text))
            .compressible();
        for (mut response, etag) in [(tagged, "\"v1-gz\""), (weak, "W/\"v1\"")] {
            compress_response(&mut response, &accept, MAX_ON_LOOP_COMPRESS);
            assert_eq!(response.header_value("etag"), Some(etag));
        }
    }

    #[test]
    fn qvalues() {
        // (parameter, weight in thousandths or rejected)
        let rows: &[(&str, Option<u16>)] = &[
            ("q=0", Some(0)),
            ("q=0.", Some(0)),
            ("q=0.5", Some(500)),
            ("q=0.05", Some(50)),
            ("q=0.005", Some(5)),
            ("q=0.999", Some(999)),
            ("q=1", Some(1000)),
            ("q=1.", Some(1000)),
            ("q=1.000", Some(1000)),
            ("Q=1", Some(1000)),
            ("q=1.0001", None),
            ("q=0.0001", None),
            ("q=1.5", None),
            ("q=2", None),
            ("q=-1", None),
            ("q = 1", None),
            ("r=1", None),
            ("q", None),
        ];
        for (param, expected) in rows {
            assert_eq!(parse_weight(param.as_bytes()), *expected, "{param:?}");
        }
    }

    #[test]
    fn compressible_types() {
        // (Content-Type, compressible)
        let rows: &[(&str, bool)] = &[
            ("text/html; charset=utf-8", true),
            ("text/css", true),
            ("text/javascript; charset=utf-8", true),
            ("application/json", true),
            ("application/wasm", true),
            ("image/svg+xml; charset=utf-8", true),
            ("application/xml", true),
            ("application/ld+json", true),
            ("image/png", false),
            ("image/jpeg", false),
            ("font/woff2", false),
            ("application/gzip", false),
            ("application/octet-stream", false),
            ("video/mp4", false),
        ];
        for (content_type, expected) in rows {
            assert_eq!(is_compressible(content_type), *expected, "{content_type}");
        }
    }

    #[test]
    fn compressed_bytes_decompress_to_the_original() {
        let text = "margay serves text; text compresses well. ".repeat(100);
        let gzip = compress(Coding::Gzip, text.as_bytes()).expect("smaller");
        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(&gzip[..])
            .read_to_string(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, text);
        let br = compress(Coding::Brotli, text.as_bytes()).expect("smaller");
        let mut unbrotlied = String::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_string(&mut unbrotlied)
            .unwrap();
        assert_eq!(unbrotlied, text);
        assert!(br.len() < text.len() / 10, "{} bytes", br.len());
        assert_eq!(compress(Coding::Zstd, text.as_bytes()), None);
        // Random bytes do not shrink: no copy is kept.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        assert_eq!(compress(Coding::Gzip, &noise), None);
    }
}
