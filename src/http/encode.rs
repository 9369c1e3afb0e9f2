//! Response head encoding: status line, fixed fields, the response's own fields, CRLF.

use super::response::Response;

/// The `Server` field value.
pub const SERVER: &str = concat!("margay/", env!("CARGO_PKG_VERSION"));

/// What the `Connection` field must say about persistence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// HTTP/1.1 default: keep the connection, no field needed.
    KeepAlive,
    /// HTTP/1.0 client that asked for keep-alive: say `Connection: keep-alive`.
    KeepAliveExplicit,
    /// The connection closes after this response: say `Connection: close`.
    Close,
}

/// The standard reason phrase for a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Whether a response with this status never carries a body (RFC 9110 section 6.4.1).
pub fn status_forbids_body(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

/// Appends the encoded head of `response` to `out`.
///
/// `date` is the cached IMF-fixdate. `Content-Length` is the body's length, also for HEAD;
/// it is left out where the status forbids a body.
pub fn encode_head(response: &Response, persistence: Persistence, date: &[u8], out: &mut Vec<u8>) {
    let mut status = itoa::Buffer::new();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.format(response.status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason_phrase(response.status).as_bytes());
    out.extend_from_slice(b"\r\nServer: ");
    out.extend_from_slice(SERVER.as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n");
    if !status_forbids_body(response.status) {
        let mut len = itoa::Buffer::new();
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(len.format(response.body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match persistence {
        Persistence::KeepAlive => {}
        Persistence::KeepAliveExplicit => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        Persistence::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    for (name, value) in &response.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(encoded) = &response.encoded_headers {
        out.extend_from_slice(encoded);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Body;

    const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

    fn encoded(response: &Response, persistence: Persistence) -> String {
        let mut out = Vec::new();
        encode_head(response, persistence, DATE, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn head_rows() {
        let ok = Response::new(200)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(Body::Bytes(b"hello".to_vec()));
        let rows: &[(&Response, Persistence, &str)] = &[
            (
                &ok,
                Persistence::KeepAlive,
                "HTTP/1.1 200 OK\r\nServer: margay/0.1.0\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 5\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
            ),
            (
                &ok,
                Persistence::Close,
                "HTTP/1.1 200 OK\r\nServer: margay/0.1.0\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 5\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
            ),
        ];
        for (response, persistence, expected) in rows {
            assert_eq!(encoded(response, *persistence), *expected);
        }
    }

    #[test]
    fn no_content_length_where_the_status_forbids_a_body() {
        for status in [100, 204, 304] {
            let text = encoded(&Response::new(status), Persistence::KeepAlive);
            assert!(!text.contains("Content-Length"), "{status}: {text}");
        }
        let text = encoded(&Response::new(404), Persistence::KeepAliveExplicit);
        assert!(text.contains("Content-Length: 0\r\n"));
        assert!(text.contains("Connection: keep-alive\r\n"));
    }

    #[test]
    fn encoded_headers_follow_the_named_ones() {
        let mut response = Response::new(200).header("A", "1");
        response.encoded_headers = Some(b"B: 2\r\n".to_vec().into());
        let text = encoded(&response, Persistence::KeepAlive);
        assert!(text.ends_with("A: 1\r\nB: 2\r\n\r\n"), "{text}");
    }
}
