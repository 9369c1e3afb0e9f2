//! Pure HTTP/1.1 protocol code: parse a request head, decide its framing, encode a response.
//!
//! Nothing here touches a socket: functions take bytes and return decisions and bytes, so the
//! event loop and the thread-per-connection model share every line of it.

pub mod accept;
pub mod authority;
pub mod chunked;
pub mod coding;
pub mod date;
pub mod encode;
pub mod error;
pub mod fields;
pub mod parse;
pub mod response;
pub mod status;
pub mod stream;
pub mod target;

pub use error::RequestError;
pub use parse::{Framing, Limits, RequestHead};
pub use response::{Body, BodyPart, InvalidHeader, Response};
pub use status::StatusCode;

/// A request method. Methods margay does not know are [`Method::Other`]: forwarded where a
/// proxy rule covers the path, refused with 501 anywhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `PATCH`
    Patch,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `CONNECT`
    Connect,
    /// Any other method token (`PROPFIND`, `REPORT`, ...): the request's own token is
    /// [`RequestHead::method_token`]. Only a proxy rule takes it; no route or file does.
    Other,
}

impl Method {
    /// Whether a request with this method may be sent again after a failure that left its
    /// outcome unknown (idempotent, RFC 9110 section 9.2.2; `TRACE` aside, which a proxy
    /// has no business repeating).
    pub fn is_idempotent(self) -> bool {
        matches!(
            self,
            Method::Get | Method::Head | Method::Put | Method::Delete | Method::Options
        )
    }

    /// Recognises a method token exactly (methods are case-sensitive, RFC 9110 section 9.1).
    pub fn from_token(token: &str) -> Option<Method> {
        Some(match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "CONNECT" => Method::Connect,
            _ => return None,
        })
    }

    /// The method's token as it appears on the wire (`"other"` for [`Method::Other`], whose
    /// token only the request knows).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Connect => "CONNECT",
            Method::Other => "other",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The protocol version of a request; anything but 1.0 and 1.1 is refused with 505.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: closes after each response unless the client asks for keep-alive.
    Http10,
    /// HTTP/1.1: persistent by default.
    Http11,
}

impl Version {
    /// The version as it appears in a request or status line.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}
