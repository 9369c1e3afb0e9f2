//! What is forwarded where: a path prefix, the upstream servers behind it, and whether the
//! prefix is kept or replaced; and the settings every rule shares.

use crate::http::target::{is_pchar, keep_escapes, parse_target};
use std::borrow::Cow;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

/// An upstream server of a rule: `http://HOST:PORT[/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Its address (the host name resolved once, at start; a name with several addresses
    /// is one upstream for each, as nginx has it).
    pub addr: SocketAddr,
    /// `HOST:PORT` as written, for a rewritten `Host`.
    pub authority: String,
    /// The path the prefix is replaced by, if the URL has one.
    pub path: Option<String>,
}

/// Requests whose path starts with `prefix` go to one of `upstreams`.
///
/// Written `PREFIX=URL[,URL...]`, e.g. `/api/=http://127.0.0.1:9000,http://127.0.0.1:9001`.
/// The prefix is kept (`/api/x` goes upstream as `/api/x`) unless the URLs have a path, which
/// then replaces it, as nginx's `proxy_pass` does (`/api/=http://app:9000/` sends `/api/x` as
/// `/x`); [`ProxyRule::strip_prefix`] says so explicitly. A prefix that ends in `/` covers
/// every path under it; one that does not covers itself and the paths under `PREFIX/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRule {
    /// The path prefix.
    pub prefix: String,
    /// The servers, in order.
    pub upstreams: Vec<Upstream>,
    /// Whether the prefix is replaced by the upstream URL's path (or `/`).
    pub strip: bool,
}

/// A rule or an upstream URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRuleError(String);

impl fmt::Display for ProxyRuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProxyRuleError {}

impl ProxyRule {
    /// Requests under `prefix` go to `urls` (`http://HOST:PORT[/path]`).
    pub fn new(prefix: &str, urls: &[&str]) -> Result<ProxyRule, ProxyRuleError> {
        if !prefix.starts_with('/') {
            return Err(ProxyRuleError(format!(
                "proxy prefix {prefix:?} must start with /"
            )));
        }
        if urls.is_empty() {
            return Err(ProxyRuleError(format!(
                "proxy prefix {prefix}: no upstream URL"
            )));
        }
        let mut upstreams = Vec::new();
        for url in urls {
            upstreams.extend(parse_url(url.trim())?);
        }
        let strip = upstreams.iter().any(|u| u.path.is_some());
        Ok(ProxyRule {
            prefix: prefix.to_string(),
            upstreams,
            strip,
        })
    }

    /// Says explicitly whether the prefix is replaced (by the URL's path, or `/`) or kept.
    pub fn strip_prefix(mut self, strip: bool) -> ProxyRule {
        self.strip = strip;
        self
    }

    /// Whether this rule covers `path`.
    pub fn covers(&self, path: &str) -> bool {
        let prefix = self.prefix.as_str();
        if prefix.ends_with('/') {
            return path.starts_with(prefix);
        }
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|r| r.starts_with('/'))
    }

    /// The path a request is sent upstream with, by `upstream`, as it goes on the request
    /// line. `path` is the request's path as margay reads it (decoded, normalised), `raw` as
    /// the client wrote it. The client's escapes are kept (RFC 3986 section 2.2: an escaped
    /// `/` or `;` is not the character itself, and an application may tell them apart),
    /// unless they would make another path of it than the one margay routed by; then that
    /// path is sent, escaped anew. Borrowed from `path` where nothing was escaped and it is
    /// sent as it is (kept, or stripped to a rest that starts with `/` for an upstream at
    /// `/`): no allocation per request.
    pub fn upstream_path<'a>(&self, path: &'a str, raw: &str, upstream: &Upstream) -> Cow<'a, str> {
        let cut = self.prefix.len().min(path.len());
        let base = upstream.path.as_deref().unwrap_or("/");
        let rewritten = |path: &'a str| match self.strip {
            true => join(base, &path[cut..]),
            false => Cow::Borrowed(path),
        };
        if !raw.contains('%') {
            // Nothing escaped: the path as read is the path as written, normalised.
            return rewritten(path);
        }
        match keep_escapes(raw, path) {
            Some(kept) if !self.strip => Cow::Owned(kept),
            Some(kept) => {
                // Where the prefix ends in the escaped form: one byte read per escape.
                let (mut at, mut read) = (0, 0);
                while read < cut {
                    at += if kept.as_bytes()[at] == b'%' { 3 } else { 1 };
                    read += 1;
                }
                Cow::Owned(join(base, &kept[at..]).into_owned())
            }
            None => {
                let mut escaped = Vec::with_capacity(path.len() + 8);
                encode_path(&rewritten(path), &mut escaped);
                Cow::Owned(String::from_utf8(escaped).expect("escaped to ASCII"))
            }
        }
    }
}

/// Percent-encodes a decoded path for the request line: `/`, unreserved characters and the
/// sub-delims RFC 3986 allows in a segment stay, everything else is escaped.
fn encode_path(path: &str, out: &mut Vec<u8>) {
    for &b in path.as_bytes() {
        if b == b'/' || is_pchar(b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
}

/// `rest` after the upstream's `base` path, with one `/` between them.
fn join<'a>(base: &str, rest: &'a str) -> Cow<'a, str> {
    match (base.ends_with('/'), rest.starts_with('/')) {
        (true, true) if base == "/" => Cow::Borrowed(rest),
        (true, true) => Cow::Owned(format!("{base}{}", &rest[1..])),
        (false, false) if !rest.is_empty() => Cow::Owned(format!("{base}/{rest}")),
        _ => Cow::Owned(format!("{base}{rest}")),
    }
}

impl FromStr for ProxyRule {
    type Err = ProxyRuleError;

    /// `PREFIX=URL[,URL...]`.
    fn from_str(text: &str) -> Result<ProxyRule, ProxyRuleError> {
        let (prefix, urls) = text
            .split_once('=')
            .ok_or_else(|| ProxyRuleError(format!("{text:?}: expected PREFIX=URL[,URL...]")))?;
        let urls: Vec<&str> = urls.split(',').filter(|u| !u.trim().is_empty()).collect();
        ProxyRule::new(prefix, &urls)
    }
}

/// The upstreams a URL names: one for each address its host resolves to.
fn parse_url(url: &str) -> Result<Vec<Upstream>, ProxyRuleError> {
    parse_url_with(url, |host_port| {
        host_port.to_socket_addrs().map(Iterator::collect)
    })
}

/// [`parse_url`] with the resolver `resolve` (`HOST:PORT` to its addresses).
fn parse_url_with(
    url: &str,
    resolve: impl FnOnce(&str) -> std::io::Result<Vec<SocketAddr>>,
) -> Result<Vec<Upstream>, ProxyRuleError> {
    let bad = |why: &str| ProxyRuleError(format!("upstream {url:?}: {why}"));
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some(_) => return Err(bad("only http:// upstreams are supported")),
        None => return Err(bad("expected http://HOST:PORT[/path]")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(rest[i..].to_string())),
        None => (rest, None),
    };
    if authority.is_empty() || authority.contains(['@', '?', '#']) {
        return Err(bad("expected http://HOST:PORT[/path]"));
    }
    if path.as_deref().is_some_and(|p| p.contains(['?', '#'])) {
        return Err(bad("the path may not hold a query or a fragment"));
    }
    // By the grammar a request's own target is held to.
    if path.as_deref().is_some_and(|p| parse_target(p).is_err()) {
        return Err(bad(
            "the path must be written as on a request line (percent-encoded)",
        ));
    }
    let with_port = match authority.rsplit_once(':') {
        Some((_, port)) if !port.contains(']') => authority.to_string(),
        _ => format!("{authority}:80"),
    };
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in resolve(&with_port).map_err(|e| bad(&format!("cannot resolve: {e}")))? {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(bad("resolves to no address"));
    }
    Ok(addrs
        .into_iter()
        .map(|addr| Upstream {
            addr,
            authority: authority.to_string(),
            path: path.clone(),
        })
        .collect())
}

/// How a group's member is chosen for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// In turn.
    #[default]
    RoundRobin,
    /// The member serving the fewest requests now.
    LeastConnections,
}

impl FromStr for Balance {
    type Err = String;

    fn from_str(text: &str) -> Result<Balance, String> {
        match text {
            "round-robin" => Ok(Balance::RoundRobin),
            "least-connections" => Ok(Balance::LeastConnections),
            _ => Err("expected round-robin or least-connections".into()),
        }
    }
}

/// Which `Host` the upstream gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostHeader {
    /// The client's, as sent (the default): the application sees the site's name.
    #[default]
    Keep,
    /// The upstream's own `HOST:PORT` from its URL.
    Upstream,
}

/// Settings every proxy rule shares.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// Idle keep-alive connections kept per upstream server by each event loop (and as many
    /// again in the pool they share).
    pub keepalive: usize,
    /// How long an idle kept connection is trusted before it is dropped.
    pub idle_timeout: Duration,
    /// A response head must arrive within this (else `504`); a body must keep moving.
    pub timeout: Duration,
    /// How a member is chosen.
    pub balance: Balance,
    /// Failures in a row before a member is skipped.
    pub max_fails: u32,
    /// How long a failing member is skipped.
    pub fail_timeout: Duration,
    /// `GET` this path on every member every [`ProxySettings::health_interval`]; `None`: no
    /// active checks.
    pub health_check: Option<String>,
    /// Time between active checks.
    pub health_interval: Duration,
    /// Which `Host` upstreams get.
    pub host: HostHeader,
    /// Whether bodies framed by `Content-Length` go between plain-TCP clients and upstreams
    /// with `splice(2)` through a pipe, rather than copied through buffers.
    pub splice: bool,
}

impl Default for ProxySettings {
    fn default() -> ProxySettings {
        ProxySettings {
            keepalive: 128,
            idle_timeout: Duration::from_secs(50),
            timeout: Duration::from_secs(30),
            balance: Balance::RoundRobin,
            max_fails: 3,
            fail_timeout: Duration::from_secs(10),
            health_check: None,
            health_interval: Duration::from_secs(5),
            host: HostHeader::Keep,
            splice: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_and_the_paths_they_send() {
        // (rule, request path, path sent upstream or None when not covered)
        let rows: &[(&str, &str, Option<&str>)] = &[
            ("/api/=http://127.0.0.1:9000", "/api/x", Some("/api/x")),
            ("/api/=http://127.0.0.1:9000/", "/api/x", Some("/x")),
            ("/api/=http://127.0.0.1:9000/", "/api/", Some("/")),
            (
                "/api/=http://127.0.0.1:9000/v2/",
                "/api/a/b",
                Some("/v2/a/b"),
            ),
            ("/api/=http://127.0.0.1:9000/v2", "/api/a", Some("/v2/a")),
            ("/api=http://127.0.0.1:9000/", "/api/a", Some("/a")),
            ("/api=http://127.0.0.1:9000/", "/api", Some("/")),
            ("/api=http://127.0.0.1:9000", "/apix", None),
            ("/api/=http://127.0.0.1:9000", "/other", None),
        ];
        for (text, path, expected) in rows {
            let rule: ProxyRule = text.parse().unwrap();
            let got = rule
                .covers(path)
                .then(|| rule.upstream_path(path, path, &rule.upstreams[0]));
            assert_eq!(got.as_deref(), *expected, "{text} {path}");
        }
        let both: ProxyRule = "/a/=http://127.0.0.1:1,http://127.0.0.1:2".parse().unwrap();
        assert_eq!(both.upstreams.len(), 2);
        assert_eq!(both.upstreams[1].addr.port(), 2);
        let default_port: ProxyRule = "/a/=http://127.0.0.1".parse().unwrap();
        assert_eq!(default_port.upstreams[0].addr.port(), 80);
        let kept = ProxyRule::new("/api/", &["http://127.0.0.1:9/"])
            .unwrap()
            .strip_prefix(false);
        assert_eq!(
            kept.upstream_path("/api/x", "/api/x", &kept.upstreams[0]),
            "/api/x"
        );
    }

    #[test]
    fn the_clients_escapes_go_upstream_unless_they_change_the_path() {
        // (rule, the target as sent, what goes upstream)
        let rows = [
            (
                "/api/=http://127.0.0.1:9",
                "/api/group%2Fproject",
                "/api/group%2Fproject",
            ),
            ("/api/=http://127.0.0.1:9", "/api/a%3bb", "/api/a%3Bb"),
            (
                "/api/=http://127.0.0.1:9",
                "/api/%7euser/%41",
                "/api/~user/A",
            ),
            (
                "/api/=http://127.0.0.1:9",
                "/api/a%20b/./c//d",
                "/api/a%20b/c/d",
            ),
            (
                "/api/=http://127.0.0.1:9",
                "/api/caf%c3%a9",
                "/api/caf%C3%A9",
            ),
            (
                "/api/=http://127.0.0.1:9",
                "/api/x/%2e%2e/y%2Fz",
                "/api/y%2Fz",
            ),
            (
                "/api/=http://127.0.0.1:9/v1/",
                "/api/group%2Fproject",
                "/v1/group%2Fproject",
            ),
            ("/api=http://127.0.0.1:9/v1", "/api/a%2Fb", "/v1/a%2Fb"),
            (
                "/api/=http://127.0.0.1:9/",
                "/api/caf%C3%A9/x",
                "/caf%C3%A9/x",
            ),
            // An escaped slash that margay read as a segment boundary climbing back: the
            // path it routed by goes upstream, so the application cannot be told another.
            ("/api/=http://127.0.0.1:9", "/api/a%2F..%2Fb", "/api/b"),
            (
                "/api/=http://127.0.0.1:9/v1/",
                "/api/a%2F..%2Fb%20c",
                "/v1/b%20c",
            ),
        ];
        for (text, raw, expected) in rows {
            let rule: ProxyRule = text.parse().unwrap();
            let path = crate::http::target::parse_target(raw).unwrap().path;
            assert!(rule.covers(&path), "{text} {raw}");
            let sent = rule.upstream_path(&path, raw, &rule.upstreams[0]);
            assert_eq!(sent, expected, "{text} {raw}");
        }
    }

    #[test]
    fn a_name_with_several_addresses_is_an_upstream_for_each() {
        let (v4, v6): (SocketAddr, SocketAddr) = (
            "10.0.0.7:9000".parse().unwrap(),
            "[fd00::7]:9000".parse().unwrap(),
        );
        let upstreams = parse_url_with("http://app.internal:9000/v1", |host_port| {
            assert_eq!(host_port, "app.internal:9000");
            Ok(vec![v4, v6, v4])
        })
        .unwrap();
        let addrs: Vec<SocketAddr> = upstreams.iter().map(|u| u.addr).collect();
        assert_eq!(addrs, [v4, v6]);
        assert!(
            upstreams
                .iter()
                .all(|u| u.authority == "app.internal:9000" && u.path.as_deref() == Some("/v1"))
        );
        let none = parse_url_with("http://gone.internal", |_| Ok(Vec::new()));
        assert!(
            none.unwrap_err()
                .to_string()
                .contains("resolves to no address")
        );
    }

    #[test]
    fn bad_rules() {
        for text in [
            "/api/",
            "api/=http://127.0.0.1:9",
            "/api/=https://127.0.0.1:9",
            "/api/=127.0.0.1:9",
            "/api/=http://user@127.0.0.1:9",
            "/api/=http://127.0.0.1:9/x?y",
            "/api/=",
            "/api/=http://127.0.0.1:notaport",
            "/api/=http://127.0.0.1:9/my app/",
            "/api/=http://127.0.0.1:9/caf\u{e9}/",
            "/api/=http://127.0.0.1:9/100%/",
        ] {
            assert!(text.parse::<ProxyRule>().is_err(), "{text} accepted");
        }
    }
}
