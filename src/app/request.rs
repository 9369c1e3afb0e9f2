//! A request as a handler sees it, and the application state handlers share.

use super::error::Error;
use crate::http::{Method, RequestHead, Version};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

/// Values the application registered with `Server::state`, one per type.
#[derive(Default)]
pub struct StateMap(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl StateMap {
    /// Keeps `value` for handlers to find by its type (replacing one of the same type).
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.0.insert(TypeId::of::<T>(), Arc::new(value));
    }

    fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.0.get(&TypeId::of::<T>())?.downcast_ref()
    }
}

/// A request as a handler sees it: the parsed head, the whole body, the path parameters of
/// its route, the peer's address, and the application's state.
pub struct Request {
    head: RequestHead,
    body: Vec<u8>,
    remote_addr: SocketAddr,
    query: Vec<(String, String)>,
    params: Vec<(String, String)>,
    state: Arc<StateMap>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("request_line", &self.head.request_line())
            .field("params", &self.params)
            .field("remote_addr", &self.remote_addr)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Request {
    /// Builds a request from a parsed head, its body, and what routing found.
    pub(crate) fn new(
        head: RequestHead,
        body: Vec<u8>,
        remote_addr: SocketAddr,
        params: Vec<(String, String)>,
        state: Arc<StateMap>,
    ) -> Request {
        let query = head.query().map(decode_query).unwrap_or_default();
        Request {
            head,
            body,
            remote_addr,
            query,
            params,
            state,
        }
    }

    /// The value of the path parameter `name` of the route (`{id}` in `/api/todos/{id}`),
    /// percent-decoded.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path parameter `name` parsed as a `T`; `400 Bad Request` naming it when it is
    /// missing or does not parse.
    pub fn param_as<T: FromStr>(&self, name: &str) -> Result<T, Error>
    where
        T::Err: std::fmt::Display,
    {
        let text = self
            .param(name)
            .ok_or_else(|| Error::bad_request(format!("no path parameter `{name}`")))?;
        text.parse()
            .map_err(|e| Error::bad_request(format!("path parameter `{name}`: {e}")))
    }

    /// The application state of type `T` registered with `Server::state`; `500` if there is
    /// none (a programming error, logged).
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<&T, Error> {
        self.state.get::<T>().ok_or_else(|| {
            Error::internal(format!(
                "no application state of type {} was registered",
                std::any::type_name::<T>()
            ))
        })
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

    /// The parsed head, for what the server itself reads of it after the handler.
    pub(crate) fn head(&self) -> &RequestHead {
        &self.head
    }

    /// Gives the head back once the handler is done (for the access log and persistence).
    pub(crate) fn into_head(self) -> RequestHead {
        self.head
    }

    /// The body parsed as JSON; `400 Bad Request` saying what is wrong when it does not
    /// parse.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::bad_request(format!("JSON body: {e}")))
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

#[cfg(test)]
mod tests {
    use super::*;

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
