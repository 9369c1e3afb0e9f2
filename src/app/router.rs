//! The route table: which handler answers a method and path, with the path parameters it
//! captured, and `405` with `Allow` when the path is routed for other methods only.

use super::error::Result;
use super::request::Request;
use crate::http::Method;
use std::sync::Arc;

/// A handler as the server keeps it.
pub type Handler = Arc<dyn Fn(&Request) -> Result + Send + Sync + 'static>;

/// Where a route's handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// On the event-loop thread: it must not block.
    OnLoop,
    /// On the bounded worker pool: it may block (a database call, a file, another service).
    Blocking,
}

#[derive(Clone, Debug)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Clone, Debug)]
enum Pattern {
    /// The whole path.
    Exact(String),
    /// Segment by segment, `{name}` capturing one segment.
    Template(Vec<Segment>),
    /// Every path starting with it.
    Prefix(String),
}

impl Pattern {
    /// Parses a route path: `{name}` segments make a template.
    fn parse(path: &str) -> Pattern {
        assert!(
            path.starts_with('/'),
            "route path {path:?} must start with /"
        );
        if !path.contains('{') {
            return Pattern::Exact(path.to_string());
        }
        let segments = path[1..]
            .split('/')
            .map(|segment| match segment.strip_prefix('{') {
                Some(rest) => {
                    let name = rest.strip_suffix('}').filter(|n| {
                        !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    });
                    let name = name.unwrap_or_else(|| {
                        panic!("route path {path:?}: a parameter is a whole segment `{{name}}`")
                    });
                    Segment::Param(name.to_string())
                }
                None => {
                    assert!(
                        !segment.contains(['{', '}']),
                        "route path {path:?}: a parameter is a whole segment `{{name}}`"
                    );
                    Segment::Literal(segment.to_string())
                }
            })
            .collect();
        Pattern::Template(segments)
    }

    /// How specific a match is (higher wins): an exact path beats a template, a template with
    /// more literal segments beats one with fewer, any template beats a prefix, and a longer
    /// prefix beats a shorter one. `None`: no match.
    fn rank(&self, path: &str) -> Option<usize> {
        match self {
            Pattern::Exact(p) => (p == path).then_some(usize::MAX),
            Pattern::Prefix(p) => path.starts_with(p.as_str()).then_some(p.len()),
            Pattern::Template(segments) => {
                let mut parts = path.strip_prefix('/')?.split('/');
                let mut literals = 0;
                for segment in segments {
                    let part = parts.next()?;
                    match segment {
                        Segment::Literal(l) if l == part => literals += 1,
                        Segment::Literal(_) => return None,
                        Segment::Param(_) if part.is_empty() => return None,
                        Segment::Param(_) => {}
                    }
                }
                if parts.next().is_some() {
                    return None;
                }
                Some((1 << 40) + literals)
            }
        }
    }

    /// The parameters a matching path gives.
    fn params(&self, path: &str) -> Vec<(String, String)> {
        let Pattern::Template(segments) = self else {
            return Vec::new();
        };
        segments
            .iter()
            .zip(path.trim_start_matches('/').split('/'))
            .filter_map(|(segment, part)| match segment {
                Segment::Param(name) => Some((name.clone(), part.to_string())),
                Segment::Literal(_) => None,
            })
            .collect()
    }
}

#[derive(Clone)]
struct Route {
    method: Method,
    pattern: Pattern,
    handler: Handler,
    execution: Execution,
}

/// A route that takes a request.
pub struct Found<'a> {
    /// Its handler.
    pub handler: &'a Handler,
    /// Where the handler runs.
    pub execution: Execution,
    /// The path parameters, in the route's order.
    pub params: Vec<(String, String)>,
}

/// What the route table says about a request.
pub enum RouteMatch<'a> {
    /// A handler takes it.
    Found(Found<'a>),
    /// Routes exist for the path, none for the method: 405 with this `Allow` value.
    WrongMethod(String),
    /// No route: the static files answer.
    NoRoute,
}

/// The route table. The most specific pattern wins (an exact path, then templates with more
/// literal segments, then the longest prefix); a `GET` route also answers `HEAD`.
#[derive(Clone, Default)]
pub struct Router {
    routes: Vec<Route>,
    /// Hashes of the exact routes' paths, sorted.
    exact_hashes: Vec<u64>,
    /// Routes that are templates or prefixes.
    inexact: usize,
}

/// FNV-1a of a path: cheap for the short strings paths are.
fn path_hash(path: &str) -> u64 {
    path.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Router {
    /// Adds a route for `method` on `path`: exact, or a template with `{name}` segments.
    /// Panics on a malformed path (a programming error, found at start).
    pub fn add(&mut self, method: Method, path: &str, handler: Handler, execution: Execution) {
        let pattern = Pattern::parse(path);
        self.note(&pattern);
        self.routes.push(Route {
            method,
            pattern,
            handler,
            execution,
        });
    }

    /// Keeps the summary [`Router::may_match`] reads up to date.
    fn note(&mut self, pattern: &Pattern) {
        match pattern {
            Pattern::Exact(path) => {
                let hash = path_hash(path);
                if let Err(at) = self.exact_hashes.binary_search(&hash) {
                    self.exact_hashes.insert(at, hash);
                }
            }
            Pattern::Template(_) | Pattern::Prefix(_) => self.inexact += 1,
        }
    }

    /// False when no route can match `path`: every route is exact and none has its hash.
    /// Most requests of a site with only exact routes (the built-in endpoints, say) are for
    /// files, and skip the scan this way.
    fn may_match(&self, path: &str) -> bool {
        self.inexact > 0 || self.exact_hashes.binary_search(&path_hash(path)).is_ok()
    }

    /// Adds a route for one method and every path that starts with `prefix`.
    pub fn prefix(&mut self, method: Method, prefix: &str, handler: Handler, execution: Execution) {
        let pattern = Pattern::Prefix(prefix.to_string());
        self.note(&pattern);
        self.routes.push(Route {
            method,
            pattern,
            handler,
            execution,
        });
    }

    /// Whether no routes are registered.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Whether a route covers `path`, for rules that must not apply under handlers (the
    /// single-page-app fallback): any route that would match it, and a prefix route's prefix
    /// without its trailing `/`.
    pub fn covers(&self, path: &str) -> bool {
        self.may_match(path)
            && self.routes.iter().any(|r| {
                r.pattern.rank(path).is_some()
                    || matches!(&r.pattern, Pattern::Prefix(p) if p.strip_suffix('/') == Some(path))
            })
    }

    /// Finds what answers `method` on `path`.
    pub fn find(&self, method: Method, path: &str) -> RouteMatch<'_> {
        if !self.may_match(path) {
            return RouteMatch::NoRoute;
        }
        let Some(best) = self
            .routes
            .iter()
            .filter_map(|r| r.pattern.rank(path))
            .max()
        else {
            return RouteMatch::NoRoute;
        };
        let matching = || {
            self.routes
                .iter()
                .filter(move |r| r.pattern.rank(path) == Some(best))
        };
        let answers =
            |r: &&Route| r.method == method || (method == Method::Head && r.method == Method::Get);
        if let Some(route) = matching().find(answers) {
            return RouteMatch::Found(Found {
                handler: &route.handler,
                execution: route.execution,
                params: route.pattern.params(path),
            });
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
    use crate::http::{Body, Response};

    fn named(name: &'static str) -> Handler {
        Arc::new(move |_| Ok(Response::text(name)))
    }

    fn answer(router: &Router, method: Method, path: &str) -> String {
        match router.find(method, path) {
            RouteMatch::Found(found) => {
                let head = crate::http::parse::parse_head(
                    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                    &Default::default(),
                )
                .unwrap()
                .unwrap()
                .0;
                let request = Request::new(
                    head,
                    Vec::new(),
                    "127.0.0.1:1".parse().unwrap(),
                    found.params.clone(),
                    Default::default(),
                );
                let response = (found.handler)(&request).unwrap();
                let Body::Bytes(b) = response.body() else {
                    unreachable!()
                };
                let mut text = String::from_utf8(b.clone()).unwrap();
                for (name, value) in &found.params {
                    text.push_str(&format!(" {name}={value}"));
                }
                text
            }
            RouteMatch::WrongMethod(allow) => format!("405 {allow}"),
            RouteMatch::NoRoute => "none".to_string(),
        }
    }

    #[test]
    fn a_table_of_exact_routes_answers_the_same_through_its_shortcut() {
        // Only exact routes: the table rejects other paths by hash before scanning, so
        // these are the rows that shortcut must not change.
        let mut router = Router::default();
        let on_loop = Execution::OnLoop;
        router.add(Method::Get, "/api/status", named("status"), on_loop);
        router.add(Method::Get, "/api/events", named("events"), on_loop);
        router.add(Method::Post, "/api/echo", named("echo"), on_loop);
        router.add(Method::Get, "/api/echo", named("echo-get"), on_loop);
        let rows: &[(Method, &str, &str)] = &[
            (Method::Get, "/api/status", "status"),
            (Method::Head, "/api/events", "events"),
            (Method::Post, "/api/echo", "echo"),
            (Method::Get, "/api/echo", "echo-get"),
            (Method::Delete, "/api/echo", "405 GET, HEAD, POST"),
            (Method::Post, "/api/status", "405 GET, HEAD"),
            // Same length as two routes, another path.
            (Method::Get, "/index.html", "none"),
            (Method::Get, "/api/status/", "none"),
            (Method::Get, "/api/statu", "none"),
            (Method::Get, "/", "none"),
        ];
        for (method, path, expected) in rows {
            assert_eq!(
                answer(&router, *method, path),
                *expected,
                "{method:?} {path}"
            );
            let covered = !expected.starts_with("none");
            assert_eq!(router.covers(path), covered, "covers {path}");
        }
    }

    #[test]
    fn route_rows() {
        let mut router = Router::default();
        let on_loop = Execution::OnLoop;
        router.add(Method::Get, "/api/items", named("list"), on_loop);
        router.add(Method::Post, "/api/items", named("create"), on_loop);
        router.prefix(Method::Get, "/api/", named("api"), on_loop);
        router.prefix(Method::Get, "/api/items/", named("item"), on_loop);
        router.add(Method::Get, "/api/todos/{id}", named("todo"), on_loop);
        router.add(Method::Delete, "/api/todos/{id}", named("delete"), on_loop);
        router.add(
            Method::Get,
            "/api/todos/{id}/notes/{n}",
            named("note"),
            on_loop,
        );
        router.add(Method::Get, "/api/todos/special", named("special"), on_loop);
        router.add(
            Method::Get,
            "/users/{name}/todos/{id}",
            named("users"),
            on_loop,
        );
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
            (Method::Get, "/api/todos/7", "todo id=7"),
            (Method::Delete, "/api/todos/7", "delete id=7"),
            (Method::Put, "/api/todos/7", "405 DELETE, GET, HEAD"),
            (Method::Get, "/api/todos/special", "special"),
            (Method::Get, "/api/todos/7/notes/2", "note id=7 n=2"),
            (Method::Get, "/users/ann/todos/3", "users name=ann id=3"),
            // A template does not match an empty segment or more segments; the prefix does.
            (Method::Get, "/api/todos/", "api"),
            (Method::Get, "/api/todos/7/x", "api"),
            (Method::Get, "/users/ann/todos", "none"),
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
            ("/users/ann/todos/3", true),
            ("/users/ann/todos", false),
            ("/index.html", false),
            ("/", false),
        ];
        for (path, expected) in covered {
            assert_eq!(router.covers(path), *expected, "{path}");
        }
    }

    #[test]
    #[should_panic(expected = "a parameter is a whole segment")]
    fn a_parameter_must_be_a_whole_segment() {
        Router::default().add(Method::Get, "/a/x{id}", named("x"), Execution::OnLoop);
    }
}
