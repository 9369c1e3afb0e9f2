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

/// Appends the encoded head of `response` to `out`.
///
/// `date` is the cached IMF-fixdate. `Content-Length` is the body's length, also for HEAD;
/// it is left out where the status forbids a body, and for a stream, which is framed by
/// `Transfer-Encoding: chunked` (or, to an HTTP/1.0 client, by the close).
pub fn encode_head(response: &Response, persistence: Persistence, date: &[u8], out: &mut Vec<u8>) {
    let mut status = itoa::Buffer::new();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.format(response.status.as_u16()).as_bytes());
    out.push(b' ');
    out.extend_from_slice(response.status.reason().as_bytes());
    out.extend_from_slice(b"\r\nServer: ");
    out.extend_from_slice(SERVER.as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n");
    if response.chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    } else if response.status.allows_body() && response.body.has_length() {
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
    use crate::http::{Body, StatusCode};

    const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

    fn encoded(response: &Response, persistence: Persistence) -> String {
        let mut out = Vec::new();
        encode_head(response, persistence, DATE, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn head_rows() {
        let ok = Response::new(StatusCode::OK)
            .header("Content-Type", "text/plain; charset=utf-8")
            .with_body(Body::Bytes(b"hello".to_vec()));
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
        for status in [
            StatusCode::CONTINUE,
            StatusCode::NO_CONTENT,
            StatusCode::NOT_MODIFIED,
        ] {
            let text = encoded(&Response::new(status), Persistence::KeepAlive);
            assert!(!text.contains("Content-Length"), "{status}: {text}");
        }
        let text = encoded(
            &Response::new(StatusCode::NOT_FOUND),
            Persistence::KeepAliveExplicit,
        );
        assert!(text.contains("Content-Length: 0\r\n"));
        assert!(text.contains("Connection: keep-alive\r\n"));
    }

    #[test]
    fn encoded_headers_follow_the_named_ones() {
        let mut response = Response::new(StatusCode::OK).header("A", "1");
        response.encoded_headers = Some(b"B: 2\r\n".to_vec().into());
        let text = encoded(&response, Persistence::KeepAlive);
        assert!(text.ends_with("A: 1\r\nB: 2\r\n\r\n"), "{text}");
    }
}
