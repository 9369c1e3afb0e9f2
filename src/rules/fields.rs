//! What a rule may put in a response header: a field name that is a token, a value of
//! visible ASCII, and never a field the server writes or derives itself.

use crate::http::fields::is_tchar;

/// Fields the encoder, the connection or the file logic own: a rule that set them would
/// contradict the framing, the persistence or the validators the server computes.
const SERVER_OWNED: &[&str] = &[
    "Content-Length",
    "Transfer-Encoding",
    "Connection",
    "Keep-Alive",
    "Upgrade",
    "Trailer",
    "TE",
    "Proxy-Connection",
    "Date",
    "Server",
    "Content-Range",
    "Accept-Ranges",
    "ETag",
    "Last-Modified",
];

/// Whether `name` is a field name (RFC 9110 section 5.1: a token).
pub(crate) fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(is_tchar)
}

/// Checks a field value: visible ASCII, spaces and tabs inside, nothing that could end the
/// line (CR, LF) or the string (NUL).
pub(crate) fn check_value(value: &str) -> Result<(), String> {
    if let Some(bad) = value
        .bytes()
        .find(|&b| !(b == b' ' || b == b'\t' || b.is_ascii_graphic()))
    {
        return Err(format!(
            "the value holds the byte 0x{bad:02X}; only visible ASCII, spaces and tabs are allowed"
        ));
    }
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return Err("the value starts or ends with white space".into());
    }
    Ok(())
}

/// Checks a header a rule adds to responses.
pub(crate) fn check_rule_header(name: &str, value: &str) -> Result<(), String> {
    if !is_token(name) {
        return Err(format!("{name:?} is not a header field name (a token)"));
    }
    if let Some(owned) = SERVER_OWNED.iter().find(|o| o.eq_ignore_ascii_case(name)) {
        return Err(format!(
            "{owned} is written by the server; a rule cannot set it"
        ));
    }
    check_value(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_headers() {
        // (name, value, accepted)
        let rows: &[(&str, &str, bool)] = &[
            ("Cache-Control", "public, max-age=31536000, immutable", true),
            ("X-Content-Type-Options", "nosniff", true),
            (
                "Content-Security-Policy",
                "default-src 'self'; img-src *",
                true,
            ),
            ("Content-Type", "application/wasm", true),
            ("X-Empty", "", true),
            ("X-Tab", "a\tb", true),
            ("", "x", false),
            ("Bad Name", "x", false),
            ("Bad:Name", "x", false),
            ("X-Injected", "a\r\nSet-Cookie: evil=1", false),
            ("X-Lf", "a\nb", false),
            ("X-Nul", "a\0b", false),
            ("X-Utf8", "caf\u{e9}", false),
            ("X-Space", " padded", false),
            ("content-length", "5", false),
            ("Transfer-Encoding", "chunked", false),
            ("CONNECTION", "close", false),
            ("Date", "today", false),
            ("Server", "apache", false),
            ("ETag", "\"x\"", false),
        ];
        for (name, value, accepted) in rows {
            assert_eq!(
                check_rule_header(name, value).is_ok(),
                *accepted,
                "{name:?}: {value:?} -> {:?}",
                check_rule_header(name, value)
            );
        }
    }
}
