//! Request-head parsing: httparse for the syntax, then the rules it leaves to us (limits,
//! `Host`, body framing, persistence) decided once, here.

use super::authority::parse_host_port;
use super::error::RequestError;
use super::fields::{Expectations, TransferCodings, content_length, trim_ows};
use super::target::parse_target_into;
use super::{Method, Version};
use std::mem::MaybeUninit;
use std::ops::Range;

/// Size limits for a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head in bytes, request line included (431 past it).
    pub max_head: usize,
    /// Most header fields (431 past it).
    pub max_headers: usize,
    /// Longest request-target in bytes (414 past it).
    pub max_target: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 32 * 1024,
            max_headers: 100,
            max_target: 8 * 1024,
        }
    }
}

/// Most header fields the parser can hold, whatever the configured limit.
const FIELD_SLOTS: usize = 128;

/// How the request's body is delimited (RFC 9112 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
}

#[derive(Debug, Clone)]
struct Field {
    name: Range<u32>,
    value: Range<u32>,
}

/// A parsed request head: owns a copy of its bytes and knows where each part lies.
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The method ([`Method::Other`] for a token margay does not know; `Get` with
    /// [`RequestHead::error`] set for `CONNECT`, which it does not serve).
    pub method: Method,
    /// The protocol version.
    pub version: Version,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the client allows the connection to stay open after the response.
    pub keep_alive: bool,
    /// Whether the client sent `Expect: 100-continue`.
    pub expect_continue: bool,
    /// A problem found once the framing was known: the request must be answered with this
    /// error, but the connection may carry on after its body.
    pub error: Option<RequestError>,
    preconditions: bool,
    raw: Vec<u8>,
    request_line: Range<u32>,
    target: Range<u32>,
    raw_path: Range<u32>,
    query: Option<Range<u32>>,
    path: String,
    fields: Vec<Field>,
}

impl RequestHead {
    /// The request-target exactly as sent.
    pub fn target(&self) -> &str {
        self.text(&self.target)
    }

    /// The path part of the target, still percent-encoded (`/` when the target has none).
    pub fn raw_path(&self) -> &str {
        let target = self.target();
        let path = &target[self.raw_path.start as usize..self.raw_path.end as usize];
        if path.is_empty() { "/" } else { path }
    }

    /// The host the request is for: the authority of an absolute-form target, which
    /// overrides `Host` (RFC 9112 section 3.2.2), else the `Host` field.
    pub fn host(&self) -> Option<&str> {
        let target = self.target();
        match target.find("://") {
            Some(at) if !target.starts_with('/') => {
                Some(&target[at + 3..self.raw_path.start as usize])
            }
            _ => self.header("host"),
        }
    }

    /// The path decoded exactly once, dot-segments resolved; empty when the target was bad.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The query string without `?`, still percent-encoded.
    pub fn query(&self) -> Option<&str> {
        let target = self.target();
        self.query
            .as_ref()
            .map(|q| &target[q.start as usize..q.end as usize])
    }

    /// The request line, e.g. `GET / HTTP/1.1`, for the access log.
    pub fn request_line(&self) -> &str {
        self.text(&self.request_line)
    }

    /// The method exactly as sent (what [`Method::Other`] stands for).
    pub fn method_token(&self) -> &str {
        let line = self.request_line();
        line.split_once(' ').map_or(line, |(token, _)| token)
    }

    /// Whether any `If-*` field came with the request: without one, no precondition needs
    /// looking up.
    pub fn has_preconditions(&self) -> bool {
        self.preconditions
    }

    /// The first field called `name` (case-insensitive), trimmed; `None` if absent or not UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        let field = self.fields.iter().find(|f| self.is_named(f, name))?;
        std::str::from_utf8(self.bytes(&field.value)).ok()
    }

    /// Every field called `name` (case-insensitive), in order, skipping values that are not UTF-8.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |f| self.is_named(f, name))
            .filter_map(|f| std::str::from_utf8(self.bytes(&f.value)).ok())
    }

    /// The raw values of every field called `name` (case-insensitive), in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |f| self.is_named(f, name))
            .map(|f| self.bytes(&f.value))
    }

    /// All fields in order as (name, raw value).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.fields
            .iter()
            .map(|f| (self.text(&f.name), self.bytes(&f.value)))
    }

    fn is_named(&self, field: &Field, name: &str) -> bool {
        self.bytes(&field.name)
            .eq_ignore_ascii_case(name.as_bytes())
    }

    fn bytes(&self, range: &Range<u32>) -> &[u8] {
        &self.raw[range.start as usize..range.end as usize]
    }

    fn text(&self, range: &Range<u32>) -> &str {
        // Method, target and field names were checked as ASCII tokens by httparse.
        std::str::from_utf8(self.bytes(range)).unwrap_or("")
    }
}

/// The allocations a head keeps its bytes, fields and decoded path in. A head whose request
/// was answered gives them back ([`RequestHead::into_storage`]) for the next head to fill, so
/// a request costs no allocation for its head.
#[derive(Debug, Default)]
pub struct HeadStorage {
    raw: Vec<u8>,
    fields: Vec<Field>,
    path: String,
}

/// Answered heads' allocations kept for the next heads: several, since a forwarded request
/// holds its head until the upstream answers while other clients' heads are parsed.
#[derive(Debug, Default)]
pub struct SpareHeads {
    spares: Vec<HeadStorage>,
}

impl SpareHeads {
    /// Most heads kept.
    const MAX: usize = 64;

    /// Parses a request head at the start of `buf` into the last spare's allocations, in
    /// place: a complete head takes them and leaves that spare empty, to be dropped (or
    /// refilled by [`SpareHeads::recycle`]) before the next parse; an incomplete one leaves
    /// it as it was. The result is returned as it comes, not looked at: moving a parsed head
    /// once more costs a copy of it.
    pub fn parse(
        &mut self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Option<(RequestHead, usize)>, RequestError> {
        if self.spares.len() > 1 && self.spares.last().is_some_and(HeadStorage::is_empty) {
            self.spares.pop();
        }
        if self.spares.is_empty() {
            self.spares.push(HeadStorage::default());
        }
        let last = self.spares.len() - 1;
        parse_head_reusing(buf, limits, &mut self.spares[last])
    }

    /// Keeps an answered head's allocations for a later head.
    pub fn recycle(&mut self, head: RequestHead) {
        let storage = head.into_storage();
        if let Some(last) = self.spares.last_mut()
            && last.is_empty()
        {
            *last = storage;
        } else if self.spares.len() < Self::MAX {
            self.spares.push(storage);
        }
    }
}

impl HeadStorage {
    /// Whether it holds no allocation (fresh, or taken by a parsed head).
    pub fn is_empty(&self) -> bool {
        self.raw.capacity() == 0
    }
}

impl RequestHead {
    /// Gives up the head's allocations for reuse, unless an unusually large head made them
    /// too big to be worth keeping.
    pub fn into_storage(self) -> HeadStorage {
        const KEEP_BYTES: usize = 4096;
        if self.raw.capacity() > KEEP_BYTES || self.path.capacity() > KEEP_BYTES {
            return HeadStorage::default();
        }
        HeadStorage {
            raw: self.raw,
            fields: self.fields,
            path: self.path,
        }
    }
}

/// Parses a request head at the start of `buf`.
///
/// `Ok(None)`: more bytes are needed. `Ok(Some((head, n)))`: the head took `n` bytes (any
/// empty lines before it included). `Err`: the request cannot be framed; answer with the
/// error's status and close.
pub fn parse_head(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(RequestHead, usize)>, RequestError> {
    parse_head_reusing(buf, limits, &mut HeadStorage::default())
}

/// [`parse_head`], filling the allocations in `storage` (taken from it only when a head is
/// complete).
pub fn parse_head_reusing(
    buf: &[u8],
    limits: &Limits,
    storage: &mut HeadStorage,
) -> Result<Option<(RequestHead, usize)>, RequestError> {
    let start = leading_empty_lines(buf);
    let input = &buf[start..];
    if input.is_empty() {
        return if start > limits.max_head {
            Err(RequestError::HeadTooLarge)
        } else {
            Ok(None)
        };
    }
    // Limits are judged at fixed points of the byte stream (the target's first byte past its
    // limit, the head's first byte past its limit), so how the bytes were split across reads
    // never changes the answer: httparse sees nothing beyond the first such point.
    let target_cut = target_overflow(input, limits.max_target);
    let cut = target_cut.unwrap_or(usize::MAX).min(limits.max_head);
    let window = &input[..input.len().min(cut)];
    let mut slots = [const { MaybeUninit::<httparse::Header>::uninit() }; FIELD_SLOTS];
    let slots = &mut slots[..limits.max_headers.min(FIELD_SLOTS)];
    let mut request = httparse::Request::new(&mut []);
    let len = match request.parse_with_uninit_headers(window, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if input.len() <= cut => return Ok(None),
        Ok(httparse::Status::Partial) if target_cut == Some(cut) => {
            return Err(RequestError::TargetTooLong);
        }
        Ok(httparse::Status::Partial) => return Err(RequestError::HeadTooLarge),
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::HeadTooLarge),
        Err(httparse::Error::Version) => return version_error(window, input.len() <= cut),
        Err(_) => return Err(RequestError::Malformed),
    };
    let version = match request.version {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    };
    let method_token = request.method.unwrap_or("");
    let target = request.path.unwrap_or("");
    let raw = &input[..len];
    let offset = |s: &[u8]| (s.as_ptr() as usize - raw.as_ptr() as usize) as u32;
    let span = |s: &[u8]| offset(s)..offset(s) + s.len() as u32;
    let HeadStorage {
        raw: mut raw_copy,
        mut fields,
        path,
    } = std::mem::take(storage);
    raw_copy.clear();
    raw_copy.extend_from_slice(raw);
    fields.clear();
    let mut known = Known::default();
    for header in request.headers.iter() {
        let value = trim_ows(header.value);
        known.note(header.name.as_bytes(), value)?;
        fields.push(Field {
            name: span(header.name.as_bytes()),
            value: span(value),
        });
    }
    // The request line ends where the first field line begins (httparse takes no other
    // byte between them than the line ending), or at the first line feed.
    let line_end = match request.headers.first() {
        Some(first) => offset(first.name.as_bytes()) as usize - 1,
        None => raw.iter().position(|&b| b == b'\n').unwrap_or(0),
    };
    let line_end = if line_end > 0 && raw[line_end - 1] == b'\r' {
        line_end - 1
    } else {
        line_end
    };
    let mut head = RequestHead {
        method: Method::Get,
        version,
        framing: Framing::None,
        keep_alive: false,
        expect_continue: false,
        error: None,
        preconditions: known.preconditions,
        raw: raw_copy,
        request_line: 0..line_end as u32,
        target: span(target.as_bytes()),
        raw_path: 0..0,
        query: None,
        path,
        fields,
    };
    head.framing = known.framing(version)?;
    head.keep_alive = !known.close && (version == Version::Http11 || known.keep_alive);
    head.expect_continue = known.expect.continue_100;
    head.error = semantics(&mut head, &known, method_token, target).err();
    Ok(Some((head, start + len)))
}

/// Counts the CRLF (or bare LF) lines a client may send before a request (RFC 9112 2.2).
fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut i = 0;
    loop {
        if buf[i..].starts_with(b"\r\n") {
            i += 2;
        } else if buf[i..].starts_with(b"\n") {
            i += 1;
        } else {
            return i;
        }
    }
}

/// Where the request-target's first byte past `max_target` lies, if the target (from the
/// first space to the next space or line end) runs that long.
fn target_overflow(input: &[u8], max_target: usize) -> Option<usize> {
    let start = input.iter().position(|&b| b == b' ')? + 1;
    let limit = start + max_target;
    let end = input.len().min(limit + 1);
    let terminated = input[start.min(end)..end]
        .iter()
        .any(|&b| matches!(b, b' ' | b'\r' | b'\n'));
    (!terminated && input.len() > limit).then_some(limit)
}

/// Maps httparse's version error: `HTTP/d.d` other than 1.0 and 1.1 is 505, anything else
/// 400; a line that is not finished and could still become `HTTP/d.d` waits for more bytes.
fn version_error(
    window: &[u8],
    may_grow: bool,
) -> Result<Option<(RequestHead, usize)>, RequestError> {
    let line_end = window.iter().position(|&b| b == b'\r' || b == b'\n');
    let line = &window[..line_end.unwrap_or(window.len())];
    // The token httparse rejected: everything after the target.
    let version = line.splitn(3, |&b| b == b' ').nth(2).unwrap_or(b"");
    let pattern = b"HTTP/0.0";
    let fits = |(i, &b): (usize, &u8)| match pattern[i] {
        b'0' => b.is_ascii_digit(),
        expected => b == expected,
    };
    let prefix_fits = version.len() <= pattern.len() && version.iter().enumerate().all(fits);
    match line_end {
        None if may_grow && prefix_fits => Ok(None),
        Some(_) if prefix_fits && version.len() == pattern.len() => {
            Err(RequestError::VersionNotSupported)
        }
        _ => Err(RequestError::Malformed),
    }
}

/// What the fields that shape the exchange say, gathered in one pass over the head.
#[derive(Debug, Default)]
struct Known {
    length: Option<u64>,
    /// The codings of every `Transfer-Encoding` line, once there is one.
    transfer_codings: Option<TransferCodings>,
    hosts: u32,
    host_valid: bool,
    close: bool,
    keep_alive: bool,
    expect: Expectations,
    /// A field named `If-...` was seen.
    preconditions: bool,
}

impl Known {
    /// Takes note of one field; a `Content-Length` that is not a number, or disagrees with an
    /// earlier one, is refused at once.
    fn note(&mut self, name: &[u8], value: &[u8]) -> Result<(), RequestError> {
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = content_length(value).ok_or(RequestError::BadContentLength)?;
            if self.length.is_some_and(|seen| seen != n) {
                return Err(RequestError::BadContentLength);
            }
            self.length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_codings.get_or_insert_default().add(value);
        } else if name.eq_ignore_ascii_case(b"host") {
            self.hosts += 1;
            self.host_valid = parse_host_port(value).is_some();
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(trim_ows) {
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            self.expect.add(value);
        } else if name.len() > 3 && name[..3].eq_ignore_ascii_case(b"if-") {
            self.preconditions = true;
        }
        Ok(())
    }

    /// Decides the body framing, refusing anything a proxy in front of us could read
    /// differently: `Transfer-Encoding` only on HTTP/1.1, without `Content-Length`, and
    /// ending in its one `chunked`.
    fn framing(&self, version: Version) -> Result<Framing, RequestError> {
        match (&self.transfer_codings, self.length) {
            (None, None | Some(0)) => Ok(Framing::None),
            (None, Some(n)) => Ok(Framing::Length(n)),
            (Some(codings), None) if version == Version::Http11 => {
                codings.verdict().map(|()| Framing::Chunked)
            }
            _ => Err(RequestError::BadTransferEncoding),
        }
    }
}

/// The checks that do not affect framing: method, `Host`, and the target (`target` as httparse
/// returned it, which `head.target()` would only decode again).
fn semantics(
    head: &mut RequestHead,
    known: &Known,
    method_token: &str,
    target: &str,
) -> Result<(), RequestError> {
    // httparse took the token's grammar: any other method is the proxy's to pass on.
    head.method = match Method::from_token(method_token) {
        Some(Method::Connect) => return Err(RequestError::MethodNotImplemented),
        Some(method) => method,
        None => Method::Other,
    };
    // `Host` must appear once on HTTP/1.1, at most once on HTTP/1.0, and be
    // `uri-host [ ":" port ]` (RFC 9112 section 3.2).
    let host_required = head.version == Version::Http11;
    if known.hosts > 1
        || (known.hosts == 0 && host_required)
        || (known.hosts == 1 && !known.host_valid)
    {
        return Err(RequestError::BadHost);
    }
    let parsed = parse_target_into(target, std::mem::take(&mut head.path))?;
    if parsed.path == "*" && head.method != Method::Options {
        return Err(RequestError::BadTarget);
    }
    head.raw_path = parsed.raw_path.start as u32..parsed.raw_path.end as u32;
    head.query = parsed.query.map(|q| q.start as u32..q.end as u32);
    head.path = parsed.path;
    // An expectation margay cannot meet (RFC 9110 10.1.1). An HTTP/1.0 client cannot
    // expect anything of a server: its `Expect` is ignored, as 10.1.1 has for 100-continue.
    if known.expect.unmet && head.version == Version::Http11 {
        return Err(RequestError::ExpectationFailed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<(RequestHead, usize)>, RequestError> {
        parse_head(text.as_bytes(), &Limits::default())
    }

    fn complete(text: &str) -> RequestHead {
        parse(text).expect("parses").expect("complete").0
    }

    #[test]
    fn an_unknown_method_is_other_and_keeps_its_token() {
        let head = complete("PROPFIND /dav/ HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            (head.method, head.method_token()),
            (Method::Other, "PROPFIND")
        );
        assert_eq!(head.error, None);
        let known = complete("DELETE /x HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(
            (known.method, known.method_token()),
            (Method::Delete, "DELETE")
        );
    }

    #[test]
    fn an_absolute_target_names_the_host_over_the_host_field() {
        let absolute =
            complete("GET http://a.example:8080/x?y HTTP/1.1\r\nHost: b.example\r\n\r\n");
        assert_eq!(absolute.host(), Some("a.example:8080"));
        let bare = complete("GET http://[2001:db8::1]?y HTTP/1.1\r\nHost: b.example\r\n\r\n");
        assert_eq!(bare.host(), Some("[2001:db8::1]"));
        let origin = complete("GET /x HTTP/1.1\r\nHost: b.example\r\n\r\n");
        assert_eq!(origin.host(), Some("b.example"));
        let old = complete("GET /x HTTP/1.0\r\n\r\n");
        assert_eq!(old.host(), None);
    }

    #[test]
    fn a_reused_head_shows_nothing_of_the_one_before() {
        let limits = Limits::default();
        let mut storage = HeadStorage::default();
        let first = "GET /first/long/path/name.html?x=1 HTTP/1.1\r\nHost: a\r\nCookie: secret\r\nX-One: 1\r\n\r\n";
        let (head, _) = parse_head_reusing(first.as_bytes(), &limits, &mut storage)
            .unwrap()
            .unwrap();
        let raw_at = head.raw.as_ptr();
        storage = head.into_storage();

        let second = "GET /b HTTP/1.1\r\nHost: b\r\n\r\n";
        let (head, n) = parse_head_reusing(second.as_bytes(), &limits, &mut storage)
            .unwrap()
            .unwrap();
        assert_eq!(n, second.len());
        assert_eq!(
            head.raw.as_ptr(),
            raw_at,
            "the first head's allocation is reused"
        );
        assert_eq!(head.path(), "/b");
        assert_eq!(head.query(), None);
        assert_eq!(head.request_line(), "GET /b HTTP/1.1");
        assert_eq!(head.header("cookie"), None);
        let fields: Vec<_> = head.headers().map(|(name, _)| name).collect();
        assert_eq!(fields, ["Host"]);

        // An incomplete head leaves the storage where it was.
        let mut storage = head.into_storage();
        assert!(
            parse_head_reusing(b"GET /c HTTP/1.1\r\n", &limits, &mut storage)
                .unwrap()
                .is_none()
        );
        assert_eq!(storage.raw.as_ptr(), raw_at);
    }

    #[test]
    fn preconditions_are_noticed_in_any_case() {
        // (field line, whether it may carry a precondition)
        let rows = [
            ("If-None-Match: \"a\"", true),
            ("IF-MODIFIED-SINCE: Sun, 06 Nov 1994 08:49:37 GMT", true),
            ("if-range: \"a\"", true),
            ("If-Match: *", true),
            ("Iffy: 1", false),
            ("X-If-Match: *", false),
            ("Accept: */*", false),
        ];
        for (field, expected) in rows {
            let head = complete(&format!("GET / HTTP/1.1\r\nHost: a\r\n{field}\r\n\r\n"));
            assert_eq!(head.has_preconditions(), expected, "{field}");
        }
    }

    #[test]
    fn fatal_errors() {
        // (request, error that closes the connection)
        let rows: &[(&str, RequestError)] = &[
            (
                "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
                RequestError::VersionNotSupported,
            ),
            (
                "GET / HTTP/1.2\r\nHost: a\r\n\r\n",
                RequestError::VersionNotSupported,
            ),
            ("GET / HTTP/1\r\nHost: a\r\n\r\n", RequestError::Malformed),
            ("GET / FTP/1.1\r\nHost: a\r\n\r\n", RequestError::Malformed),
            (
                "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
                RequestError::Malformed,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
                RequestError::Malformed,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n",
                RequestError::Malformed,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n",
                RequestError::Malformed,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
                RequestError::Malformed,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
                RequestError::BadContentLength,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
                RequestError::BadContentLength,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
                RequestError::BadContentLength,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                RequestError::BadContentLength,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n",
                RequestError::BadContentLength,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
                RequestError::BadContentLength,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
                RequestError::BadContentLength,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
                RequestError::BadTransferEncoding,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                RequestError::BadTransferEncoding,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                RequestError::TransferCodingNotImplemented,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
                RequestError::BadTransferEncoding,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked x\r\n\r\n",
                RequestError::BadTransferEncoding,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n",
                RequestError::BadContentLength,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                RequestError::BadTransferEncoding,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
                RequestError::BadTransferEncoding,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                RequestError::BadTransferEncoding,
            ),
            (
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                RequestError::BadTransferEncoding,
            ),
        ];
        for (request, expected) in rows {
            assert_eq!(parse(request).err(), Some(*expected), "request {request:?}");
        }
        let tls_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
        assert_eq!(
            parse_head(tls_hello, &Limits::default()).err(),
            Some(RequestError::Malformed)
        );
    }

    #[test]
    fn answerable_errors_keep_framing() {
        // (request, error answered without closing)
        let rows: &[(&str, Option<RequestError>)] = &[
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", None),
            ("GET / HTTP/1.0\r\n\r\n", None),
            ("GET / HTTP/1.1\r\n\r\n", Some(RequestError::BadHost)),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                Some(RequestError::BadHost),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
                Some(RequestError::BadHost),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
                Some(RequestError::BadHost),
            ),
            ("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", None),
            (
                "GET / HTTP/1.1\r\nHost: Sub.example-1.com:8080\r\n\r\n",
                None,
            ),
            ("GET / HTTP/1.1\r\nHost: a~b_c!$&'()*+,;=%41\r\n\r\n", None),
            (
                "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n",
                Some(RequestError::BadHost),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\\b\r\n\r\n",
                Some(RequestError::BadHost),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\"b\r\n\r\n",
                Some(RequestError::BadHost),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n",
                Some(RequestError::BadHost),
            ),
            (
                "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
                Some(RequestError::BadHost),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n",
                Some(RequestError::BadHost),
            ),
            ("GET / HTTP/1.1\r\nHost:\r\n\r\n", None),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n",
                Some(RequestError::ExpectationFailed),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nExpect: x=1\r\n\r\n",
                Some(RequestError::ExpectationFailed),
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n",
                None,
            ),
            ("GET / HTTP/1.0\r\nExpect: 200-ok\r\n\r\n", None),
            ("GET http://a:80/ HTTP/1.1\r\nHost: a\r\n\r\n", None),
            (
                "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n",
                Some(RequestError::BadTarget),
            ),
            // Other methods parse; where no proxy rule takes them, they get 501.
            ("BREW / HTTP/1.1\r\nHost: a\r\n\r\n", None),
            ("get / HTTP/1.1\r\nHost: a\r\n\r\n", None),
            (
                "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
                Some(RequestError::MethodNotImplemented),
            ),
            (
                "GET /%00 HTTP/1.1\r\nHost: a\r\n\r\n",
                Some(RequestError::BadTarget),
            ),
            (
                "GET /../x HTTP/1.1\r\nHost: a\r\n\r\n",
                Some(RequestError::BadTarget),
            ),
            (
                "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
                Some(RequestError::BadTarget),
            ),
            ("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", None),
        ];
        for (request, expected) in rows {
            assert_eq!(complete(request).error, *expected, "request {request:?}");
        }
    }

    #[test]
    fn framing_rows() {
        let rows: &[(&str, Framing)] = &[
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", Framing::None),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
                Framing::None,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
                Framing::Length(5),
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
                Framing::Length(5),
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 7\r\nContent-Length: 7\r\n\r\n",
                Framing::Length(7),
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n",
                Framing::Chunked,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,\r\nTransfer-Encoding: chunked ,\r\n\r\n",
                Framing::Chunked,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0005 ,5\r\n\r\n",
                Framing::Length(5),
            ),
        ];
        for (request, expected) in rows {
            assert_eq!(complete(request).framing, *expected, "request {request:?}");
        }
    }

    #[test]
    fn persistence_rows() {
        let rows: &[(&str, bool)] = &[
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                false,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n",
                false,
            ),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            (
                "GET / HTTP/1.0\r\nConnection: foo\r\nConnection: Keep-Alive\r\n\r\n",
                true,
            ),
        ];
        for (request, expected) in rows {
            assert_eq!(
                complete(request).keep_alive,
                *expected,
                "request {request:?}"
            );
        }
    }

    #[test]
    fn limits() {
        let limits = Limits::default();
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(9000));
        assert_eq!(parse(&long_target).err(), Some(RequestError::TargetTooLong));
        let unfinished_target = format!("GET /{}", "a".repeat(9000));
        assert_eq!(
            parse(&unfinished_target).err(),
            Some(RequestError::TargetTooLong)
        );
        let big = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n",
            "b".repeat(limits.max_head)
        );
        assert_eq!(parse(&big).err(), Some(RequestError::HeadTooLarge));
        let many: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
        assert_eq!(parse(&many).err(), Some(RequestError::HeadTooLarge));
        let cookie = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nCookie: {}\r\n\r\n",
            "c".repeat(12 * 1024)
        );
        assert_eq!(complete(&cookie).error, None);
    }

    #[test]
    fn the_answer_does_not_depend_on_where_the_bytes_were_split() {
        let long = "a".repeat(9000);
        let rows: Vec<String> = vec![
            "GET / HTTP/2.0\r\nHost: a\r\n\r\n".into(),
            "GET / HTTP/2.0 \r\n\r\n".into(),
            "GET / HTTP/1.1x\r\n\r\n".into(),
            "GET / HT\0 HTTP/1.1\r\nHost: a\r\n\r\n".into(),
            "GET / HT%\u{fe} / HT".into(),
            format!("GET /{long} HTTP/1.1\r\nHost: a\r\n\r\n"),
            format!("GET /{long}\0 HTTP/1.1\r\n\r\n"),
            format!("GET /a\0{long} HTTP/1.1\r\n\r\n"),
            format!("{long}{long}{long}{long} / HTTP/1.1\r\n\r\n"),
            format!("GET / HTTP/1.1\r\nX: {long}{long}{long}{long}\x01\r\n\r\n"),
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n".into(),
        ];
        let outcome =
            |bytes: &[u8]| parse_head(bytes, &Limits::default()).map(|o| o.map(|(_, n)| n));
        for row in &rows {
            let whole = outcome(row.as_bytes());
            assert_ne!(whole, Ok(None), "{row:?} is decided when whole");
            // Fed in growing prefixes, the first decision must be the whole one. Every
            // prefix near the start, the end and the limits; every 37th elsewhere.
            let near = |end: usize, at: usize| end.abs_diff(at) < 80;
            let first = (1..=row.len())
                .filter(|&end| {
                    end % 37 == 0
                        || [0, 8198, 32 * 1024, row.len()]
                            .iter()
                            .any(|&at| near(end, at))
                })
                .map(|end| outcome(&row.as_bytes()[..end]))
                .find(|o| *o != Ok(None));
            assert_eq!(first, Some(whole), "{:?}", &row[..row.len().min(40)]);
        }
    }

    #[test]
    fn spare_heads_lend_answered_heads_allocations_to_later_heads() {
        let limits = Limits::default();
        let mut spares = SpareHeads::default();
        let head = |text: &str, spares: &mut SpareHeads| {
            spares.parse(text.as_bytes(), &limits).unwrap().unwrap().0
        };
        // Two heads held at once (forwarded requests awaiting their upstreams).
        let a = head("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", &mut spares);
        let b = head("GET /b HTTP/1.1\r\nHost: x\r\n\r\n", &mut spares);
        let (a_raw, b_raw) = (a.raw.as_ptr(), b.raw.as_ptr());
        assert_ne!(a_raw, b_raw);
        spares.recycle(a);
        spares.recycle(b);
        // An incomplete head takes nothing: the next complete one gets the last recycled.
        assert!(spares.parse(b"GET /c HT", &limits).unwrap().is_none());
        let c = head("GET /c HTTP/1.1\r\nHost: x\r\n\r\n", &mut spares);
        assert_eq!(c.raw.as_ptr(), b_raw, "b's allocation, reused");
        assert_eq!(c.path(), "/c");
        // With c still held, the next head gets a's.
        let d = head("GET /d HTTP/1.1\r\nHost: x\r\n\r\n", &mut spares);
        assert_eq!(d.raw.as_ptr(), a_raw, "a's allocation, reused");
        assert_eq!(d.header("host"), Some("x"));
    }

    #[test]
    fn the_request_line_ends_at_its_line_ending_whichever_it_is() {
        // (head, request line)
        let rows = [
            ("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "GET /a HTTP/1.1"),
            ("GET /a HTTP/1.1\nHost: x\n\n", "GET /a HTTP/1.1"),
            ("GET /a HTTP/1.0\r\n\r\n", "GET /a HTTP/1.0"),
            ("GET /a HTTP/1.0\n\n", "GET /a HTTP/1.0"),
        ];
        for (text, line) in rows {
            assert_eq!(complete(text).request_line(), line, "{text:?}");
        }
    }

    #[test]
    fn partial_heads_wait_and_leading_blank_lines_are_skipped() {
        let full = "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n";
        for cut in 0..full.len() {
            assert!(parse(&full[..cut]).unwrap().is_none(), "cut at {cut}");
        }
        let (head, len) = parse(&format!("\r\n\r\n{full}GET")).unwrap().unwrap();
        assert_eq!(len, 4 + full.len());
        assert_eq!(head.path(), "/a");
        assert_eq!(head.query(), Some("b=1"));
        assert_eq!(head.request_line(), "GET /a?b=1 HTTP/1.1");
        assert_eq!(head.header("user-agent"), Some("t"));
        assert_eq!(head.header("HOST"), Some("x"));
        assert_eq!(head.header("missing"), None);
    }
}
