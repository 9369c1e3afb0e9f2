//! The heads a proxy writes and reads: the request it sends upstream (hop-by-hop fields
//! removed, forwarding fields set from the real connection, the body re-framed) and the
//! upstream's response, parsed as strictly as requests are, then cleaned for the client
//! (RFC 9110 section 7.6).

use crate::connection::outbox::take_buffer;
use crate::forwarded::IpText;
use crate::http::fields::{self, TransferCodings};
use crate::http::{Method, RequestHead, Response, StatusCode, Version};
use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::sync::Arc;

/// Fields that describe one connection, not the message: never forwarded (RFC 9110 7.6.1),
/// nor the fields a `Connection` field names. `Proxy-*` fields are dropped by prefix.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
];

/// Request fields margay sets itself when it forwards: dropped from what the client sent.
const SET_BY_PROXY: [&str; 7] = [
    "host",
    "content-length",
    "expect",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
];

/// Response fields margay writes itself for the client. An upstream's `Via` is kept: margay
/// appends its own entry after the hops before it (RFC 9110 section 7.6.3).
const SET_FOR_CLIENT: [&str; 3] = ["date", "server", "content-length"];

thread_local! {
    /// Where a response's passed fields are written before they are shared.
    static PASSED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Largest upstream response head accepted.
pub const MAX_RESPONSE_HEAD: usize = 32 * 1024;
/// Most fields in an upstream response head.
const MAX_RESPONSE_FIELDS: usize = 100;

/// Who sent the request, as the forwarding fields tell it.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The connection's peer.
    pub client: IpAddr,
    /// Whether that peer is a trusted proxy, whose forwarding fields are kept and extended.
    pub trusted: bool,
    /// `http` or `https`.
    pub proto: &'static str,
}

/// How the request's body goes upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// This many bytes.
    Length(u64),
    /// Chunked (the client's chunks are decoded and sent again as chunks).
    Chunked,
}

/// Whether a field name appears in the hop-by-hop set, or is named by `connection_tokens`.
fn is_hop_by_hop(name: &str, connection_tokens: &[&str]) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
        || name.len() > 6 && name[..6].eq_ignore_ascii_case("proxy-")
        || connection_tokens
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name))
}

/// The tokens of every `Connection` field.
fn connection_tokens<'a>(values: impl Iterator<Item = &'a [u8]>) -> impl Iterator<Item = &'a str> {
    values
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The head sent upstream for `head`, whose path is now `path`, normalised and escaped as it
/// goes on the request line ([`ProxyRule::upstream_path`](super::ProxyRule::upstream_path)).
///
/// `host`: the `Host` to send (the client's, or the upstream's own authority). The body is
/// framed by `body`. Forwarding fields: a client that is not a trusted proxy has its own
/// `X-Forwarded-*` and `Forwarded` dropped and replaced; a trusted one has its chain kept
/// and extended with its own address.
pub fn request_head(
    head: &RequestHead,
    path: &str,
    host: &str,
    origin: &Origin,
    body: BodyFraming,
) -> Vec<u8> {
    // From the thread's spare buffers; `Forward` gives it back when it is done with it.
    let mut out = take_buffer();
    out.extend_from_slice(head.method_token().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    if let Some(query) = head.query() {
        out.push(b'?');
        out.extend_from_slice(query.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    let tokens: Vec<&str> = connection_tokens(head.header_values("connection")).collect();
    let counts_hops = matches!(head.method, Method::Options | Method::Trace);
    for (name, value) in head.headers() {
        if is_hop_by_hop(name, &tokens) || SET_BY_PROXY.iter().any(|s| s.eq_ignore_ascii_case(name))
        {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        // Only OPTIONS and TRACE count hops: no other request pays for the look.
        match counts_hops.then(|| max_forwards(name, value)).flatten() {
            // One hop fewer (RFC 9110 section 7.6.2); a spent count is answered here instead.
            Some(hops) if hops > 0 => {
                out.extend_from_slice(itoa::Buffer::new().format(hops - 1).as_bytes())
            }
            _ => out.extend_from_slice(value),
        }
        out.extend_from_slice(b"\r\n");
    }
    // X-Forwarded-For: the trusted chain so far, then the address that connected to us.
    out.extend_from_slice(b"X-Forwarded-For: ");
    if origin.trusted {
        for earlier in head.headers_named("x-forwarded-for") {
            out.extend_from_slice(earlier.as_bytes());
            out.extend_from_slice(b", ");
        }
    }
    out.extend_from_slice(IpText::new(origin.client).as_str().as_bytes());
    out.extend_from_slice(b"\r\n");
    let client_host = head.host();
    let (proto, original_host) = match origin.trusted {
        true => (
            head.header("x-forwarded-proto").unwrap_or(origin.proto),
            head.header("x-forwarded-host")
                .or(client_host)
                .unwrap_or(""),
        ),
        false => (origin.proto, client_host.unwrap_or("")),
    };
    out.extend_from_slice(b"X-Forwarded-Proto: ");
    out.extend_from_slice(proto.as_bytes());
    out.extend_from_slice(b"\r\n");
    if !original_host.is_empty() {
        out.extend_from_slice(b"X-Forwarded-Host: ");
        out.extend_from_slice(original_host.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // Forwarded (RFC 7239): the trusted elements so far, then ours. An IPv6 address is quoted
    // in brackets, as the grammar requires.
    out.extend_from_slice(b"Forwarded: ");
    if origin.trusted {
        for earlier in head.headers_named("forwarded") {
            out.extend_from_slice(earlier.as_bytes());
            out.extend_from_slice(b", ");
        }
    }
    // A bracketed IPv6 node holds `:`, so it is quoted (RFC 7239 section 6).
    let quoted = origin.client.is_ipv6();
    out.extend_from_slice(if quoted { b"for=\"" } else { b"for=" });
    out.extend_from_slice(IpText::bracketed(origin.client).as_str().as_bytes());
    if quoted {
        out.push(b'"');
    }
    out.extend_from_slice(b";proto=");
    out.extend_from_slice(origin.proto.as_bytes());
    if let Some(host) = client_host {
        push_forwarded_host(host, &mut out);
    }
    // Via names the protocol the request was received in (RFC 9110 section 7.6.3).
    out.extend_from_slice(match head.version {
        Version::Http10 => b"\r\nVia: 1.0 margay\r\n",
        Version::Http11 => b"\r\nVia: 1.1 margay\r\n",
    });
    match body {
        BodyFraming::None => {}
        BodyFraming::Length(n) => {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        BodyFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// `;host=` and the client's `Host` for `Forwarded`: as a token when it is one, quoted when
/// it holds a port or an IPv6 literal (RFC 7239 section 4), left out if it holds anything a
/// host does not.
fn push_forwarded_host(host: &str, out: &mut Vec<u8>) {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if host.is_empty() || !host.bytes().all(|b| unreserved(b) || b"[]:".contains(&b)) {
        return;
    }
    let quoted = !host.bytes().all(unreserved);
    out.extend_from_slice(if quoted { b";host=\"" } else { b";host=" });
    out.extend_from_slice(host.as_bytes());
    if quoted {
        out.push(b'"');
    }
}

/// How an upstream response's body is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body (a `HEAD` request, 1xx, 204, 304).
    None,
    /// This many bytes.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Until the upstream closes the connection.
    UntilClose,
}

/// An upstream response head, parsed and checked.
#[derive(Debug, Clone)]
pub struct UpstreamHead {
    /// The status.
    pub status: StatusCode,
    /// How its body is delimited.
    pub framing: ResponseFraming,
    /// Whether the upstream connection may carry another request after this response.
    pub reusable: bool,
    /// Its `Content-Length`, if it had one (what a `HEAD` response reports).
    pub content_length: Option<u64>,
    /// The header lines to pass to the client (hop-by-hop and server-owned fields removed),
    /// each ending in CRLF, with `Via` added: shared, as the response encodes them.
    pub fields: Arc<[u8]>,
}

/// Why an upstream response cannot be passed on (answered `502`, the connection dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadUpstream {
    /// Not HTTP/1.x syntax, a bare LF, or a status outside 100-599.
    Malformed,
    /// Larger than [`MAX_RESPONSE_HEAD`] or more fields than allowed.
    TooLarge,
    /// `Content-Length` that is not a number, or two that disagree.
    BadLength,
    /// `Transfer-Encoding` together with `Content-Length`: framing a smuggler could exploit.
    Conflict,
    /// A protocol switch (101), which the proxy does not carry.
    Upgrade,
}

/// Parses an upstream response head at the start of `buf`, for a request made with `method`.
/// `Ok(None)`: more bytes needed. Interim responses (1xx but 101) are returned too: the caller
/// skips them.
pub fn parse_response(
    buf: &[u8],
    method: Method,
) -> Result<Option<(UpstreamHead, usize)>, BadUpstream> {
    // Room for the fields left uninitialised: httparse fills what it uses.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_RESPONSE_FIELDS];
    let mut response = httparse::Response::new(&mut []);
    let window = &buf[..buf.len().min(MAX_RESPONSE_HEAD)];
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        window,
        &mut fields,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_RESPONSE_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return Err(BadUpstream::TooLarge);
        }
        Err(_) => return Err(BadUpstream::Malformed),
    };
    // httparse takes a bare LF as a line end; a front-end that did not would read another
    // message here. The few line ends are found by memchr, not by a test of every byte.
    let head_bytes = &buf[..len];
    if memchr::memchr_iter(b'\n', head_bytes).any(|i| i == 0 || head_bytes[i - 1] != b'\r') {
        return Err(BadUpstream::Malformed);
    }
    let status = response
        .code
        .and_then(StatusCode::from_u16)
        .ok_or(BadUpstream::Malformed)?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(BadUpstream::Upgrade);
    }
    let http11 = response.version == Some(1);
    let headers = response.headers;
    // One pass over the fields for what frames the body and what the connection allows,
    // without collecting them.
    let (mut close, mut keep_alive) = (false, false);
    // What the `Connection` fields name, dropped from what the client gets (allocated only
    // when the upstream sent one).
    let mut connection: Vec<&str> = Vec::new();
    let mut codings = TransferCodings::default();
    let mut has_transfer = false;
    let mut length: Option<u64> = None;
    for field in headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("connection") {
            for token in connection_tokens(std::iter::once(field.value)) {
                close |= token.eq_ignore_ascii_case("close");
                keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                connection.push(token);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            has_transfer = true;
            codings.add(field.value);
        } else if name.eq_ignore_ascii_case("content-length") {
            // Every line by its grammar (RFC 9110 section 8.6, the same reading as for
            // requests), all naming the same number.
            let n = fields::content_length(fields::trim_ows(field.value))
                .ok_or(BadUpstream::BadLength)?;
            if length.is_some_and(|found| found != n) {
                return Err(BadUpstream::BadLength);
            }
            length = Some(n);
        }
    }
    let no_body = method == Method::Head || !status.allows_body();
    let framing = if no_body {
        ResponseFraming::None
    } else if has_transfer {
        if length.is_some() {
            return Err(BadUpstream::Conflict);
        }
        if codings.is_malformed() || codings.misuses_chunked() {
            return Err(BadUpstream::Malformed);
        }
        if codings.is_chunked_only() {
            ResponseFraming::Chunked
        } else if codings.ends_in_chunked() {
            // Another transfer coding under the chunks: the client could not be given it
            // (transfer codings are hop-by-hop) and the proxy does not decode it.
            return Err(BadUpstream::Malformed);
        } else {
            // Not ending in chunked: the body runs to the close (RFC 9112 section 6.3).
            ResponseFraming::UntilClose
        }
    } else {
        match length {
            Some(n) => ResponseFraming::Length(n),
            None => ResponseFraming::UntilClose,
        }
    };
    if no_body && has_transfer && length.is_some() {
        return Err(BadUpstream::Conflict);
    }
    let reusable = framing != ResponseFraming::UntilClose
        && !close
        && (http11 || keep_alive)
        && (status.as_u16() >= 200);
    // Written into the thread's scratch buffer, then copied once into the shared fields.
    let passed = PASSED.with_borrow_mut(|passed| {
        passed.clear();
        pass_fields(headers, &connection, http11, passed);
        Arc::from(&passed[..])
    });
    Ok(Some((
        UpstreamHead {
            status,
            framing,
            reusable,
            content_length: length,
            fields: passed,
        },
        len,
    )))
}

/// The value of a `Max-Forwards` field, if `name` is one and its value a number (one too
/// large for 64 bits is none, and passes as it came).
fn max_forwards(name: &str, value: &[u8]) -> Option<u64> {
    if !name.eq_ignore_ascii_case("max-forwards") {
        return None;
    }
    fields::decimal(fields::trim_ows(value))
}

/// The answer to an `OPTIONS` or `TRACE` request whose `Max-Forwards` is 0: it must go no
/// further, and the proxy answers it as the final recipient (RFC 9110 section 7.6.2). `OPTIONS`
/// gets `204`; `TRACE`, which margay serves for no resource, `501`. `None`: forward it.
pub fn answer_spent_hops(head: &RequestHead) -> Option<Response> {
    if !matches!(head.method, Method::Options | Method::Trace) {
        return None;
    }
    let hops = head
        .headers()
        .find_map(|(name, value)| max_forwards(name, value))?;
    if hops > 0 {
        return None;
    }
    Some(match head.method {
        Method::Options => Response::new(StatusCode::NO_CONTENT),
        _ => Response::error(StatusCode::NOT_IMPLEMENTED),
    })
}

/// An interim response as the client gets it: its status line, and its fields as a final
/// response's are passed (hop-by-hop ones removed, `Via` added).
pub fn interim_head(head: &UpstreamHead) -> Vec<u8> {
    let status = head.status;
    let mut bytes = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.reason()).into_bytes();
    bytes.extend_from_slice(&head.fields);
    bytes.extend_from_slice(b"\r\n");
    bytes
}

/// The fields of an upstream response the client gets, as header lines, with `Via` added.
fn pass_fields(
    headers: &[httparse::Header<'_>],
    connection: &[&str],
    http11: bool,
    passed: &mut Vec<u8>,
) {
    for field in headers.iter() {
        if is_hop_by_hop(field.name, connection)
            || SET_FOR_CLIENT
                .iter()
                .any(|s| s.eq_ignore_ascii_case(field.name))
        {
            continue;
        }
        passed.extend_from_slice(field.name.as_bytes());
        passed.extend_from_slice(b": ");
        passed.extend_from_slice(fields::trim_ows(field.value));
        passed.extend_from_slice(b"\r\n");
    }
    passed.extend_from_slice(b"Via: ");
    passed.extend_from_slice(if http11 { b"1.1" } else { b"1.0" });
    passed.extend_from_slice(b" margay\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Limits;
    use crate::http::parse::parse_head;

    fn head(text: &str) -> RequestHead {
        parse_head(text.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap()
            .0
    }

    fn forwarded(request: &str, trusted: bool) -> String {
        let origin = Origin {
            client: "192.0.2.9".parse().unwrap(),
            trusted,
            proto: "https",
        };
        let head = head(request);
        let rule: super::super::ProxyRule = "/=http://127.0.0.1:9".parse().unwrap();
        let path = rule.upstream_path(head.path(), head.raw_path(), &rule.upstreams[0]);
        String::from_utf8(request_head(
            &head,
            &path,
            "app.internal:9000",
            &origin,
            BodyFraming::None,
        ))
        .unwrap()
    }

    #[test]
    fn hop_by_hop_fields_are_dropped_and_forwarding_fields_set() {
        let sent = forwarded(
            "GET /a%20b/./c?x=1 HTTP/1.1\r\nHost: example.org\r\nConnection: keep-alive, X-Secret\r\n\
             X-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Authorization: x\r\n\
             X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nAccept: */*\r\n\r\n",
            false,
        );
        let lines: Vec<&str> = sent.split("\r\n").collect();
        assert_eq!(lines[0], "GET /a%20b/c?x=1 HTTP/1.1");
        assert_eq!(lines[1], "Host: app.internal:9000");
        for gone in [
            "Connection",
            "X-Secret",
            "Keep-Alive",
            "TE",
            "Upgrade",
            "Proxy-Authorization",
            "6.6.6.6",
        ] {
            assert!(!sent.contains(gone), "{gone} forwarded: {sent}");
        }
        for line in [
            "Accept: */*",
            "X-Forwarded-For: 192.0.2.9",
            "X-Forwarded-Proto: https",
            "X-Forwarded-Host: example.org",
            "Forwarded: for=192.0.2.9;proto=https;host=example.org",
            "Via: 1.1 margay",
        ] {
            assert!(lines.contains(&line), "{line} missing: {sent}");
        }
        assert!(sent.ends_with("\r\n\r\n"));
    }

    #[test]
    fn client_addresses_are_written_as_text() {
        for (client, for_field, forwarded) in [
            ("10.0.255.1", "10.0.255.1", "for=10.0.255.1"),
            ("0.0.0.0", "0.0.0.0", "for=0.0.0.0"),
            ("255.199.100.9", "255.199.100.9", "for=255.199.100.9"),
            ("2001:db8::7", "2001:db8::7", "for=\"[2001:db8::7]\""),
        ] {
            let origin = Origin {
                client: client.parse().unwrap(),
                trusted: false,
                proto: "http",
            };
            let head = head("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            let sent = String::from_utf8(request_head(&head, "/", "b", &origin, BodyFraming::None))
                .unwrap();
            assert!(
                sent.contains(&format!("\r\nX-Forwarded-For: {for_field}\r\n")),
                "{sent}"
            );
            assert!(
                sent.contains(&format!("\r\nForwarded: {forwarded};proto=http;host=a\r\n")),
                "{sent}"
            );
        }
    }

    #[test]
    fn forwarded_host_is_quoted_when_it_is_no_token() {
        // A port or an IPv6 literal puts `:` in the host, which a token cannot hold.
        for (host, param) in [
            ("example.org", ";host=example.org\r\n"),
            ("example.org:8080", ";host=\"example.org:8080\"\r\n"),
            ("127.0.0.1:18080", ";host=\"127.0.0.1:18080\"\r\n"),
            ("[2001:db8::7]:443", ";host=\"[2001:db8::7]:443\"\r\n"),
        ] {
            let origin = Origin {
                client: "192.0.2.9".parse().unwrap(),
                trusted: false,
                proto: "http",
            };
            let head = head(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"));
            let sent = String::from_utf8(request_head(&head, "/", "b", &origin, BodyFraming::None))
                .unwrap();
            assert!(
                sent.contains(&format!("\r\nForwarded: for=192.0.2.9;proto=http{param}")),
                "{host}: {sent}"
            );
        }
    }

    #[test]
    fn a_trusted_proxy_chain_is_kept_and_extended() {
        let sent = forwarded(
            "GET / HTTP/1.1\r\nHost: example.org\r\nX-Forwarded-For: 203.0.113.5\r\n\
             X-Forwarded-Proto: http\r\nForwarded: for=203.0.113.5\r\n\r\n",
            true,
        );
        assert!(
            sent.contains("X-Forwarded-For: 203.0.113.5, 192.0.2.9\r\n"),
            "{sent}"
        );
        assert!(sent.contains("X-Forwarded-Proto: http\r\n"), "{sent}");
        assert!(
            sent.contains("Forwarded: for=203.0.113.5, for=192.0.2.9;proto=https"),
            "{sent}"
        );
    }

    #[test]
    fn upstream_responses() {
        // (response head, request method, outcome: framing and reusable, or the refusal)
        type Outcome = Result<(ResponseFraming, bool), BadUpstream>;
        let rows: &[(&str, Method, Outcome)] = &[
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                Method::Get,
                Ok((ResponseFraming::Length(5), true)),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
                Method::Get,
                Ok((ResponseFraming::Length(5), true)),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                Method::Get,
                Ok((ResponseFraming::Chunked, true)),
            ),
            (
                "HTTP/1.1 200 OK\r\n\r\n",
                Method::Get,
                Ok((ResponseFraming::UntilClose, false)),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
                Method::Get,
                Ok((ResponseFraming::Length(5), false)),
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n",
                Method::Get,
                Ok((ResponseFraming::Length(5), false)),
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n",
                Method::Get,
                Ok((ResponseFraming::Length(5), true)),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
                Method::Head,
                Ok((ResponseFraming::None, true)),
            ),
            (
                "HTTP/1.1 304 Not Modified\r\n\r\n",
                Method::Get,
                Ok((ResponseFraming::None, true)),
            ),
            (
                "HTTP/1.1 204 No Content\r\n\r\n",
                Method::Get,
                Ok((ResponseFraming::None, true)),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                Method::Get,
                Err(BadUpstream::BadLength),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
                Method::Get,
                Err(BadUpstream::BadLength),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                Method::Get,
                Err(BadUpstream::Conflict),
            ),
            (
                "HTTP/1.1 200 OK\nContent-Length: 5\n\n",
                Method::Get,
                Err(BadUpstream::Malformed),
            ),
            (
                "HTTP/1.1 200 OK\r\nX: a\nContent-Length: 5\r\n\r\n",
                Method::Get,
                Err(BadUpstream::Malformed),
            ),
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
                Method::Get,
                Err(BadUpstream::Upgrade),
            ),
            (
                "HTTP/1.1 999 Odd\r\n\r\n",
                Method::Get,
                Err(BadUpstream::Malformed),
            ),
            (
                "SSH-2.0-OpenSSH\r\n\r\n",
                Method::Get,
                Err(BadUpstream::Malformed),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                Method::Get,
                Err(BadUpstream::Malformed),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                Method::Get,
                Err(BadUpstream::Malformed),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
                Method::Get,
                Err(BadUpstream::Malformed),
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                Method::Get,
                Ok((ResponseFraming::UntilClose, false)),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\n",
                Method::Get,
                Err(BadUpstream::BadLength),
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 0x5\r\n\r\n",
                Method::Get,
                Err(BadUpstream::BadLength),
            ),
        ];
        for (text, method, expected) in rows {
            let got = parse_response(text.as_bytes(), *method)
                .map(|parsed| parsed.map(|(h, _)| (h.framing, h.reusable)).unwrap());
            assert_eq!(&got, expected, "{text:?}");
        }
        let big = format!(
            "HTTP/1.1 200 OK\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_RESPONSE_HEAD)
        );
        assert_eq!(
            parse_response(big.as_bytes(), Method::Get).err(),
            Some(BadUpstream::TooLarge)
        );
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\nContent-", Method::Get)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_client_gets_the_upstream_fields_but_hop_by_hop_and_server_owned_ones() {
        let text = "HTTP/1.1 200 OK\r\nDate: x\r\nServer: app\r\nContent-Length: 2\r\n\
                    Connection: X-Internal\r\nX-Internal: 1\r\nKeep-Alive: 5\r\n\
                    Set-Cookie: a=1\r\nContent-Type: text/plain\r\n\r\n";
        let (head, _) = parse_response(text.as_bytes(), Method::Get)
            .unwrap()
            .unwrap();
        let fields = String::from_utf8(head.fields.to_vec()).unwrap();
        assert_eq!(
            fields,
            "Set-Cookie: a=1\r\nContent-Type: text/plain\r\nVia: 1.1 margay\r\n"
        );
    }
}
