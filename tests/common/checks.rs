//! Assertions on what the server sent: the connection's fate (closed, still serving) and the
//! fields and formats every response must get right.

use super::client::{IO_TIMEOUT, Resp, get_req, is_timeout, read_response, send};
use super::site::STYLE_CSS;
use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, SystemTime};

/// Asserts that the server closes the connection without sending anything more: a read
/// returns end-of-file or a reset within the timeout.
pub fn assert_closed(stream: &mut impl Read) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => panic!(
                "expected the connection to close, but got {n} more bytes: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
            Err(e) if is_timeout(&e) => panic!("connection still open after {IO_TIMEOUT:?}"),
            Err(e) => panic!("unexpected error waiting for close: {e}"),
        }
    }
}

/// Asserts the connection still serves: `GET /style.css` on it returns the file.
pub fn assert_still_serves(stream: &mut (impl Read + Write)) {
    send(stream, &get_req("/style.css"));
    let resp = read_response(stream, false);
    assert_eq!(resp.status, 200, "follow-up request on the same connection");
    assert_eq!(resp.body, STYLE_CSS.as_bytes(), "follow-up body");
}

/// Asserts `value` is an IMF-fixdate (RFC 9110 section 5.6.7), the only form a server may
/// generate, and returns the time it names.
pub fn assert_imf_fixdate(value: &str) -> SystemTime {
    let time =
        httpdate::parse_http_date(value).unwrap_or_else(|_| panic!("not an HTTP-date: {value:?}"));
    // IMF-fixdate is the canonical form httpdate prints; obsolete forms print differently.
    assert_eq!(
        httpdate::fmt_http_date(time),
        value,
        "date is not in IMF-fixdate form"
    );
    time
}

/// Asserts the fields every response must carry: exactly one `Date` in IMF-fixdate close to
/// now, a non-empty `Server`, and a `Content-Length` wherever a body is defined (margay never
/// uses chunked responses), matching the body that was read.
pub fn assert_standard_headers(resp: &Resp, head_request: bool) {
    let dates = resp.headers_named("date");
    assert_eq!(dates.len(), 1, "exactly one Date field in {resp:?}");
    let date = assert_imf_fixdate(dates[0]);
    let now = SystemTime::now();
    let skew = match now.duration_since(date) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    assert!(
        skew < Duration::from_secs(60),
        "Date {:?} far from now",
        dates[0]
    );

    let server = resp.header("server").unwrap_or("");
    assert!(!server.is_empty(), "missing Server field in {resp:?}");

    let bodiless_status = resp.status < 200 || resp.status == 204 || resp.status == 304;
    if resp.status < 200 || resp.status == 204 {
        assert!(
            resp.header("content-length").is_none(),
            "Content-Length on a {} response",
            resp.status
        );
    } else if !bodiless_status {
        let len = resp
            .content_length()
            .unwrap_or_else(|| panic!("missing Content-Length in {resp:?}"));
        if !head_request {
            assert_eq!(len, resp.body.len() as u64, "Content-Length vs body");
        }
    }
    assert!(
        resp.header("transfer-encoding").is_none(),
        "unexpected Transfer-Encoding"
    );
}

/// Asserts an error response: the status, the standard fields, and an HTML body whose length
/// `Content-Length` states.
pub fn assert_error_page(resp: &Resp, status: u16) {
    assert_eq!(resp.status, status, "status of {resp:?}");
    assert_standard_headers(resp, false);
    let ct = resp
        .header("content-type")
        .unwrap_or_else(|| panic!("error {status} without Content-Type"));
    assert_eq!(media_type(ct).0, "text/html", "error page Content-Type");
    assert!(!resp.body.is_empty(), "error page has an empty body");
}

/// Splits a media type into its lowercased essence (`type/subtype`) and its parameters
/// (names lowercased, values unquoted).
pub fn media_type(value: &str) -> (String, Vec<(String, String)>) {
    let mut parts = value.split(';');
    let essence = parts.next().unwrap().trim().to_ascii_lowercase();
    let params = parts
        .filter_map(|p| {
            let (n, v) = p.split_once('=')?;
            Some((
                n.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            ))
        })
        .collect();
    (essence, params)
}

/// The `charset` parameter of a media type, lowercased.
pub fn charset(value: &str) -> Option<String> {
    media_type(value)
        .1
        .into_iter()
        .find(|(n, _)| n == "charset")
        .map(|(_, v)| v.to_ascii_lowercase())
}

/// Asserts `etag` is a strong entity-tag: `"` etagc* `"` with no `W/` prefix.
pub fn assert_strong_etag(etag: &str) {
    assert!(!etag.starts_with("W/"), "ETag {etag:?} is weak");
    assert!(
        etag.len() >= 2 && etag.starts_with('"') && etag.ends_with('"'),
        "ETag {etag:?} not quoted"
    );
    let inner = &etag.as_bytes()[1..etag.len() - 1];
    assert!(
        inner
            .iter()
            .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80),
        "ETag {etag:?} has characters outside etagc"
    );
}
