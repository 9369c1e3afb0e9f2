//! A response as handlers and the file server build it: status, headers, and a body source.

use super::status::StatusCode;
use std::borrow::Cow;
use std::fs::File;
use std::sync::Arc;

/// Where a response's body bytes come from.
#[derive(Debug, Clone, Default)]
pub enum Body {
    /// No body (`Content-Length: 0`, or none at all where the status forbids one).
    #[default]
    Empty,
    /// Bytes owned by this response.
    Bytes(Vec<u8>),
    /// Bytes shared with a cache, sent without copying per response.
    Shared(Arc<[u8]>),
    /// A window of an open file, sent with `sendfile(2)`.
    File {
        /// The open file.
        file: Arc<File>,
        /// First byte to send.
        offset: u64,
        /// How many bytes to send.
        len: u64,
    },
    /// Several pieces sent back to back (a `multipart/byteranges` body).
    Parts(Vec<BodyPart>),
}

/// One piece of a [`Body::Parts`] body.
#[derive(Debug, Clone)]
pub enum BodyPart {
    /// Literal bytes (a part's boundary and headers).
    Bytes(Vec<u8>),
    /// A window of a file.
    File {
        /// The open file.
        file: Arc<File>,
        /// First byte to send.
        offset: u64,
        /// How many bytes to send.
        len: u64,
    },
}

impl BodyPart {
    /// How many bytes this piece contributes to the body.
    pub fn len(&self) -> u64 {
        match self {
            BodyPart::Bytes(b) => b.len() as u64,
            BodyPart::File { len, .. } => *len,
        }
    }

    /// Whether this piece is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Body {
    /// The body's length in bytes: the value of `Content-Length`.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::Shared(b) => b.len() as u64,
            Body::File { len, .. } => *len,
            Body::Parts(parts) => parts.iter().map(BodyPart::len).sum(),
        }
    }

    /// Whether the body has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An HTTP response: status, header fields, body.
///
/// `Date`, `Server`, `Content-Length` and `Connection` are written by the encoder; do not add
/// them here.
#[derive(Debug, Clone)]
pub struct Response {
    pub(crate) status: StatusCode,
    /// Header fields in the order they are sent.
    pub(crate) headers: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    /// Header lines already encoded (each ending in CRLF), sent after `headers`: the file
    /// cache keeps these ready so a hot file costs no formatting per request.
    pub(crate) encoded_headers: Option<Arc<[u8]>>,
    pub(crate) body: Body,
    /// Set when the connection must close after this response (e.g. a framing error).
    pub(crate) close: bool,
    /// Set to leave the response out of the access log (health checks).
    pub(crate) quiet: bool,
    /// Set by [`Response::compressible`].
    pub(crate) compress: bool,
}

impl Response {
    /// A response with the given status, no headers and no body.
    pub fn new(status: StatusCode) -> Response {
        Response {
            status,
            headers: Vec::new(),
            encoded_headers: None,
            body: Body::Empty,
            close: false,
            quiet: false,
            compress: false,
        }
    }

    /// Adds a header field.
    pub fn header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: Body) -> Response {
        self.body = body;
        self
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The header fields set so far, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))
    }

    /// The body.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// The value of the first header field called `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// A small HTML page explaining an error status, e.g.
    /// `Response::error(StatusCode::NOT_FOUND)`.
    pub fn error(status: StatusCode) -> Response {
        let reason = status.reason();
        let mut html = Vec::with_capacity(160);
        for piece in [
            "<!DOCTYPE html>\n<html><head><title>",
            itoa::Buffer::new().format(status.as_u16()),
            " ",
            reason,
            "</title></head>\n<body><h1>",
            itoa::Buffer::new().format(status.as_u16()),
            " ",
            reason,
            "</h1><hr><p>margay</p></body></html>\n",
        ] {
            html.extend_from_slice(piece.as_bytes());
        }
        Response::new(status)
            .header("Content-Type", "text/html; charset=utf-8")
            .with_body(Body::Bytes(html))
    }
}

/// Builders for the common kinds of response a handler returns.
impl Response {
    /// `200 OK` with no body.
    pub fn ok() -> Response {
        Response::new(StatusCode::OK)
    }

    /// Lets the server compress the body with gzip or brotli for a client that accepts one
    /// (`Accept-Encoding`), adding `Content-Encoding` and `Vary: Accept-Encoding`. Bodies
    /// under 1 KiB or over 64 KiB, and bodies already encoded, are sent as they are: the
    /// compression runs on the event loop, and 64 KiB takes about a millisecond.
    pub fn compressible(mut self) -> Response {
        self.compress = true;
        self
    }

    /// Sets the status code.
    pub fn with_status(mut self, status: StatusCode) -> Response {
        self.status = status;
        self
    }

    /// `200 OK` with a body of the given content type.
    pub fn bytes(content_type: impl Into<Cow<'static, str>>, body: impl Into<Vec<u8>>) -> Response {
        Response::new(StatusCode::OK)
            .header("Content-Type", content_type)
            .with_body(Body::Bytes(body.into()))
    }

    /// `200 OK` with a UTF-8 plain-text body.
    pub fn text(body: impl Into<String>) -> Response {
        Response::bytes("text/plain; charset=utf-8", body.into().into_bytes())
    }

    /// `200 OK` with an HTML body.
    pub fn html(body: impl Into<String>) -> Response {
        Response::bytes("text/html; charset=utf-8", body.into().into_bytes())
    }

    /// `200 OK` with `value` serialised as JSON; a value that cannot be serialised gives 500.
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response::bytes("application/json", body),
            Err(e) => {
                log::error!("response could not be serialised as JSON: {e}");
                Response::error(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// A redirect (`301`, `302`, `303`, `307` or `308`) to `location`, with a short HTML body.
    pub fn redirect(status: StatusCode, location: impl Into<Cow<'static, str>>) -> Response {
        let location = location.into();
        let mut page = Response::error(status);
        page.headers.push(("Location".into(), location));
        page
    }
}
