//! The request-target: its form, its path and query, percent-decoding exactly once, and
//! dot-segment removal that can never climb above `/`.

use super::authority::parse_host_port;
use super::error::RequestError;
use std::ops::Range;

/// Where the parts of a request-target lie, and its decoded path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The still-encoded path within the target (may be empty for `http://host`).
    pub raw_path: Range<usize>,
    /// The query within the target, without the `?`.
    pub query: Option<Range<usize>>,
    /// The path decoded once, with `.` and `..` segments resolved and `//` folded.
    pub path: String,
}

/// Splits and decodes a request-target in origin form (`/a?b`), absolute form
/// (`http://host/a?b`) or asterisk form (`*`), by the grammar of RFC 9112 section 3.2 and
/// RFC 3986: every byte of the path must be a `pchar` or `/`, every byte of the query a
/// `pchar`, `/` or `?`, every `%` the start of a `pct-encoded`.
pub fn parse_target(target: &str) -> Result<Target, RequestError> {
    parse_target_into(target, String::new())
}

/// [`parse_target`], building the path in `path`'s allocation (its contents are discarded)
/// when the path needs no decoding, as nearly every path does.
pub fn parse_target_into(target: &str, mut path: String) -> Result<Target, RequestError> {
    if target == "*" {
        return Ok(Target {
            raw_path: 0..1,
            query: None,
            path: "*".to_string(),
        });
    }
    let path_start = if target.starts_with('/') {
        0
    } else {
        authority_end(target).ok_or(RequestError::BadTarget)?
    };
    // One pass over the path: that every byte may stand there, where the query starts, and
    // whether the path needs decoding or dot-segment removal at all (most do not). Plain
    // bytes, nearly all, cost one lookup.
    let bytes = target.as_bytes();
    let (mut query_at, mut escaped, mut dotted, mut after_slash) = (None, false, false, false);
    for (i, &byte) in bytes[path_start..].iter().enumerate() {
        match PATH_BYTES[byte as usize] {
            Class::Plain => {
                after_slash = false;
                continue;
            }
            Class::Refused => return Err(RequestError::BadTarget),
            Class::Notable => {}
        }
        match byte {
            b'?' => {
                query_at = Some(path_start + i);
                break;
            }
            b'%' => escaped = true,
            _ => dotted |= after_slash, // `/.` or `//`
        }
        after_slash = byte == b'/';
    }
    if let Some(q) = query_at
        && !is_query(&bytes[q + 1..])
    {
        return Err(RequestError::BadTarget);
    }
    let path_end = query_at.unwrap_or(target.len());
    let raw = match &target[path_start..path_end] {
        "" => "/",
        raw => raw,
    };
    let (decoded, dotted) = if escaped {
        let decoded = percent_decode(raw)?;
        let dotted = decoded.contains("/.") || decoded.contains("//");
        (decoded, dotted)
    } else {
        path.clear();
        path.push_str(raw);
        (path, dotted)
    };
    let path = match dotted {
        true => remove_dot_segments(&decoded)?,
        false if decoded.starts_with('/') => decoded,
        false => return Err(RequestError::BadTarget),
    };
    Ok(Target {
        raw_path: path_start..path_end,
        query: query_at.map(|q| q + 1..target.len()),
        path,
    })
}

/// How the path loop treats a byte.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A `pchar` that needs no further look (`.` is a pchar, but notable).
    Plain,
    /// `/`, `.`, `%` and `?`: the bytes that end the path or may need decoding or dot-segment
    /// removal.
    Notable,
    /// Anything else: not allowed in a request-target's path.
    Refused,
}

/// `unreserved / sub-delims / ":" / "@"`: the bytes a `pchar` may be without escaping.
const PCHAR: &[u8] = b"-._~!$&'()*+,;=:@";

/// Whether `byte` may stand in a path segment unescaped (`pchar` but `pct-encoded`).
pub fn is_pchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || PCHAR.contains(&byte)
}

/// Whether `byte` is `unreserved` (RFC 3986 section 2.3): escaped or not, the same.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

const PATH_BYTES: [Class; 256] = {
    let mut table = [Class::Refused; 256];
    let mut b = 0;
    while b < 256 {
        if (b as u8).is_ascii_alphanumeric() {
            table[b] = Class::Plain;
        }
        b += 1;
    }
    let mut i = 0;
    while i < PCHAR.len() {
        table[PCHAR[i] as usize] = Class::Plain;
        i += 1;
    }
    let notable = b"/.%?";
    let mut i = 0;
    while i < notable.len() {
        table[notable[i] as usize] = Class::Notable;
        i += 1;
    }
    table
};

/// `query = *( pchar / "/" / "?" )`, and the printable bytes browsers send in a query
/// without escaping them (the WHATWG URL standard's query set leaves `[ \ ] ^ ` { | }`
/// alone), so a link a browser follows is not refused; space, `"`, `<`, `>`, `#`, control
/// and non-ASCII bytes still are.
fn is_query(query: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&byte) = query.get(i) {
        i += match (PATH_BYTES[byte as usize], byte) {
            (_, b'%') => match query.get(i + 1..i + 3) {
                Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => 3,
                _ => return false,
            },
            (Class::Plain | Class::Notable, _) => 1,
            (_, b'[' | b'\\' | b']' | b'^' | b'`' | b'{' | b'|' | b'}') => 1,
            (Class::Refused, _) => return false,
        };
    }
    true
}

/// For an absolute-form target, the index where the path begins (after `scheme://authority`).
/// Only `http` and `https` are served; their authority must be `host [ ":" port ]` with a
/// host (RFC 9110 section 4.2.1) and no userinfo (4.2.4).
fn authority_end(target: &str) -> Option<usize> {
    let scheme_len = if starts_with_ignore_case(target, "http://") {
        7
    } else if starts_with_ignore_case(target, "https://") {
        8
    } else {
        return None;
    };
    let rest = &target.as_bytes()[scheme_len..];
    let authority_len = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    // `@` is no reg-name byte, so userinfo fails here too.
    let host = parse_host_port(&rest[..authority_len])?;
    (host.host_len > 0).then_some(scheme_len + authority_len)
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Decodes `%XX` escapes once. A bad escape, an encoded NUL or bytes that are not UTF-8 are
/// refused.
pub fn percent_decode(raw: &str) -> Result<String, RequestError> {
    if !raw.contains('%') {
        return Ok(raw.to_string());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16));
            match (hi, lo) {
                (Some(hi), Some(lo)) if hi != 0 || lo != 0 => out.push((hi * 16 + lo) as u8),
                _ => return Err(RequestError::BadTarget),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| RequestError::BadTarget)
}

/// `raw`, a path as the client wrote it, normalised without losing what its escapes say:
/// escaped unreserved characters decoded, other escapes' hex in capitals, dot segments
/// resolved and empty ones folded. `None` if that no longer decodes to `decoded`, the path
/// as margay reads it: an escaped `/` that would have made or climbed other segments
/// (`/a%2F..%2Fb`, which margay reads as `/b`).
pub fn keep_escapes(raw: &str, decoded: &str) -> Option<String> {
    let mut light = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('%') {
        light.push_str(&rest[..at]);
        let hex = rest.get(at + 1..at + 3)?;
        let byte = u8::from_str_radix(hex, 16).ok()?;
        if is_unreserved(byte) {
            light.push(byte as char);
        } else {
            light.push('%');
            light.push_str(&hex.to_ascii_uppercase());
        }
        rest = &rest[at + 3..];
    }
    light.push_str(rest);
    let normal = remove_dot_segments(&light).ok()?;
    (percent_decode(&normal).ok()? == decoded).then_some(normal)
}

/// Resolves `.` and `..` segments and folds empty ones, refusing any path that would climb
/// above the root. The result starts with `/` and keeps a trailing slash.
pub fn remove_dot_segments(path: &str) -> Result<String, RequestError> {
    if !path.starts_with('/') || path.contains('\0') {
        return Err(RequestError::BadTarget);
    }
    if !path.contains("/.") && !path.contains("//") {
        return Ok(path.to_string());
    }
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path[1..].split('/') {
        trailing_slash = false;
        match segment {
            "" | "." => trailing_slash = true,
            ".." => {
                segments.pop().ok_or(RequestError::BadTarget)?;
                trailing_slash = true;
            }
            name => segments.push(name),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || segments.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_paths() {
        // (target, decoded path or None when refused)
        let rows: &[(&str, Option<&str>)] = &[
            ("/", Some("/")),
            ("/index.html", Some("/index.html")),
            ("/a/b/", Some("/a/b/")),
            ("/with%20space.txt", Some("/with space.txt")),
            ("/a//b", Some("/a/b")),
            ("/a/./b", Some("/a/b")),
            ("/a/b/..", Some("/a/")),
            ("/a/b/../c", Some("/a/c")),
            ("/a/.", Some("/a/")),
            ("/..", None),
            ("/../etc/passwd", None),
            ("/a/../../etc/passwd", None),
            ("/%2e%2e/etc/passwd", None),
            ("/%2E%2E/etc/passwd", None),
            ("/a/%2e%2e/%2e%2e/x", None),
            ("/%2f..%2f..%2fetc", None),
            ("/a%2f..%2fb", Some("/b")),
            ("/%252e%252e/x", Some("/%2e%2e/x")),
            ("/..%5c..%5cx", Some("/..\\..\\x")),
            ("/a%00b", None),
            ("/%zz", None),
            ("/%4", None),
            ("/%", None),
            ("/%c3%a9", Some("/é")),
            ("/%ff", None),
            ("/x?y=1", Some("/x")),
            ("/x?a=%zz", None),
            ("/x?a=%4", None),
            ("/x?a=%41&b=/?c:@", Some("/x")),
            ("/a:b@c!$&'()*+,;=~_-", Some("/a:b@c!$&'()*+,;=~_-")),
            ("/a\\b", None),
            ("/a\"b", None),
            ("/a<b>", None),
            ("/a[0]", None),
            ("/a{b}", None),
            ("/a|b", None),
            ("/a^b", None),
            ("/a`b", None),
            ("/a b", None),
            ("/\u{e9}", None),
            ("/x?{\"a\":1}", None),
            ("/x?{a:1}", Some("/x")),
            ("/x?a|b[0]^c`d\\e", Some("/x")),
            ("/x?a<b", None),
            ("/x?a#b", None),
            ("/x?a b", None),
            ("http://[::1]:8080/a", Some("/a")),
            ("http://h:/a", Some("/a")),
            ("http://user@h/a", None),
            ("http://:80/a", None),
            ("http://h:8o/a", None),
            ("http://[::1/a", None),
            ("http://h\\x/a", None),
            ("http://example.com/a/b?q", Some("/a/b")),
            ("HTTP://example.com", Some("/")),
            ("https://example.com?q=1", Some("/")),
            ("http:///a", None),
            ("ftp://example.com/a", None),
            ("example.com:80", None),
            ("a/b", None),
            ("/a#frag", None),
            ("/x?a#b", None),
            ("/a.b/c.d", Some("/a.b/c.d")),
            ("/.hidden", Some("/.hidden")),
            ("/a/%2e/b", Some("/a/b")),
            ("/a/b?x=/../..//", Some("/a/b")),
            ("*", Some("*")),
        ];
        for (target, expected) in rows {
            let got = parse_target(target).map(|t| t.path).ok();
            assert_eq!(got.as_deref(), *expected, "target {target:?}");
        }
    }

    #[test]
    fn raw_path_and_query_ranges() {
        let target = "http://h:80/a%20b?x=1&y";
        let parsed = parse_target(target).unwrap();
        assert_eq!(&target[parsed.raw_path], "/a%20b");
        assert_eq!(&target[parsed.query.unwrap()], "x=1&y");
        let parsed = parse_target("/p").unwrap();
        assert_eq!(parsed.query, None);
    }
}
