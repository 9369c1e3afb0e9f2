//! The application-server side: requests as handlers see them, and the route table.

use crate::http::{Method, RequestHead, Response, Version};
use std::net::SocketAddr;
use std::sync::Arc;

/// A request as a handler sees it: the parsed head, the whole body, the peer's address.
#[derive(Debug)]
pub struct Request {
    head: RequestHead,
    body: Vec<u8>,
    remote_addr: SocketAddr,
    query: Vec<(String, String)>,
}

impl Request {
    /// Builds a request from a parsed head and its body.
    pub fn new(head: RequestHead, body: Vec<u8>, remote_addr: SocketAddr) -> Request {
        let query = head.query().map(decode_query).unwrap_or_default();
        Request {
            head,
            body,
            remote_addr,
            query,
        }
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.head.method
    }

    /// The protocol version.
    pub fn version(&self) -> Version {
        self.head.version
    }

    /// The path, percent-decoded once, dot-segments resolved.
    pub fn path(&self) -> &str {
        self.head.path()
    }

    /// The request-target exactly as sent.
    pub fn target(&self) -> &str {
        self.head.target()
    }

    /// The raw query string (without `?`), if any.
    pub fn query_string(&self) -> Option<&str> {
        self.head.query()
    }

    /// The first query parameter called `name`, decoded (`+` is a space).
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every query parameter in order, decoded.
    pub fn query_pairs(&self) -> &[(String, String)] {
        &self.query
    }

    /// The first header field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    /// Every header field as (name, value), values that are not UTF-8 shown lossily.
    pub fn headers(&self) -> impl Iterator<Item = (&str, std::borrow::Cow<'_, str>)> {
        self.head
            .headers()
            .map(|(n, v)| (n, String::from_utf8_lossy(v)))
    }

    /// The peer's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// The request body (empty when there was none).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Gives the head back once the handler is done (for the access log and persistence).
    pub(crate) fn into_head(self) -> RequestHead {
        self.head
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_slice(&self.body)
    }
}

/// Decodes `a=1&b=x+y` into pairs; malformed escapes are kept literally.
fn decode_query(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| {
        let spaced = s.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (decode(name), decode(value)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// A request handler: runs on the event-loop thread, so it must not block.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync + 'static>;

#[derive(Clone)]
enum Pattern {
    Exact(String),
    Prefix(String),
}

#[derive(Clone)]
struct Route {
    method: Method,
    pattern: Pattern,
    handler: Handler,
}

/// What the route table says about a request.
pub enum RouteMatch<'a> {
    /// A handler takes it.
    Handler(&'a Handler),
    /// Routes exist for the path, none for the method: 405 with this `Allow` value.
    WrongMethod(String),
    /// No route: the static files answer.
    NoRoute,
}

/// The route table. Exact paths win over prefixes; among prefixes the longest wins; a `GET`
/// route also answers `HEAD`.
#[derive(Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    /// Adds a route for one method and an exact path.
    pub fn exact(&mut self, method: Method, path: &str, handler: Handler) {
        self.routes.push(Route {
            method,
            pattern: Pattern::Exact(path.to_string()),
            handler,
        });
    }

    /// Adds a route for one method and every path that starts with `prefix`.
    pub fn prefix(&mut self, method: Method, prefix: &str, handler: Handler) {
        self.routes.push(Route {
            method,
            pattern: Pattern::Prefix(prefix.to_string()),
            handler,
        });
    }

    /// Whether no routes are registered.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Whether a route covers `path`: an exact route's path, or a prefix route's prefix
    /// (with or without its trailing `/`) or anything under it.
    pub fn covers(&self, path: &str) -> bool {
        self.routes.iter().any(|route| match &route.pattern {
            Pattern::Exact(p) => p == path,
            Pattern::Prefix(p) => path.starts_with(p.as_str()) || p.strip_suffix('/') == Some(path),
        })
    }

    /// Finds what answers `method` on `path`.
    pub fn find(&self, method: Method, path: &str) -> RouteMatch<'_> {
        if self.routes.is_empty() {
            return RouteMatch::NoRoute;
        }
        // Rank: exact match beats any prefix, a longer prefix beats a shorter one.
        let rank = |route: &Route| match &route.pattern {
            Pattern::Exact(p) if p == path => Some(usize::MAX),
            Pattern::Prefix(p) if path.starts_with(p.as_str()) => Some(p.len()),
            _ => None,
        };
        let Some(best) = self.routes.iter().filter_map(rank).max() else {
            return RouteMatch::NoRoute;
        };
        let matching = || self.routes.iter().filter(|r| rank(r) == Some(best));
        let answers =
            |r: &&Route| r.method == method || (method == Method::Head && r.method == Method::Get);
        if let Some(route) = matching().find(answers) {
            return RouteMatch::Handler(&route.handler);
        }
        let mut allow: Vec<&str> = matching().map(|r| r.method.as_str()).collect();
        if allow.contains(&"GET") {
            allow.push("HEAD");
        }
        allow.sort_unstable();
        allow.dedup();
        RouteMatch::WrongMethod(allow.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &'static str) -> Handler {
        Arc::new(move |_| Response::text(name))
    }

    fn answer(router: &Router, method: Method, path: &str) -> String {
        match router.find(method, path) {
            RouteMatch::Handler(h) => {
                let head = crate::http::parse::parse_head(
                    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                    &Default::default(),
                )
                .unwrap()
                .unwrap()
                .0;
                let request = Request::new(head, Vec::new(), "127.0.0.1:1".parse().unwrap());
                match h(&request).body {
                    crate::http::Body::Bytes(b) => String::from_utf8(b).unwrap(),
                    _ => unreachable!(),
                }
            }
            RouteMatch::WrongMethod(allow) => format!("405 {allow}"),
            RouteMatch::NoRoute => "none".to_string(),
        }
    }

    #[test]
    fn route_rows() {
        let mut router = Router::default();
        router.exact(Method::Get, "/api/items", named("list"));
        router.exact(Method::Post, "/api/items", named("create"));
        router.prefix(Method::Get, "/api/", named("api"));
        router.prefix(Method::Get, "/api/items/", named("item"));
        let rows: &[(Method, &str, &str)] = &[
            (Method::Get, "/api/items", "list"),
            (Method::Head, "/api/items", "list"),
            (Method::Post, "/api/items", "create"),
            (Method::Delete, "/api/items", "405 GET, HEAD, POST"),
            (Method::Get, "/api/items/7", "item"),
            (Method::Get, "/api/other", "api"),
            (Method::Post, "/api/other", "405 GET, HEAD"),
            (Method::Get, "/index.html", "none"),
            (Method::Get, "/api", "none"),
        ];
        for (method, path, expected) in rows {
            assert_eq!(answer(&router, *method, path), *expected, "{method} {path}");
        }
        // (path, covered by a route)
        let covered: &[(&str, bool)] = &[
            ("/api/items", true),
            ("/api/anything/deep", true),
            ("/api", true),
            ("/apiary", false),
            ("/index.html", false),
            ("/", false),
        ];
        for (path, expected) in covered {
            assert_eq!(router.covers(path), *expected, "{path}");
        }
    }

    #[test]
    fn query_rows() {
        let rows: &[(&str, &[(&str, &str)])] = &[
            ("a=1&b=2", &[("a", "1"), ("b", "2")]),
            (
                "q=hello+world&x=%2F%20",
                &[("q", "hello world"), ("x", "/ ")],
            ),
            ("flag&&k=", &[("flag", ""), ("k", "")]),
            ("bad=%zz", &[("bad", "%zz")]),
            ("k=%C3%A9", &[("k", "é")]),
        ];
        for (query, expected) in rows {
            let got = decode_query(query);
            let got: Vec<(&str, &str)> =
                got.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            assert_eq!(&got, expected, "{query}");
        }
    }
}
