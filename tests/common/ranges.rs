//! Byte-range responses taken apart: `Content-Range` values, `multipart/byteranges` bodies,
//! and a check that every 200 or 206 carries exactly the bytes it claims.

use super::checks::media_type;
use super::client::Resp;

/// A parsed `Content-Range` value: `bytes first-last/complete` or `bytes */complete`.
#[derive(Debug, PartialEq, Eq)]
pub struct ContentRange {
    pub range: Option<(u64, u64)>,
    pub complete: Option<u64>,
}

/// Parses a `Content-Range` value, panicking on anything malformed.
pub fn parse_content_range(value: &str) -> ContentRange {
    let rest = value
        .strip_prefix("bytes ")
        .unwrap_or_else(|| panic!("Content-Range without `bytes `: {value:?}"));
    let (range, complete) = rest
        .split_once('/')
        .unwrap_or_else(|| panic!("Content-Range without '/': {value:?}"));
    let complete = if complete == "*" {
        None
    } else {
        Some(
            complete
                .parse()
                .unwrap_or_else(|_| panic!("bad length in {value:?}")),
        )
    };
    let range = if range == "*" {
        None
    } else {
        let (a, b) = range
            .split_once('-')
            .unwrap_or_else(|| panic!("bad range in {value:?}"));
        let a: u64 = a
            .parse()
            .unwrap_or_else(|_| panic!("bad first-pos in {value:?}"));
        let b: u64 = b
            .parse()
            .unwrap_or_else(|_| panic!("bad last-pos in {value:?}"));
        assert!(a <= b, "first-pos > last-pos in {value:?}");
        Some((a, b))
    };
    ContentRange { range, complete }
}

/// What a response to a range request turned out to be, once checked for consistency.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// 200 with the whole representation.
    Full,
    /// 206 with one range.
    Single(u64, u64),
    /// 206 `multipart/byteranges` with these parts, in order.
    Multi(Vec<(u64, u64)>),
}

/// Checks that a 200 or 206 response to a range request is self-consistent against the full
/// content: a 200 carries the whole file; a single-part 206 carries exactly the bytes its
/// `Content-Range` names; a multipart 206 has parts that each do.
pub fn check_range_response(resp: &Resp, full: &[u8]) -> RangeOutcome {
    let total = full.len() as u64;
    match resp.status {
        200 => {
            assert_eq!(
                resp.body, full,
                "200 to a range request must carry the whole file"
            );
            RangeOutcome::Full
        }
        206 => {
            let ct = resp.header("content-type").unwrap_or("");
            let (essence, params) = media_type(ct);
            if essence == "multipart/byteranges" {
                assert!(
                    resp.header("content-range").is_none(),
                    "a multipart 206 must not carry a top-level Content-Range"
                );
                let boundary = params
                    .iter()
                    .find(|(n, _)| n == "boundary")
                    .map(|(_, v)| v.clone())
                    .expect("multipart/byteranges without boundary");
                let parts = parse_multipart(&resp.body, &boundary);
                assert!(!parts.is_empty(), "multipart 206 with no parts");
                let mut ranges = Vec::new();
                for part in &parts {
                    let cr = part
                        .header("content-range")
                        .unwrap_or_else(|| panic!("part without Content-Range: {part:?}"));
                    let cr = parse_content_range(cr);
                    assert_eq!(cr.complete, Some(total), "complete length in part");
                    let (a, b) = cr.range.expect("part with unsatisfied range");
                    assert!(b < total, "part range beyond the file");
                    assert_eq!(
                        part.body,
                        &full[a as usize..=b as usize],
                        "part bytes for {a}-{b}"
                    );
                    ranges.push((a, b));
                }
                RangeOutcome::Multi(ranges)
            } else {
                let cr = resp
                    .header("content-range")
                    .expect("single-part 206 without Content-Range");
                let cr = parse_content_range(cr);
                assert_eq!(cr.complete, Some(total), "complete length in Content-Range");
                let (a, b) = cr
                    .range
                    .expect("206 with an unsatisfied-range Content-Range");
                assert!(b < total, "range beyond the file");
                assert_eq!(
                    resp.body,
                    &full[a as usize..=b as usize],
                    "206 bytes for {a}-{b}"
                );
                RangeOutcome::Single(a, b)
            }
        }
        other => panic!(
            "expected 200 or 206 to a range request, got {other}: {:?}",
            resp.text()
        ),
    }
}

/// One part of a multipart body.
#[derive(Debug)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Part {
    /// The first part header called `name`, case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > haystack.len() {
        return None;
    }
    haystack[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// Parses a multipart body (RFC 2046 section 5.1.1): optional preamble, `--boundary` lines
/// each followed by part headers, a blank line and content, and a closing `--boundary--`.
pub fn parse_multipart(body: &[u8], boundary: &str) -> Vec<Part> {
    let dash = format!("--{boundary}").into_bytes();
    let delim = format!("\r\n--{boundary}").into_bytes();
    let mut pos = if body.starts_with(&dash) {
        dash.len()
    } else {
        find(body, &delim, 0).expect("no first boundary in multipart body") + delim.len()
    };
    let mut parts = Vec::new();
    loop {
        if body[pos..].starts_with(b"--") {
            return parts; // close delimiter; an epilogue may follow
        }
        // Transport padding, then CRLF.
        while body.get(pos).is_some_and(|&b| b == b' ' || b == b'\t') {
            pos += 1;
        }
        assert!(
            body[pos..].starts_with(b"\r\n"),
            "boundary line not ended by CRLF"
        );
        pos += 2;
        let mut headers = Vec::new();
        loop {
            let end = find(body, b"\r\n", pos).expect("unterminated part header");
            let line = std::str::from_utf8(&body[pos..end]).expect("part header not UTF-8");
            pos = end + 2;
            if line.is_empty() {
                break;
            }
            let (n, v) = line.split_once(':').expect("part header without colon");
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
        let end = find(body, &delim, pos).expect("part not followed by a boundary");
        parts.push(Part {
            headers,
            body: body[pos..end].to_vec(),
        });
        pos = end + delim.len();
    }
}
