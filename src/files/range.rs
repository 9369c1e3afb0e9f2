//! Byte ranges (RFC 9110 section 14): parsing `Range`, honouring `If-Range`, refusing
//! requests that would amplify the response, and building 206 and 416 responses.

use super::conditional::{Validators, parse_date};
use super::representation::Representation;
use crate::http::fields::trim_ows;
use crate::http::{BodyPart, Method, RequestHead, Response, StatusCode};
use std::hash::{BuildHasher, RandomState};

/// Most range specs honoured in one request; more and the whole file is sent instead.
pub const MAX_RANGES: usize = 16;

/// An inclusive range of byte positions, already clamped to the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte position.
    pub first: u64,
    /// Last byte position, included.
    pub last: u64,
}

impl ByteRange {
    /// How many bytes the range holds (at least one).
    pub fn size(self) -> u64 {
        self.last.saturating_sub(self.first).saturating_add(1)
    }
}

/// What to do about a request's `Range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangePlan {
    /// Ignore it and send the whole file with 200.
    Full,
    /// Send these ranges with 206, in the order asked.
    Partial(Vec<ByteRange>),
    /// None of the ranges overlaps the file: 416.
    Unsatisfiable,
}

/// Decides how to answer the `Range` of a GET for a file of `len` bytes.
pub fn plan(head: &RequestHead, validators: &Validators, len: u64) -> RangePlan {
    // Range handling is defined for GET only (RFC 9110 section 14.2).
    if head.method != Method::Get {
        return RangePlan::Full;
    }
    let mut values = head.header_values("range");
    let (Some(value), None) = (values.next(), values.next()) else {
        return RangePlan::Full;
    };
    if !if_range_holds(head, validators) {
        return RangePlan::Full;
    }
    parse_ranges(value, len)
}

/// `If-Range` (RFC 9110 section 13.1.5): absent, or a strong tag equal to ours, or a date
/// exactly equal to `Last-Modified`. A weak tag or any other value means "send it all".
fn if_range_holds(head: &RequestHead, validators: &Validators) -> bool {
    let mut values = head.header_values("if-range");
    match (values.next(), values.next()) {
        (None, _) => true,
        (Some(tag @ [b'"', ..]), None) => tag == validators.etag.as_bytes(),
        (Some(date), None) => parse_date(date) == Some(validators.last_modified as i64),
        (Some(_), Some(_)) => false,
    }
}

/// Parses a `Range` value against a file of `len` bytes, by the grammar of RFC 9110 section
/// 14.1.1 (`range-unit "=" 1#range-spec`, a list read by the recipient rule of section
/// 5.6.1.2: empty elements and OWS around commas are fine, nothing else).
///
/// Another unit or bad syntax: the header is ignored. More than [`MAX_RANGES`] specs, or
/// ranges adding up to more than the file (overlaps): the whole file is sent.
pub fn parse_ranges(value: &[u8], len: u64) -> RangePlan {
    let Some(set) = strip_bytes_unit(value) else {
        return RangePlan::Full;
    };
    let mut ranges = Vec::new();
    let mut specs = 0;
    let mut total: u64 = 0;
    for spec in set.split(|&b| b == b',').map(trim_ows) {
        if spec.is_empty() {
            continue;
        }
        specs += 1;
        if specs > MAX_RANGES {
            return RangePlan::Full;
        }
        let Some(spec) = RangeSpec::parse(spec) else {
            return RangePlan::Full;
        };
        if let Some(range) = spec.clamp(len) {
            // Past u64::MAX the ranges certainly add up to more than the file.
            let Some(sum) = total.checked_add(range.size()) else {
                return RangePlan::Full;
            };
            total = sum;
            ranges.push(range);
        }
    }
    match (specs, ranges.is_empty()) {
        (0, _) => RangePlan::Full,
        (_, true) => RangePlan::Unsatisfiable,
        _ if total > len => RangePlan::Full,
        _ => RangePlan::Partial(ranges),
    }
}

/// 416 with the `Content-Range: bytes */LEN` that tells the client the real length.
pub fn unsatisfiable(len: u64) -> Response {
    Response::error(StatusCode::RANGE_NOT_SATISFIABLE)
        .header("Content-Range", format!("bytes */{len}"))
}

/// 206 for the given ranges: a single part, or `multipart/byteranges`; the whole file (200)
/// when the multipart body would be larger than the file itself.
pub fn partial(rep: &Representation, ranges: &[ByteRange]) -> Response {
    match ranges {
        [] => rep.full(),
        [range] => rep.single_range(*range, content_range(*range, rep.len())),
        _ => multipart(rep, ranges),
    }
}

fn multipart(rep: &Representation, ranges: &[ByteRange]) -> Response {
    // Random per response, so file contents cannot be crafted to contain it.
    let boundary = format!("{:016x}", RandomState::new().hash_one(&rep.validators.etag));
    let mut parts = Vec::with_capacity(2 * ranges.len() + 1);
    for (i, range) in ranges.iter().enumerate() {
        let part_head = format!(
            "{}--{boundary}\r\nContent-Type: {}\r\nContent-Range: {}\r\n\r\n",
            if i == 0 { "" } else { "\r\n" },
            rep.content_type,
            content_range(*range, rep.len()),
        );
        parts.push(BodyPart::Bytes(part_head.into_bytes()));
        parts.push(rep.part(*range));
    }
    parts.push(BodyPart::Bytes(
        format!("\r\n--{boundary}--\r\n").into_bytes(),
    ));
    if parts.iter().map(BodyPart::len).sum::<u64>() > rep.len() {
        return rep.full();
    }
    rep.multipart(format!("multipart/byteranges; boundary={boundary}"), parts)
}

fn content_range(range: ByteRange, len: u64) -> String {
    format!("bytes {}-{}/{len}", range.first, range.last)
}

/// The range-set after a case-insensitive `bytes=` (which no whitespace may follow).
fn strip_bytes_unit(value: &[u8]) -> Option<&[u8]> {
    let (unit, set) = value.split_at_checked(6)?;
    let starts_spaced = matches!(set.first(), Some(b' ' | b'\t'));
    (unit.eq_ignore_ascii_case(b"bytes=") && !starts_spaced).then_some(set)
}

/// One range-spec as written, before it meets the file's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeSpec {
    /// `first-last` or `first-`.
    FromTo(u64, Option<u64>),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl RangeSpec {
    fn parse(spec: &[u8]) -> Option<RangeSpec> {
        let dash = spec.iter().position(|&b| b == b'-')?;
        let (first, last) = (&spec[..dash], &spec[dash + 1..]);
        if first.is_empty() {
            return Some(RangeSpec::Suffix(digits(last)?));
        }
        if last.is_empty() {
            return Some(RangeSpec::FromTo(digits(first)?, None));
        }
        // Compared as written: both may be too large for a u64 and saturate to the same value.
        if decimal_less(last, first) {
            return None;
        }
        Some(RangeSpec::FromTo(digits(first)?, Some(digits(last)?)))
    }

    /// The bytes this spec selects in a file of `len` bytes; `None` when unsatisfiable.
    fn clamp(self, len: u64) -> Option<ByteRange> {
        let (first, last) = match self {
            RangeSpec::FromTo(first, _) if first >= len => return None,
            RangeSpec::FromTo(first, last) => (first, last.map_or(len - 1, |l| l.min(len - 1))),
            RangeSpec::Suffix(0) => return None,
            RangeSpec::Suffix(_) if len == 0 => return None,
            RangeSpec::Suffix(n) => (len - n.min(len), len - 1),
        };
        Some(ByteRange { first, last })
    }
}

/// Whether the digits `a` are a smaller number than the digits `b`, at any length.
fn decimal_less(a: &[u8], b: &[u8]) -> bool {
    fn significant(d: &[u8]) -> &[u8] {
        let zeros = d.iter().take_while(|&&b| b == b'0').count();
        &d[zeros..]
    }
    let (a, b) = (significant(a), significant(b));
    (a.len(), a) < (b.len(), b)
}

/// A decimal number; values too large for u64 saturate, which clamping then handles.
fn digits(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::representation::Source;
    use crate::files::resolve::FileIdentity;
    use crate::files::{test_memory, test_request};
    use crate::http::Body;
    use std::sync::Arc;

    fn ranges(pairs: &[(u64, u64)]) -> RangePlan {
        RangePlan::Partial(
            pairs
                .iter()
                .map(|&(first, last)| ByteRange { first, last })
                .collect(),
        )
    }

    #[test]
    fn range_headers_against_a_length() {
        use RangePlan::{Full, Unsatisfiable};
        let sixteen: Vec<String> = (0..16).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
        let sixteen = format!("bytes={}", sixteen.join(","));
        let seventeen = format!("{sixteen},40-40");
        // (Range value, file length, plan)
        let rows: Vec<(&str, u64, RangePlan)> = vec![
            ("bytes=0-0", 100, ranges(&[(0, 0)])),
            ("bytes=0-", 100, ranges(&[(0, 99)])),
            ("bytes=10-19", 100, ranges(&[(10, 19)])),
            ("bytes=-10", 100, ranges(&[(90, 99)])),
            ("bytes=-200", 100, ranges(&[(0, 99)])),
            ("bytes=50-1000", 100, ranges(&[(50, 99)])),
            ("bytes=99-", 100, ranges(&[(99, 99)])),
            ("Bytes=0-0", 100, ranges(&[(0, 0)])),
            ("bytes=0-9, 20-29", 100, ranges(&[(0, 9), (20, 29)])),
            ("bytes=20-29,0-9", 100, ranges(&[(20, 29), (0, 9)])),
            ("bytes=0-9,,\t20-29 ,", 100, ranges(&[(0, 9), (20, 29)])),
            ("bytes=0-9,200-300", 100, ranges(&[(0, 9)])),
            ("bytes=0-99999999999999999999999", 100, ranges(&[(0, 99)])),
            ("bytes=-99999999999999999999999", 100, ranges(&[(0, 99)])),
            (
                sixteen.as_str(),
                100,
                RangePlan::Partial(
                    (0..16)
                        .map(|i| ByteRange {
                            first: i * 2,
                            last: i * 2,
                        })
                        .collect(),
                ),
            ),
            // Unsatisfiable: nothing overlaps the file.
            ("bytes=100-", 100, Unsatisfiable),
            ("bytes=100-200", 100, Unsatisfiable),
            ("bytes=-0", 100, Unsatisfiable),
            ("bytes=99999999999999999999-", 100, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=0-0", 0, Unsatisfiable),
            ("bytes=-5", 0, Unsatisfiable),
            // Invalid or foreign: ignored.
            ("bytes=5-4", 100, Full),
            ("bytes=", 100, Full),
            ("bytes=,", 100, Full),
            ("bytes=abc", 100, Full),
            ("bytes=1-2-3", 100, Full),
            ("bytes=+1-2", 100, Full),
            ("bytes=1 - 2", 100, Full),
            ("bytes= 0-1", 100, Full),
            ("bytes=\t,0-1", 100, Full),
            ("bytes=,\t0-1", 100, ranges(&[(0, 1)])),
            ("bytes=0-1 , ,", 100, ranges(&[(0, 1)])),
            ("bytes = 0-1", 100, Full),
            // Both ends too large for a u64, the last below the first: invalid, not 416.
            ("bytes=99999999999999999999-99999999999999999998", 100, Full),
            (
                "bytes=99999999999999999998-099999999999999999999",
                100,
                Unsatisfiable,
            ),
            ("bytes=010-9", 100, Full),
            ("bytes=09-10", 100, ranges(&[(9, 10)])),
            ("bytes=0-1,x", 100, Full),
            ("bytes 0-1", 100, Full),
            ("bytes", 100, Full),
            ("items=0-1", 100, Full),
            ("", 100, Full),
            // Abuse: too many ranges, or overlaps sending more than the file.
            (seventeen.as_str(), 100, Full),
            ("bytes=0-50,40-99", 100, Full),
            ("bytes=0-,0-,0-", 100, Full),
            // Two ranges of the largest file: their sum overflows, and is more than the file.
            ("bytes=-99999999999999999999,0-", u64::MAX, Full),
        ];
        for (value, len, expected) in rows {
            assert_eq!(
                parse_ranges(value.as_bytes(), len),
                expected,
                "{value:?} of {len}"
            );
        }
    }

    #[test]
    fn range_applies_to_get_with_a_matching_if_range() {
        let v = test_memory(b"0123456789").validators;
        let etag = v.etag.clone();
        let date = v.last_modified_text.clone();
        let one = ranges(&[(0, 0)]);
        // (method, header lines, plan)
        let rows: Vec<(&str, String, RangePlan)> = vec![
            ("GET", "Range: bytes=0-0\r\n".into(), one.clone()),
            ("HEAD", "Range: bytes=0-0\r\n".into(), RangePlan::Full),
            ("GET", String::new(), RangePlan::Full),
            (
                "GET",
                "Range: bytes=0-0\r\nRange: bytes=1-1\r\n".into(),
                RangePlan::Full,
            ),
            (
                "GET",
                format!("Range: bytes=0-0\r\nIf-Range: {etag}\r\n"),
                one.clone(),
            ),
            (
                "GET",
                format!("Range: bytes=0-0\r\nIf-Range: W/{etag}\r\n"),
                RangePlan::Full,
            ),
            (
                "GET",
                "Range: bytes=0-0\r\nIf-Range: \"other\"\r\n".into(),
                RangePlan::Full,
            ),
            (
                "GET",
                format!("Range: bytes=0-0\r\nIf-Range: {date}\r\n"),
                one.clone(),
            ),
            (
                "GET",
                "Range: bytes=0-0\r\nIf-Range: Sun, 06 Nov 1994 08:49:38 GMT\r\n".into(),
                RangePlan::Full,
            ),
            (
                "GET",
                "Range: bytes=0-0\r\nIf-Range: Sun, 06 Nov 1994 08:49:36 GMT\r\n".into(),
                RangePlan::Full,
            ),
            (
                "GET",
                "Range: bytes=0-0\r\nIf-Range: soon\r\n".into(),
                RangePlan::Full,
            ),
            (
                "GET",
                format!("Range: bytes=0-0\r\nIf-Range: {etag}\r\nIf-Range: {etag}\r\n"),
                RangePlan::Full,
            ),
            (
                "GET",
                "Range: bytes=10-\r\n".into(),
                RangePlan::Unsatisfiable,
            ),
        ];
        for (method, lines, expected) in rows {
            let head = test_request(method, "/f", &lines);
            assert_eq!(plan(&head, &v, 10), expected, "{method} {lines:?}");
        }
    }

    fn body_bytes(response: &Response) -> Vec<u8> {
        match &response.body {
            Body::Parts(parts) => parts
                .iter()
                .flat_map(|part| match part {
                    BodyPart::Bytes(bytes) => bytes.clone(),
                    BodyPart::File { .. } => b"<file>".to_vec(),
                })
                .collect(),
            Body::Bytes(bytes) => bytes.clone(),
            Body::Shared(bytes) => bytes.to_vec(),
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[test]
    fn multipart_body_and_amplification_guard() {
        let text: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let rep = test_memory(&text);
        let response = partial(
            &rep,
            &[
                ByteRange { first: 0, last: 2 },
                ByteRange {
                    first: 26,
                    last: 27,
                },
            ],
        );
        assert_eq!(response.status, 206);
        let content_type = response.header_value("Content-Type").expect("content type");
        let boundary = content_type
            .strip_prefix("multipart/byteranges; boundary=")
            .expect("multipart");
        let expected = format!(
            "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-2/1000\r\n\r\nabc\
             \r\n--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 26-27/1000\r\n\r\nab\
             \r\n--{boundary}--\r\n"
        );
        assert_eq!(
            String::from_utf8(body_bytes(&response)).expect("utf-8"),
            expected
        );
        assert_eq!(response.body.len(), expected.len() as u64);
        let head = String::from_utf8(
            response
                .encoded_headers
                .as_deref()
                .unwrap_or_default()
                .to_vec(),
        );
        assert!(
            !head.expect("utf-8").contains("Content-Type"),
            "one Content-Type only"
        );

        // Two ranges of a small file would send more than the file: send it whole.
        let small = test_memory(b"0123456789");
        let response = partial(
            &small,
            &[
                ByteRange { first: 0, last: 0 },
                ByteRange { first: 9, last: 9 },
            ],
        );
        assert_eq!(response.status, 200);
        assert_eq!(body_bytes(&response), b"0123456789");

        let response = unsatisfiable(10);
        assert_eq!(response.status, 416);
        assert_eq!(response.header_value("Content-Range"), Some("bytes */10"));
    }

    #[test]
    fn file_parts_share_one_open_file() {
        let mut file = tempfile::tempfile().expect("temp file");
        std::io::Write::write_all(&mut file, &[b'x'; 4096]).expect("write");
        let file = Arc::new(file);
        let identity = FileIdentity::of(&file.metadata().expect("metadata"));
        let rep = Representation::new(
            Source::File(file.clone()),
            &identity,
            "text/plain".into(),
            std::time::SystemTime::now(),
        );
        let response = partial(
            &rep,
            &[
                ByteRange { first: 0, last: 9 },
                ByteRange {
                    first: 100,
                    last: 199,
                },
            ],
        );
        let Body::Parts(parts) = &response.body else {
            panic!("multipart body expected");
        };
        let windows: Vec<(u64, u64)> = parts
            .iter()
            .filter_map(|part| match part {
                BodyPart::File {
                    file: f,
                    offset,
                    len,
                } if Arc::ptr_eq(f, &file) => Some((*offset, *len)),
                _ => None,
            })
            .collect();
        assert_eq!(windows, [(0, 10), (100, 100)]);
        let single = partial(
            &rep,
            &[ByteRange {
                first: 4000,
                last: 4095,
            }],
        );
        assert!(matches!(
            single.body,
            Body::File {
                offset: 4000,
                len: 96,
                ..
            }
        ));
        assert_eq!(
            single.header_value("Content-Range"),
            Some("bytes 4000-4095/4096")
        );
    }
}
