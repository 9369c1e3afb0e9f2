//! A response as handlers and the file server build it: status, headers, and a body source.

use super::fields::is_tchar;
use super::status::StatusCode;
use super::stream::{self, BodySender, BodyStream};
use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::sync::Arc;

/// Where a response's body bytes come from.
#[derive(Debug, Default)]
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
    /// Produced over time through a [`BodySender`], sent chunked (see [`Response::stream`]).
    Stream(BodyStream),
    /// Bytes that follow from an upstream server, of this length if known (the proxy writes
    /// them itself).
    #[doc(hidden)]
    Upstream(Option<u64>),
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
    /// The body's length in bytes: the value of `Content-Length` (0 for a stream, whose length
    /// is not known in advance).
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty | Body::Stream(_) => 0,
            Body::Upstream(len) => len.unwrap_or(0),
            Body::Bytes(b) => b.len() as u64,
            Body::Shared(b) => b.len() as u64,
            Body::File { len, .. } => *len,
            Body::Parts(parts) => parts.iter().map(BodyPart::len).sum(),
        }
    }

    /// Whether its length is known before it is sent (all but a stream).
    pub fn has_length(&self) -> bool {
        !matches!(self, Body::Stream(_) | Body::Upstream(None))
    }

    /// Whether the body has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An HTTP response: status, header fields, body.
///
/// `Date`, `Server`, `Content-Length`, `Transfer-Encoding` and `Connection` are written by the
/// encoder; setting them is refused.
#[derive(Debug)]
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
    /// Built by [`Response::error`]: a site's own page for the status may replace it.
    pub(crate) stock_page: bool,
    /// Set by the connection for a streamed body sent with chunked transfer coding.
    pub(crate) chunked: bool,
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
            stock_page: false,
            chunked: false,
            quiet: false,
            compress: false,
        }
    }

    /// Adds a header field.
    ///
    /// # Panics
    ///
    /// When the field is invalid (a name that is not a token, a value with CR, LF, NUL or
    /// another control byte) or one the encoder writes itself, so it is never sent; in a
    /// handler the panic answers `500` and is logged. For values built from input, use
    /// [`Response::try_header`].
    pub fn header(
        self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Response {
        match self.try_header(name, value) {
            Ok(response) => response,
            Err(e) => panic!("{e}"),
        }
    }

    /// Adds a header field, or says why it cannot be sent: a name that is not a token, a
    /// value with CR, LF, NUL or another control byte (which could split the response), or
    /// a field the encoder writes itself (`Content-Length`, `Transfer-Encoding`,
    /// `Connection`, `Date`, `Server`).
    pub fn try_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Result<Response, InvalidHeader> {
        let (name, value) = (name.into(), value.into());
        check_field(&name, &value).map_err(InvalidHeader)?;
        self.headers.push((name, value));
        Ok(self)
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
        let mut page = Response::new(status)
            .header("Content-Type", "text/html; charset=utf-8")
            .with_body(Body::Bytes(html));
        page.stock_page = true;
        page
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
    /// under 1 KiB, bodies already encoded, and bodies over 64 KiB from a handler that runs on
    /// the event loop (about a millisecond of compressing) are sent as they are; a blocking
    /// handler's body is compressed off the loop, up to 4 MiB.
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
    ///
    /// # Panics
    ///
    /// When `location` could not be sent (see [`Response::header`]) or `status` is not a
    /// redirection; use [`Response::try_redirect`] for a location built from input.
    pub fn redirect(status: StatusCode, location: impl Into<Cow<'static, str>>) -> Response {
        match Response::try_redirect(status, location) {
            Ok(response) => response,
            Err(e) => panic!("{e}"),
        }
    }

    /// A redirect to `location`, or why it cannot be sent (a value that could split the
    /// response, or a status that is not a redirection).
    pub fn try_redirect(
        status: StatusCode,
        location: impl Into<Cow<'static, str>>,
    ) -> Result<Response, InvalidHeader> {
        if !status.is_redirection() {
            return Err(InvalidHeader(format!(
                "redirect with status {status}, not a 3xx"
            )));
        }
        Response::error(status).try_header("Location", location)
    }

    /// A response whose body is produced over time through the returned [`BodySender`]
    /// (from any thread) and sent with chunked transfer coding (to an HTTP/1.0 client: until
    /// the connection closes). At most 64 KiB wait for a slow client; then `send` waits.
    pub fn stream(content_type: impl Into<Cow<'static, str>>) -> (Response, BodySender) {
        let (sender, body) = stream::channel(stream::DEFAULT_LIMIT);
        let response = Response::new(StatusCode::OK)
            .header("Content-Type", content_type)
            .with_body(Body::Stream(body));
        (response, sender)
    }
}

/// A header field that cannot be sent: what is wrong with it. As a handler's error (with
/// `?`) it answers `500`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidHeader(String);

impl fmt::Display for InvalidHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidHeader {}

/// Fields the encoder writes itself: a second copy would contradict it.
const ENCODER_FIELDS: [&str; 5] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "date",
    "server",
];

/// Why a header field cannot be sent, if it cannot.
fn check_field(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(format!("response header name {name:?} is not a token"));
    }
    if ENCODER_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name)) {
        return Err(format!(
            "response header {name:?} is written by the server itself"
        ));
    }
    if let Some(bad) = value
        .bytes()
        .find(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(format!(
            "response header {name:?}: its value holds the control byte 0x{bad:02x}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_that_could_split_a_response_are_refused() {
        // (name, value, accepted)
        let rows: &[(&str, &str, bool)] = &[
            ("X-Ok", "plain value\twith tab", true),
            ("Set-Cookie", "a=1; Path=/", true),
            ("X-Bad", "a\r\nSet-Cookie: x=1", false),
            ("X-Bad", "a\nb", false),
            ("X-Bad", "a\0b", false),
            ("X-Bad", "a\x7fb", false),
            ("Bad Name", "v", false),
            ("Bad:Name", "v", false),
            ("", "v", false),
            ("Content-Length", "5", false),
            ("transfer-encoding", "chunked", false),
            ("Connection", "keep-alive", false),
            ("Date", "x", false),
            ("Server", "x", false),
        ];
        for (name, value, accepted) in rows {
            let result = Response::ok().try_header(*name, *value);
            assert_eq!(result.is_ok(), *accepted, "{name:?}: {value:?}");
        }
        assert!(Response::try_redirect(StatusCode::FOUND, "/next\r\nX: y").is_err());
        assert!(Response::try_redirect(StatusCode::OK, "/next").is_err());
        let ok = Response::try_redirect(StatusCode::SEE_OTHER, "/next?a=%0d%0a").unwrap();
        assert_eq!(ok.header_value("location"), Some("/next?a=%0d%0a"));
    }
}
