//! Redirect targets: a template with `{n}` for what the pattern's wildcards matched, checked
//! when the rules load and filled in per request so that no request can put a line break, a
//! second host or anything but a URL into `Location`.

use crate::http::StatusCode;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// Escaped in a captured piece of path: everything that could end the path, start a query or
/// fragment, or is not allowed in a URL as it is. `/` stays, so `**` keeps its directories.
const CAPTURE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Escaped in a query passed on: it is still percent-encoded as the client sent it, so `%`
/// and `?` stay as they are.
const QUERY: &AsciiSet = &CAPTURE.remove(b'%').remove(b'?');

/// The statuses a redirect rule may answer with.
pub(crate) const STATUSES: [u16; 4] = [301, 302, 307, 308];

/// A redirect: where to, with what status, and whether it applies even where a file exists.
#[derive(Debug, Clone)]
pub(crate) struct Redirect {
    to: String,
    parts: Vec<Part>,
    status: StatusCode,
    force: bool,
    /// Where the target's path begins (after `https://host`): runs of `/` are folded from
    /// here, so an empty capture cannot turn the path into `//host`.
    path_start: usize,
    /// Whether the target has its own query or fragment (then the request's is not added).
    has_query: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Capture(usize),
}

impl Redirect {
    /// Checks a target template against a pattern with `captures` capturable wildcards
    /// (`None`: the pattern cannot be captured from).
    pub(crate) fn parse(
        to: &str,
        status: u16,
        force: bool,
        captures: Option<usize>,
    ) -> Result<Redirect, (&'static str, String)> {
        if !STATUSES.contains(&status) {
            return Err(("status", "expected 301, 302, 307 or 308".into()));
        }
        let status = StatusCode::from_u16(status).ok_or(("status", String::new()))?;
        let bad = |message: String| ("to", message);
        if let Some(c) = to
            .chars()
            .find(|&c| !c.is_ascii_graphic() || "\\\"<>^`|".contains(c))
        {
            return Err(bad(format!(
                "{c:?} cannot appear in a URL; percent-encode it"
            )));
        }
        let path_start = if to.starts_with("//") {
            return Err(bad(
                "a target starting with // names another host; write https://host/...".into(),
            ));
        } else if to.starts_with('/') {
            0
        } else if let Some(after) = to
            .strip_prefix("https://")
            .or_else(|| to.strip_prefix("http://"))
        {
            let host_len = after.find(['/', '?', '#']).unwrap_or(after.len());
            let host = &after[..host_len];
            if host.is_empty() || host.contains(['{', '}', '@']) {
                return Err(bad(format!(
                    "{to:?} needs a host of its own, with no capture and no user"
                )));
            }
            to.len() - after.len() + host_len
        } else {
            return Err(bad(
                "expected a path starting with / or an http:// or https:// URL".into(),
            ));
        };
        let parts = template_parts(to).map_err(bad)?;
        for part in &parts {
            if let Part::Capture(n) = part {
                match captures {
                    None => {
                        return Err(bad(format!(
                            "{{{n}}}: the pattern uses classes or alternatives, which cannot be captured"
                        )));
                    }
                    Some(available) if *n == 0 || *n > available => {
                        return Err(bad(format!(
                            "{{{n}}}: the pattern has {available} wildcard(s), numbered from 1"
                        )));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(Redirect {
            to: to.to_string(),
            parts,
            status,
            force,
            path_start,
            has_query: to.contains(['?', '#']),
        })
    }

    /// The target as written.
    pub(crate) fn to(&self) -> &str {
        &self.to
    }

    /// The status it answers with.
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// Whether it applies even where a file or handler would answer.
    pub(crate) fn is_forced(&self) -> bool {
        self.force
    }

    /// The `Location` for a request whose wildcards matched `captures` and whose query (still
    /// encoded) was `query`.
    pub(crate) fn location(&self, captures: &[&str], query: Option<&str>) -> String {
        let mut out = String::with_capacity(self.to.len() + 32);
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Capture(n) => {
                    let text = captures.get(n - 1).copied().unwrap_or_default();
                    out.extend(utf8_percent_encode(text, CAPTURE));
                }
            }
        }
        let path_end = out[self.path_start..]
            .find(['?', '#'])
            .map_or(out.len(), |i| self.path_start + i);
        let folded = fold_slashes(&out[self.path_start..path_end]);
        out.replace_range(self.path_start..path_end, &folded);
        if !self.has_query
            && let Some(query) = query.filter(|q| !q.is_empty())
        {
            out.push('?');
            out.extend(utf8_percent_encode(query, QUERY));
        }
        out
    }
}

/// Splits a template into literal text and `{n}` captures.
fn template_parts(to: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = to;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err("a } without its {; captures are written {1}, {2}, ...".into());
        }
        if open > 0 {
            parts.push(Part::Literal(rest[..open].to_string()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or("a { without its }; captures are written {1}, {2}, ...")?;
        let number = &rest[open + 1..open + close];
        let n = number
            .parse::<usize>()
            .ok()
            .filter(|_| number.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                format!("{{{number}}} is not a capture; they are written {{1}}, {{2}}, ...")
            })?;
        parts.push(Part::Capture(n));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest.to_string()));
    }
    Ok(parts)
}

/// `path` with every run of `/` made one.
fn fold_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_checked_when_loaded() {
        // (target, status, capturable wildcards, error naming this key, or accepted)
        let rows: &[(&str, u16, Option<usize>, Option<&str>)] = &[
            ("/new/{1}", 301, Some(1), None),
            ("/new/{1}", 308, Some(1), None),
            ("https://example.com/{1}", 302, Some(1), None),
            ("https://example.com", 307, Some(0), None),
            ("/new/{1}", 300, Some(1), Some("status")),
            ("/new/{1}", 303, Some(1), Some("status")),
            ("/new/{2}", 301, Some(1), Some("to")),
            ("/new/{0}", 301, Some(1), Some("to")),
            ("/new/{1}", 301, None, Some("to")),
            ("/new/{x}", 301, Some(1), Some("to")),
            ("/new/{1", 301, Some(1), Some("to")),
            ("/new/1}", 301, Some(1), Some("to")),
            ("//evil.example/", 301, Some(0), Some("to")),
            ("new/page", 301, Some(0), Some("to")),
            ("javascript:alert(1)", 301, Some(0), Some("to")),
            ("https://{1}.example.com/", 301, Some(1), Some("to")),
            ("https:///path", 301, Some(0), Some("to")),
            ("https://user@evil.example/", 301, Some(0), Some("to")),
            ("/a b", 301, Some(0), Some("to")),
            ("/a\r\nSet-Cookie: x=1", 301, Some(0), Some("to")),
            ("/a\\b", 301, Some(0), Some("to")),
        ];
        for (to, status, captures, error) in rows {
            let got = Redirect::parse(to, *status, false, *captures);
            assert_eq!(
                got.as_ref().err().map(|e| e.0),
                *error,
                "{to:?} {status}: {got:?}"
            );
        }
    }

    #[test]
    fn locations_escape_what_the_request_brought() {
        // (target, captures, query, Location)
        let rows: &[(&str, &[&str], Option<&str>, &str)] = &[
            ("/new/{1}", &["page"], None, "/new/page"),
            (
                "/new/{1}",
                &["page"],
                Some("a=1&b=%20"),
                "/new/page?a=1&b=%20",
            ),
            (
                "/new/{1}?from=old",
                &["page"],
                Some("a=1"),
                "/new/page?from=old",
            ),
            (
                "/new/{1}",
                &["a\r\nSet-Cookie: x=1"],
                None,
                "/new/a%0D%0ASet-Cookie:%20x=1",
            ),
            ("/new/{1}", &["a b?c#d%e"], None, "/new/a%20b%3Fc%23d%25e"),
            ("/new/{1}", &["caf\u{e9}"], None, "/new/caf%C3%A9"),
            ("/{1}", &["/evil.example"], None, "/evil.example"),
            ("/{1}", &["//evil.example/x"], None, "/evil.example/x"),
            ("/{1}/{2}", &["", "x"], None, "/x"),
            ("/{1}", &["\\evil.example"], None, "/%5Cevil.example"),
            (
                "https://example.com/{1}",
                &["/a"],
                None,
                "https://example.com/a",
            ),
            (
                "https://example.com/docs/{1}",
                &["a/b"],
                Some("q"),
                "https://example.com/docs/a/b?q",
            ),
            ("/new", &[], Some("x=\"<>\""), "/new?x=%22%3C%3E%22"),
        ];
        for (to, captures, query, expected) in rows {
            let redirect = Redirect::parse(to, 301, false, Some(captures.len())).expect(to);
            let location = redirect.location(captures, *query);
            assert_eq!(location, *expected, "{to} {captures:?} {query:?}");
            assert!(
                location.bytes().all(|b| b.is_ascii_graphic()),
                "{location:?}"
            );
        }
    }
}
